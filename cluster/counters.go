package cluster

import "time"

// Counters keeps windowed usage counters for rate limits. Implementations must decide from
// local state only, never waiting on the network: one shared by several replicas answers from
// what it has accumulated and synchronised so far and flushes its own additions in the
// background, so across replicas it may briefly admit more than a counter's Max.
//
// Implementations are safe for concurrent use. They do not keep the charges slice after a
// call returns, and the values slice they return belongs to the caller.
type Counters interface {
	// TryAdd adds each Charge's Amount to its counter only if every counter stays within its
	// Max afterwards; it reports whether it did, and the counters' values after (or as found
	// when refused), one per charge in the same order. Either every charge is applied or none.
	TryAdd(now time.Time, charges []Charge) (ok bool, values []int64)
	// Add adds Amount (possibly negative) to each counter without checking limits: settlement.
	// A charge to a window that has already ended may be dropped, since nothing reads it again.
	Add(now time.Time, charges []Charge)
}

// Charge is an amount against one windowed counter. A counter is identified by Key together
// with WindowStart: the same key has a fresh counter in every window.
type Charge struct {
	Key         string        // counter identity, without the window
	Window      time.Duration // length of the window; positive
	WindowStart time.Time     // the window the amount belongs to
	Max         int64         // limit of the counter in that window
	Amount      int64
}

// WindowEnd is when the charge's window ends and its counter may be forgotten.
func (c Charge) WindowEnd() time.Time { return c.WindowStart.Add(c.Window) }
