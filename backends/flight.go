package backends

import (
	"slices"
	"sync"
	"sync/atomic"
)

// defaultOutputTokens stands in for the output budget of a request that set none.
const defaultOutputTokens = 256

// Flight is one request this replica has in flight to an endpoint, as the latency model sees
// it: how many output tokens it may still produce. Its methods are safe for concurrent use.
type Flight struct {
	ep        *Endpoint
	maxTokens int64
	streamed  atomic.Int64
	started   atomic.Bool
}

// flights is the set of an endpoint's flights. The lock is held only to add, remove or copy
// out remaining counts, never across I/O.
type flights struct {
	mu  sync.Mutex
	set []*Flight
}

// Fly registers a request with the given output budget (0 when unset) and returns its Flight;
// Land must be called when it finishes.
func (e *Endpoint) Fly(maxTokens int) *Flight {
	if maxTokens <= 0 {
		maxTokens = defaultOutputTokens
	}
	f := &Flight{ep: e, maxTokens: int64(maxTokens)}
	e.flights.mu.Lock()
	e.flights.set = append(e.flights.set, f)
	e.flights.mu.Unlock()
	return f
}

// Token records one more streamed output event; the first marks the request as running.
func (f *Flight) Token() {
	f.started.Store(true)
	f.streamed.Add(1)
}

// Land removes the flight from its endpoint. It is idempotent.
func (f *Flight) Land() {
	e := f.ep
	e.flights.mu.Lock()
	if i := slices.Index(e.flights.set, f); i >= 0 {
		e.flights.set = slices.Delete(e.flights.set, i, i+1)
	}
	e.flights.mu.Unlock()
}

// Remaining appends to buf the output tokens each running flight (first token seen) may still
// produce, sorted ascending, and returns it with the count of flights not running yet.
func (e *Endpoint) Remaining(buf []int64) (running []int64, waiting int) {
	e.flights.mu.Lock()
	for _, f := range e.flights.set {
		if !f.started.Load() {
			waiting++
			continue
		}
		buf = append(buf, max(1, f.maxTokens-f.streamed.Load()))
	}
	e.flights.mu.Unlock()
	slices.Sort(buf)
	return buf, waiting
}
