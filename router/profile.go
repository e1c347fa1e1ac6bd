package router

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
)

// Candidate is one endpoint as a scheduling profile sees it during one pick.
type Candidate struct {
	Endpoint *backends.Endpoint
	// Stats is the endpoint's latest metrics snapshot, or nil when it is unknown: never
	// scraped, or older than the profile's staleness bound. Unknown is not idle.
	Stats *backends.Stats
	// InFlight is this replica's requests in flight to the endpoint now.
	InFlight int64
	// Pending is how many of those were sent after Stats was scraped, so the server's own
	// counts do not show them yet.
	Pending int64
}

// Queue estimates the requests ahead of a new one at the endpoint: the scraped waiting queue
// plus what this replica sent since the scrape. It is -1 when stats are unknown.
func (c *Candidate) Queue() int64 {
	if c.Stats == nil {
		return -1
	}
	return int64(c.Stats.Waiting) + c.Pending
}

// Filter drops candidates that must not receive the request. It may reorder or shrink cands
// in place and returns what is left.
type Filter interface {
	Filter(req *Request, cands []Candidate) []Candidate
}

// Scorer rates every candidate for the request, writing a score in [0, 1] (higher is better)
// into scores[i] for cands[i].
type Scorer interface {
	Score(req *Request, cands []Candidate, scores []float64)
}

// Selector chooses one candidate given the weighted total scores; it returns its index.
type Selector interface {
	Select(cands []Candidate, scores []float64) int
}

// WeightedScorer is a scorer and the weight of its score in the total.
type WeightedScorer struct {
	Scorer Scorer
	Weight float64
}

// Profile is a scheduling profile: filters, then weighted scorers, then a selector, as plugins.
// Pick runs on the endpoints' published snapshots and atomics only: no I/O, no locks held
// across calls (scratch space comes from a sync.Pool). Safe for concurrent use.
type Profile struct {
	Filters  []Filter
	Scorers  []WeightedScorer
	Selector Selector
	// StaleAfter is how old a stats snapshot may be before the endpoint counts as unknown.
	StaleAfter time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	scratch sync.Pool
}

type pickScratch struct {
	cands  []Candidate
	scores []float64
	tmp    []float64
}

var _ Picker = (*Profile)(nil)

// Pick implements Picker. When filters leave no candidate because every endpoint is
// saturated, it returns an error wrapping ErrSaturated; the scheduler then queues the request.
func (p *Profile) Pick(pool *backends.Pool, req *Request, skip func(*backends.Endpoint) bool) (PickResult, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	t := now()
	sc, _ := p.scratch.Get().(*pickScratch)
	if sc == nil {
		sc = &pickScratch{}
	}
	defer p.scratch.Put(sc)
	cands := sc.cands[:0]
	for _, ep := range pool.Endpoints {
		if (skip != nil && skip(ep)) || ep.Drained() || !ep.Healthy(t) {
			continue
		}
		c := Candidate{Endpoint: ep, InFlight: ep.InFlight()}
		if s := ep.Stats(); s != nil && (p.StaleAfter <= 0 || s.Age(t) <= p.StaleAfter) {
			c.Stats = s
			c.Pending = max(0, c.InFlight-s.InFlightAtScrape)
		}
		cands = append(cands, c)
	}
	sc.cands = cands
	if len(cands) == 0 {
		return PickResult{}, &Error{Code: CodeUnavailable, Reason: "no_healthy_endpoint",
			Message: "no healthy endpoint in pool " + pool.Name}
	}
	for _, f := range p.Filters {
		cands = f.Filter(req, cands)
		if len(cands) == 0 {
			return PickResult{}, errSaturated(pool.Name)
		}
	}
	scores := grow(sc.scores, len(cands))
	clear(scores)
	tmp := grow(sc.tmp, len(cands))
	sc.scores, sc.tmp = scores, tmp
	for _, ws := range p.Scorers {
		clear(tmp)
		ws.Scorer.Score(req, cands, tmp)
		for i, s := range tmp {
			scores[i] += ws.Weight * s
		}
	}
	i := p.Selector.Select(cands, scores)
	ep := cands[i].Endpoint
	return PickResult{Endpoint: ep, Done: ep.Acquire()}, nil
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// randIntN returns f(n) or, when f is nil, a uniform draw from math/rand/v2.
func randIntN(f func(int) int, n int) int {
	if f != nil {
		return f(n)
	}
	return rand.IntN(n)
}
