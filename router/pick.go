package router

import (
	"math/rand/v2"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
)

// Picker chooses an endpoint of a pool for a request. Pick does CPU work only: no I/O, no
// locks held across calls. It must skip endpoints for which skip returns true; skip is nil
// when there is none to skip.
type Picker interface {
	Pick(pool *backends.Pool, req *Request, skip func(*backends.Endpoint) bool) (PickResult, error)
}

// PickResult is a picked endpoint and the callback that ends its in-flight accounting.
type PickResult struct {
	Endpoint *backends.Endpoint
	// Done must be called exactly once when the request to Endpoint has finished.
	Done func()
}

// LeastInFlight picks, among healthy endpoints, the one with the fewest requests in flight
// from this replica, breaking ties uniformly at random. It is safe for concurrent use.
type LeastInFlight struct {
	// IntN returns a uniform int in [0, n); nil means math/rand/v2's global source.
	IntN func(n int) int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

var _ Picker = (*LeastInFlight)(nil)

// Pick implements Picker.
func (p *LeastInFlight) Pick(pool *backends.Pool, _ *Request, skip func(*backends.Endpoint) bool) (PickResult, error) {
	var best *backends.Endpoint
	var bestLoad int64
	ties := 0
	now := p.now()
	for _, ep := range pool.Endpoints {
		if (skip != nil && skip(ep)) || ep.Drained() || !ep.Healthy(now) {
			continue
		}
		load := ep.InFlight()
		switch {
		case best == nil || load < bestLoad:
			best, bestLoad, ties = ep, load, 1
		case load == bestLoad:
			// Reservoir sampling keeps each tied endpoint with probability 1/ties.
			ties++
			if p.intN(ties) == 0 {
				best = ep
			}
		}
	}
	if best == nil {
		return PickResult{}, &Error{Code: CodeUnavailable, Reason: "no_healthy_endpoint",
			Message: "no healthy endpoint in pool " + pool.Name}
	}
	return PickResult{Endpoint: best, Done: best.Acquire()}, nil
}

func (p *LeastInFlight) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *LeastInFlight) intN(n int) int {
	if p.IntN != nil {
		return p.IntN(n)
	}
	return rand.IntN(n)
}
