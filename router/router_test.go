package router_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/router"
)

func pool(t *testing.T, n int) *backends.Pool {
	t.Helper()
	var eps []*backends.Endpoint
	for i := range n {
		ep, err := backends.NewEndpoint("http://10.0.0." + string(rune('1'+i)) + ":8000")
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	return backends.NewPool("p", eps, nil, backends.MetricsNone)
}

func TestLeastInFlightPicksLeastLoaded(t *testing.T) {
	p := pool(t, 3)
	hold := []func(){p.Endpoints[0].Acquire(), p.Endpoints[0].Acquire(), p.Endpoints[2].Acquire()}
	picker := &router.LeastInFlight{IntN: func(int) int { return 0 }}
	res, err := picker.Pick(p, &router.Request{}, nil)
	if err != nil || res.Endpoint != p.Endpoints[1] {
		t.Fatalf("picked %v (%v), want endpoint 1", res.Endpoint, err)
	}
	if p.Endpoints[1].InFlight() != 1 {
		t.Errorf("pick did not count in flight")
	}
	res.Done()
	res.Done() // idempotent
	if p.Endpoints[1].InFlight() != 0 {
		t.Errorf("in flight after Done = %d", p.Endpoints[1].InFlight())
	}
	for _, h := range hold {
		h()
	}
}

func TestLeastInFlightTieBreakIsUniform(t *testing.T) {
	p := pool(t, 4)
	// A scripted rand that always keeps the newest tie picks the last endpoint; one that never
	// does keeps the first. Both ends reachable proves the tie-break consults the rand.
	last := &router.LeastInFlight{IntN: func(int) int { return 0 }}
	first := &router.LeastInFlight{IntN: func(n int) int { return n - 1 }}
	r1, _ := last.Pick(p, nil, nil)
	r2, _ := first.Pick(p, nil, nil)
	r1.Done()
	r2.Done()
	if r1.Endpoint != p.Endpoints[3] || r2.Endpoint != p.Endpoints[0] {
		t.Errorf("tie-break picked %s and %s", r1.Endpoint.Name, r2.Endpoint.Name)
	}
	// With the real source, each of 4 idle endpoints gets roughly a quarter of 4000 picks.
	counts := map[*backends.Endpoint]int{}
	real := &router.LeastInFlight{}
	for range 4000 {
		r, _ := real.Pick(p, nil, nil)
		counts[r.Endpoint]++
		r.Done()
	}
	for _, ep := range p.Endpoints {
		if c := counts[ep]; c < 800 || c > 1200 {
			t.Errorf("%s picked %d times of 4000", ep.Name, c)
		}
	}
}

func TestLeastInFlightSkipsExcludedAndCoolingOff(t *testing.T) {
	p := pool(t, 3)
	now := time.Unix(1000, 0)
	picker := &router.LeastInFlight{Now: func() time.Time { return now }}
	p.Endpoints[0].MarkFailed(now)
	skip := func(ep *backends.Endpoint) bool { return ep == p.Endpoints[1] }
	res, err := picker.Pick(p, nil, skip)
	if err != nil || res.Endpoint != p.Endpoints[2] {
		t.Fatalf("picked %v, %v", res.Endpoint, err)
	}
	res.Done()
	p.Endpoints[2].MarkFailed(now)
	_, err = picker.Pick(p, nil, skip)
	var e *router.Error
	if !errors.As(err, &e) || e.Code != router.CodeUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	now = now.Add(1100 * time.Millisecond) // first cool-off is 1s
	if res, err = picker.Pick(p, nil, nil); err != nil {
		t.Fatalf("endpoint not back after cool-off: %v", err)
	}
	res.Done()
}

func TestCoolOffDoublesAndResets(t *testing.T) {
	ep, _ := backends.NewEndpoint("http://h:1")
	now := time.Unix(0, 0)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		ep.MarkFailed(now)
		if ep.Healthy(now.Add(want - time.Millisecond)) {
			t.Errorf("failure %d: healthy before %v", i+1, want)
		}
		if !ep.Healthy(now.Add(want)) {
			t.Errorf("failure %d: not healthy after %v", i+1, want)
		}
	}
	ep.MarkOK()
	if !ep.Healthy(now) {
		t.Error("MarkOK did not end the cool-off")
	}
}

func TestServeRetriesOnceOnAnotherEndpoint(t *testing.T) {
	p := pool(t, 3)
	r := router.New()
	r.Swap(router.NewTable([]*router.Route{{Model: "m", TargetModel: "m", Scheduler: router.NewScheduler(p, nil)}}))
	var seen []*backends.Endpoint
	var lasts []bool
	fail := router.Retryable(&router.Error{Code: router.CodeUpstream, Message: "refused"})
	err := r.Serve(context.Background(), &router.Request{Protocol: router.ProtocolOpenAI, Model: "m"}, func(_ context.Context, tg router.Target) error {
		seen = append(seen, tg.Endpoint)
		lasts = append(lasts, tg.Last)
		if tg.Endpoint.InFlight() != 1 {
			t.Errorf("attempt not counted in flight")
		}
		return fail
	})
	if len(seen) != 2 || seen[0] == seen[1] {
		t.Fatalf("attempts on %v; want two different endpoints", seen)
	}
	if lasts[0] || !lasts[1] {
		t.Errorf("Last flags = %v, want [false true]", lasts)
	}
	if !errors.Is(err, fail) {
		t.Errorf("err = %v", err)
	}
	for _, ep := range p.Endpoints {
		if ep.InFlight() != 0 {
			t.Errorf("%s still in flight", ep.Name)
		}
	}
}

func TestServeDoesNotRetryAfterFirstByte(t *testing.T) {
	p := pool(t, 2)
	r := router.New()
	r.Swap(router.NewTable([]*router.Route{{Model: "m", TargetModel: "m", Scheduler: router.NewScheduler(p, nil)}}))
	n := 0
	err := r.Serve(context.Background(), &router.Request{Protocol: router.ProtocolOpenAI, Model: "m"}, func(context.Context, router.Target) error {
		n++
		return errors.New("stream broke")
	})
	if n != 1 || err == nil {
		t.Fatalf("attempts = %d, err = %v", n, err)
	}
}

func TestServeUnknownModel(t *testing.T) {
	r := router.New()
	err := r.Serve(context.Background(), &router.Request{Protocol: router.ProtocolOpenAI, Model: "x"}, func(context.Context, router.Target) error {
		t.Fatal("attempted")
		return nil
	})
	var e *router.Error
	if !errors.As(err, &e) || e.Code != router.CodeNotFound || e.Param != "model" {
		t.Fatalf("err = %v", err)
	}
}

func TestModelsSorted(t *testing.T) {
	p := pool(t, 1)
	r := router.New()
	r.Swap(router.NewTable([]*router.Route{{Model: "zeta", Scheduler: router.NewScheduler(p, nil)}, {Model: "alpha", Scheduler: router.NewScheduler(p, nil)}}))
	if got := r.Models(router.ProtocolOpenAI); len(got) != 2 || got[0] != "alpha" || got[1] != "zeta" {
		t.Errorf("Models = %v", got)
	}
}
