package router

import (
	"math"
	"sync"
)

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
// The estimate uses what this replica knows of each endpoint:
//
//	ttft ≈ step + prefill_per_token × (prefill_queue + prompt) + slot_wait
//
// step is the current decode step, which the request waits out. prefill_queue is the prompt
// tokens sent there that are still waiting for their first token. slot_wait is zero while the
// endpoint has a free batch slot (capacity is the most requests it was seen running while others waited). When it
// has none and k requests are ahead, slot_wait is the time until the (k+1)-th running request
// finishes: its remaining output tokens (its max_tokens less what has streamed) times step.
// Beyond what this replica can see, it adds the average stream time per slot.
//
// Slow GPUs, full batches, long generations about to end or just begun, long prompts queued
// ahead and this prompt's own length all show in it; least connections sees none of them.
// The others score relative to each other, 1 for the soonest. Endpoints not yet observed
// score 1 too, so that they get traffic and are observed.
type LatencyScorer struct {
	scratch sync.Pool
}

var _ Scorer = (*LatencyScorer)(nil)

// Score implements Scorer.
func (ls *LatencyScorer) Score(req *Request, cands []Candidate, scores []float64) {
	prompt := 0.0
	if req != nil {
		prompt = float64(req.PromptTokens)
	}
	bp, _ := ls.scratch.Get().(*[]int64)
	if bp == nil {
		bp = new([]int64)
	}
	defer ls.scratch.Put(bp)
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range cands {
		c := &cands[i]
		l := c.Endpoint.Latency()
		if l.PrefillPerToken == 0 && l.PerOutputToken == 0 {
			scores[i] = -1
			continue
		}
		step := l.PerOutputToken.Seconds()
		est := step + l.PrefillPerToken.Seconds()*(float64(l.PrefillQueue)+prompt)
		if capacity := int64(l.MaxRunning); capacity > 0 {
			running, waiting := c.Endpoint.Remaining((*bp)[:0])
			*bp = running
			busy := int64(len(running) + waiting)
			if c.Stats != nil && c.Stats.Running >= 0 {
				busy = max(busy, int64(c.Stats.Running+c.Stats.Waiting)+c.Pending)
			}
			if k := busy - capacity; k >= 0 {
				switch {
				case k < int64(len(running)):
					est += float64(running[k]) * step
				default:
					last := 0.0
					if len(running) > 0 {
						last = float64(running[len(running)-1]) * step
					}
					est += last + float64(k-int64(len(running))+1)*l.Decode.Seconds()/float64(capacity)
				}
			}
		}
		scores[i] = est
		lo, hi = min(lo, est), max(hi, est)
	}
	for i, est := range scores {
		switch {
		case est < 0 || hi == lo:
			scores[i] = 1
		default:
			scores[i] = (hi - est) / (hi - lo)
		}
	}
}
