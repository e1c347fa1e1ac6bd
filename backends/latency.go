package backends

import (
	"math"
	"sync/atomic"
	"time"
)

// latencyAlpha is the weight of a new observation in the moving averages: about the last 20
// requests dominate, so an endpoint that slows down is noticed within seconds.
const latencyAlpha = 0.05

// minPromptForPrefill is the shortest prompt whose time to first token says something about
// prefill speed; shorter prompts are dominated by fixed costs.
const minPromptForPrefill = 256

// Latency is what this replica has observed of an endpoint's speed from the streams it
// relayed. Zero values mean no observation yet.
type Latency struct {
	// PrefillPerToken is the moving average of time to first token per prompt token, over
	// prompts of at least 256 tokens. It includes any queueing, so a busy endpoint looks slower.
	PrefillPerToken time.Duration
	// PerOutputToken is the moving average of the time between output tokens: the server's
	// current decode step time, which grows with its batch.
	PerOutputToken time.Duration
}

// latencyTracker keeps the moving averages as float64 bits in atomics, so observing and
// reading never lock.
type latencyTracker struct {
	prefill atomic.Uint64 // seconds per prompt token
	decode  atomic.Uint64 // seconds per output token
}

// ObserveStream records one relayed stream: its prompt length in tokens, the time from
// sending the request to the first event, the time from the first event to the last, and the
// number of events in between. Safe for concurrent use.
func (e *Endpoint) ObserveStream(promptTokens int, firstEvent, rest time.Duration, events int) {
	if promptTokens >= minPromptForPrefill && firstEvent > 0 {
		ewma(&e.latency.prefill, firstEvent.Seconds()/float64(promptTokens))
	}
	if events >= 4 && rest > 0 {
		ewma(&e.latency.decode, rest.Seconds()/float64(events-1))
	}
}

// Latency returns the endpoint's observed speed. Safe for concurrent use.
func (e *Endpoint) Latency() Latency {
	return Latency{
		PrefillPerToken: seconds(e.latency.prefill.Load()),
		PerOutputToken:  seconds(e.latency.decode.Load()),
	}
}

func seconds(bits uint64) time.Duration {
	return time.Duration(math.Float64frombits(bits) * float64(time.Second))
}

func ewma(a *atomic.Uint64, v float64) {
	for {
		old := a.Load()
		next := v
		if old != 0 {
			next = math.Float64frombits(old)*(1-latencyAlpha) + v*latencyAlpha
		}
		if a.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}
