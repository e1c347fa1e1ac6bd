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
	// 1000-token prompts with a 100ms first event (100µs/token), 11 events 10ms apart.
	for range 50 {
		ep.ObserveStream(1000, 100*time.Millisecond, 100*time.Millisecond, 11)
	}
	l := ep.Latency()
	if d := l.PrefillPerToken - 100*time.Microsecond; d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("prefill per token = %v, want 100µs", l.PrefillPerToken)
	}
	if d := l.PerOutputToken - 10*time.Millisecond; d < -100*time.Microsecond || d > 100*time.Microsecond {
		t.Errorf("per output token = %v, want 10ms", l.PerOutputToken)
	}
	// Short prompts and short streams say nothing about speed and are ignored.
	ep.ObserveStream(10, time.Second, time.Second, 2)
	if ep.Latency() != l {
		t.Errorf("short observation changed the estimate: %+v", ep.Latency())
	}
	// The average follows a slowdown: after 60 observations at twice the time it is near 2x.
	for range 60 {
		ep.ObserveStream(1000, 200*time.Millisecond, 200*time.Millisecond, 11)
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
				ep.ObserveStream(500, 50*time.Millisecond, 50*time.Millisecond, 6)
			}
		})
	}
	wg.Wait()
	if p := ep.Latency().PrefillPerToken; p != 100*time.Microsecond {
		t.Errorf("prefill per token = %v, want exactly 100µs from identical observations", p)
	}
}
