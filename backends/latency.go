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
	// PrefillPerToken is the moving average of prefill time per prompt token, from requests
	// of at least 256 prompt tokens that met no queue (see ObserveStream).
	PrefillPerToken time.Duration
	// PerOutputToken is the moving average of the time between output tokens: the server's
	// current decode step time, which grows with its batch.
	PerOutputToken time.Duration
	// PrefillQueue is the prompt tokens this replica has sent to the endpoint that have not
	// produced their first token yet: prefill work ahead of a new request.
	PrefillQueue int64
	// Decode is the moving average of a stream's time from first to last token: how long a
	// running request keeps its batch slot.
	Decode time.Duration
	// MaxRunning is the most requests the endpoint was seen running while others waited (from
	// its metrics): its batch capacity. 0 until it has been seen queueing.
	MaxRunning int
}

// latencyTracker keeps the moving averages as float64 bits in atomics, so observing and
// reading never lock.
type latencyTracker struct {
	prefill atomic.Uint64 // seconds per prompt token
	decode  atomic.Uint64 // seconds per output token
	stream  atomic.Uint64 // seconds from first to last token of a stream
	queue   atomic.Int64  // prompt tokens sent, first token not yet seen
	running atomic.Int64  // most requests seen running at once
}

// observeRunning records a scraped running count, keeping the largest seen.
func (t *latencyTracker) observeRunning(n int) {
	for {
		old := t.running.Load()
		if int64(n) <= old || t.running.CompareAndSwap(old, int64(n)) {
			return
		}
	}
}

// StartPrefill counts a request's prompt tokens as prefill work sent to the endpoint and
// returns the tokens that were already waiting ahead of it. Call EndPrefill with the same
// count when its first token (or its whole answer, or its failure) arrives.
func (e *Endpoint) StartPrefill(promptTokens int) (ahead int64) {
	return e.latency.queue.Add(int64(promptTokens)) - int64(promptTokens)
}

// EndPrefill ends what StartPrefill counted.
func (e *Endpoint) EndPrefill(promptTokens int) { e.latency.queue.Add(-int64(promptTokens)) }

// Sent is what an endpoint's load was when a request was sent to it.
type Sent struct {
	PrefillAhead int64 // prompt tokens sent before it still waiting for their first token
	InFlight     int64 // requests in flight there, this one included
}

// ObserveStream records one relayed stream: its prompt length in tokens, the endpoint's load
// when it was sent, the time from sending to the first event, the time from the first event
// to the last, and the number of events in between. Safe for concurrent use.
//
// Prefill speed is learned only from requests that found a free batch slot, so their time to
// first token was the prefill of their own prompt and of the prompts sent just before them,
// plus about one and a half decode steps (the rest of the step in progress and the step that
// prefilled them), not a wait for a slot.
func (e *Endpoint) ObserveStream(promptTokens int, sent Sent, firstEvent, rest time.Duration, events int) {
	step := 0.0
	if events >= 4 && rest > 0 {
		step = rest.Seconds() / float64(events-1)
		ewma(&e.latency.decode, step)
		ewma(&e.latency.stream, rest.Seconds())
	}
	capacity := e.latency.running.Load()
	work := float64(promptTokens) + float64(sent.PrefillAhead)
	if (capacity == 0 || sent.InFlight <= capacity) && work >= minPromptForPrefill && firstEvent > 0 && step > 0 {
		if prefill := firstEvent.Seconds() - 1.5*step; prefill > 0 {
			ewma(&e.latency.prefill, prefill/work)
		}
	}
}

// Latency returns the endpoint's observed speed. Safe for concurrent use.
func (e *Endpoint) Latency() Latency {
	return Latency{
		PrefillPerToken: seconds(e.latency.prefill.Load()),
		PerOutputToken:  seconds(e.latency.decode.Load()),
		PrefillQueue:    e.latency.queue.Load(),
		Decode:          seconds(e.latency.stream.Load()),
		MaxRunning:      int(e.latency.running.Load()),
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
