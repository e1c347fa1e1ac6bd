package backends_test

import (
	"sync"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
)

func TestObserveStreamLearnsSpeed(t *testing.T) {
	ep, _ := backends.NewEndpoint("http://h:1")
	if l := ep.Latency(); l != (backends.Latency{}) {
		t.Fatalf("fresh endpoint has latency %+v", l)
	}
	// 1000-token prompts with a 115ms first event, 11 events 10ms apart: one and a half decode
	// steps (15ms) go to the step in progress and its own, so prefill is 100µs/token.
	for range 50 {
		ep.ObserveStream(1000, backends.Sent{InFlight: 1}, 115*time.Millisecond, 100*time.Millisecond, 11)
	}
	l := ep.Latency()
	if d := l.PrefillPerToken - 100*time.Microsecond; d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("prefill per token = %v, want 100µs", l.PrefillPerToken)
	}
	if d := l.PerOutputToken - 10*time.Millisecond; d < -100*time.Microsecond || d > 100*time.Microsecond {
		t.Errorf("per output token = %v, want 10ms", l.PerOutputToken)
	}
	// Short prompts and short streams say nothing about speed and are ignored.
	ep.ObserveStream(10, backends.Sent{InFlight: 1}, time.Second, time.Second, 2)
	if ep.Latency() != l {
		t.Errorf("short observation changed the estimate: %+v", ep.Latency())
	}
	// The average follows a slowdown: after 60 observations at twice the time it is near 2x.
	for range 60 {
		ep.ObserveStream(1000, backends.Sent{InFlight: 1}, 230*time.Millisecond, 200*time.Millisecond, 11)
	}
	if p := ep.Latency().PrefillPerToken; p < 180*time.Microsecond {
		t.Errorf("after a slowdown prefill per token = %v, want near 200µs", p)
	}
}

func TestObserveStreamConcurrent(t *testing.T) {
	ep, _ := backends.NewEndpoint("http://h:1")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				ep.ObserveStream(500, backends.Sent{InFlight: 1}, 65*time.Millisecond, 50*time.Millisecond, 6)
			}
		})
	}
	wg.Wait()
	if p := ep.Latency().PrefillPerToken; p < 100*time.Microsecond-time.Nanosecond || p > 100*time.Microsecond+time.Nanosecond {
		t.Errorf("prefill per token = %v, want 100µs from identical observations", p)
	}
}

func TestPrefillQueue(t *testing.T) {
	ep, _ := backends.NewEndpoint("http://h:1")
	if ahead := ep.StartPrefill(300); ahead != 0 {
		t.Errorf("ahead = %d", ahead)
	}
	if ahead := ep.StartPrefill(500); ahead != 300 {
		t.Errorf("ahead = %d, want 300", ahead)
	}
	if q := ep.Latency().PrefillQueue; q != 800 {
		t.Errorf("queue = %d", q)
	}
	ep.EndPrefill(300)
	ep.EndPrefill(500)
	if q := ep.Latency().PrefillQueue; q != 0 {
		t.Errorf("queue = %d after both ended", q)
	}
	// Prefill work ahead counts: 100 tokens behind 900 in 115ms (15ms of steps) is 100µs/token.
	ep2, _ := backends.NewEndpoint("http://h:2")
	ep2.ObserveStream(100, backends.Sent{PrefillAhead: 900, InFlight: 1}, 115*time.Millisecond, 100*time.Millisecond, 11)
	if p := ep2.Latency().PrefillPerToken; p < 99*time.Microsecond || p > 101*time.Microsecond {
		t.Errorf("prefill per token = %v, want 100µs", p)
	}
	// A request that waited for a batch slot teaches nothing about prefill speed.
	ep2.SetStats(&backends.Stats{Running: 4, Waiting: 1})
	ep2.ObserveStream(1000, backends.Sent{InFlight: 5}, time.Second, 100*time.Millisecond, 11)
	if p := ep2.Latency().PrefillPerToken; p < 99*time.Microsecond || p > 101*time.Microsecond {
		t.Errorf("a slot wait changed the prefill estimate to %v", p)
	}
	if m := ep2.Latency().MaxRunning; m != 4 {
		t.Errorf("MaxRunning = %d, want 4 from the stats", m)
	}
}
