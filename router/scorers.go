package router

import "math"

// QueueScorer prefers endpoints with shorter queues: 1 for the shortest among candidates,
// 0 for the longest, linear between. Unknown stats score 0.
type QueueScorer struct{}

var _ Scorer = QueueScorer{}

// Score implements Scorer.
func (QueueScorer) Score(_ *Request, cands []Candidate, scores []float64) {
	relative(cands, scores, func(c *Candidate) (float64, bool) {
		q := c.Queue()
		return float64(q), q >= 0
	})
}

// KVCacheScorer prefers endpoints with free KV cache: 1 − utilization. Endpoints that do not
// export KV use, or whose stats are unknown, score 0.5, neither preferred nor avoided.
type KVCacheScorer struct{}

var _ Scorer = KVCacheScorer{}

// Score implements Scorer.
func (KVCacheScorer) Score(_ *Request, cands []Candidate, scores []float64) {
	for i := range cands {
		s := cands[i].Stats
		if s == nil || s.KVUsage < 0 {
			scores[i] = 0.5
			continue
		}
		scores[i] = 1 - min(1, s.KVUsage)
	}
}

// InFlightScorer prefers endpoints with fewer requests in flight from this replica, relative
// to the candidates: least-connections as a score. It needs no metrics.
type InFlightScorer struct{}

var _ Scorer = InFlightScorer{}

// Score implements Scorer.
func (InFlightScorer) Score(_ *Request, cands []Candidate, scores []float64) {
	relative(cands, scores, func(c *Candidate) (float64, bool) { return float64(c.InFlight), true })
}

// relative scores each candidate 1 at the smallest value of metric and 0 at the largest,
// linearly between; all equal scores 1; candidates without a value score 0.
func relative(cands []Candidate, scores []float64, metric func(*Candidate) (float64, bool)) {
	lo, hi := 0.0, 0.0
	seen := false
	for i := range cands {
		v, ok := metric(&cands[i])
		if !ok {
			continue
		}
		if !seen || v < lo {
			lo = v
		}
		if !seen || v > hi {
			hi = v
		}
		seen = true
	}
	for i := range cands {
		v, ok := metric(&cands[i])
		switch {
		case !ok:
			scores[i] = 0
		case hi == lo:
			scores[i] = 1
		default:
			scores[i] = (hi - v) / (hi - lo)
		}
	}
}

// LatencyScorer prefers the endpoint expected to return this request's first token soonest.
// The estimate comes from what this replica observed of each endpoint:
//
//	ttft ≈ step + prefill_per_token × (prefill_queue + prompt) + slot_wait
//	slot_wait = max(0, busy + 1 − capacity) × decode / capacity
//
// step is the current decode step (the request waits out the one in progress); prefill_queue
// is the prompt tokens sent there still waiting for their first token; busy is the endpoint's
// running plus queued requests as last scraped plus those sent since (or this replica's
// in-flight count when larger or when stats are unknown); capacity is the most requests it
// was seen running at once; decode is how long a stream keeps its slot. Slow GPUs, long
// prompts ahead, full batches and this prompt's length all show in it; least connections sees
// none of them. Endpoints not yet observed score 0.5; scores are relative, 1 for the soonest.
type LatencyScorer struct{}

var _ Scorer = LatencyScorer{}

// Score implements Scorer.
func (LatencyScorer) Score(req *Request, cands []Candidate, scores []float64) {
	prompt := 0.0
	if req != nil {
		prompt = float64(req.PromptTokens)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range cands {
		c := &cands[i]
		l := c.Endpoint.Latency()
		if l.PrefillPerToken == 0 && l.PerOutputToken == 0 {
			scores[i] = -1
			continue
		}
		est := l.PerOutputToken.Seconds() + l.PrefillPerToken.Seconds()*(float64(l.PrefillQueue)+prompt)
		if l.MaxRunning > 0 && l.Decode > 0 {
			busy := c.InFlight
			if c.Stats != nil && c.Stats.Running >= 0 {
				busy = max(busy, int64(c.Stats.Running+c.Stats.Waiting)+c.Pending)
			}
			if excess := busy + 1 - int64(l.MaxRunning); excess > 0 {
				est += float64(excess) * l.Decode.Seconds() / float64(l.MaxRunning)
			}
		}
		scores[i] = est
		lo, hi = min(lo, est), max(hi, est)
	}
	for i, est := range scores {
		switch {
		case est < 0:
			scores[i] = 0.5
		case hi == lo:
			scores[i] = 1
		default:
			scores[i] = (hi - est) / (hi - lo)
		}
	}
}
