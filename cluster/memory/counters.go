package memory

import (
	"container/heap"
	"sync"
	"time"

	"github.com/switchyard-ai/switchyard/cluster"
)

var _ cluster.Counters = (*Counters)(nil)

// Counters is an in-process cluster.Counters: a map from (key, window start) to a value,
// guarded by one mutex. A counter is dropped once its window has ended, lazily: every call
// first forgets the counters whose windows ended by the time it is given, so memory is bounded
// by the counters of current windows and no goroutine is needed.
//
// Counters is safe for concurrent use. Calls never block on anything but the mutex, which is
// held for O(len(charges)²) work plus O(log n) per expired counter.
type Counters struct {
	mu     sync.Mutex
	values map[counterID]int64
	expiry expiryHeap // one entry per counter in values
}

// counterID names one counter: a key in one window. The window start is kept as Unix
// nanoseconds because time.Time values that are equal instants may still differ as map keys.
type counterID struct {
	key   string
	start int64
}

// Option configures Counters. There are none yet; the type lets options be added without
// breaking callers.
type Option func(*Counters)

// NewCounters returns empty counters.
func NewCounters(opts ...Option) *Counters {
	c := &Counters{values: make(map[counterID]int64)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// TryAdd implements cluster.Counters. A charge whose window has already ended by now is
// checked against an empty counter and not stored.
func (c *Counters) TryAdd(now time.Time, charges []cluster.Charge) (bool, []int64) {
	both := make([]int64, 2*len(charges))
	found, after := both[:len(charges):len(charges)], both[len(charges):]
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prune(now)
	for i, ch := range charges {
		found[i] = c.load(now, ch)
	}
	// A counter may appear more than once in one call; each charge's limit applies to the
	// counter's value after all of them.
	for i, ch := range charges {
		after[i] = found[i]
		for _, other := range charges {
			if sameCounter(ch, other) {
				after[i] += other.Amount
			}
		}
		if after[i] > ch.Max {
			return false, found
		}
	}
	for _, ch := range charges {
		c.add(now, ch)
	}
	return true, after
}

// Add implements cluster.Counters. Charges to windows that have already ended by now are
// dropped.
func (c *Counters) Add(now time.Time, charges []cluster.Charge) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prune(now)
	for _, ch := range charges {
		c.add(now, ch)
	}
}

// Len reports how many counters are held, for metrics and tests. It counts counters whose
// windows have ended but that no call has pruned yet.
func (c *Counters) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.values)
}

func (c *Counters) load(now time.Time, ch cluster.Charge) int64 {
	if !live(now, ch) {
		return 0
	}
	return c.values[idOf(ch)]
}

func (c *Counters) add(now time.Time, ch cluster.Charge) {
	if !live(now, ch) {
		return
	}
	id := idOf(ch)
	v, ok := c.values[id]
	if !ok {
		heap.Push(&c.expiry, expiring{end: ch.WindowEnd().UnixNano(), id: id})
	}
	c.values[id] = v + ch.Amount
}

// prune forgets the counters whose windows ended at or before now.
func (c *Counters) prune(now time.Time) {
	t := now.UnixNano()
	for len(c.expiry) > 0 && c.expiry[0].end <= t {
		e := heap.Pop(&c.expiry).(expiring)
		delete(c.values, e.id)
	}
}

// live reports whether the charge's window is still open at now.
func live(now time.Time, ch cluster.Charge) bool {
	return ch.Window > 0 && now.Before(ch.WindowEnd())
}

func idOf(ch cluster.Charge) counterID {
	return counterID{key: ch.Key, start: ch.WindowStart.UnixNano()}
}

func sameCounter(a, b cluster.Charge) bool {
	return a.Key == b.Key && a.WindowStart.Equal(b.WindowStart)
}

// expiring is a counter and the instant its window ends, in Unix nanoseconds.
type expiring struct {
	end int64
	id  counterID
}

// expiryHeap orders counters by the end of their windows, soonest first.
type expiryHeap []expiring

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].end < h[j].end }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiring)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = expiring{}
	*h = old[:len(old)-1]
	return e
}
