package router_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/cluster/memory"
	"github.com/switchyard-ai/switchyard/router"
)

func concrete(t *testing.T, name string) *router.Route {
	return &router.Route{Protocol: router.ProtocolOpenAI, Model: name, TargetModel: name,
		Scheduler: router.NewScheduler(fleet(t, st(0, 0)), nil)}
}

func TestVirtualRules(t *testing.T) {
	small, large, fine := concrete(t, "small"), concrete(t, "large"), concrete(t, "fine")
	auto := &router.Virtual{Name: "auto", Rules: []router.Rule{
		{Match: &router.Match{Headers: map[string]string{"X-Experiment": "ft"}}, Targets: []*router.Route{fine}},
		{Match: &router.Match{Priorities: []string{"critical"}}, Targets: []*router.Route{large}},
		{Match: &router.Match{MinPromptTokens: 2000}, Targets: []*router.Route{large}},
		{Match: &router.Match{MaxOutputTokens: 256, Tenants: []string{"free"}}, Targets: []*router.Route{small}},
		{Match: &router.Match{MaxPromptTokens: 500}, Targets: []*router.Route{small}},
		{Targets: []*router.Route{large}}, // explicit default
	}}
	r := router.New()
	r.Swap(router.NewTable([]*router.Route{small, large, fine}, auto))
	tests := []struct {
		name string
		req  router.Request
		want string
	}{
		{"short prompt", router.Request{PromptTokens: 100, Priority: "standard"}, "small"},
		{"long prompt", router.Request{PromptTokens: 5000, Priority: "standard"}, "large"},
		{"critical short prompt", router.Request{PromptTokens: 100, Priority: "critical"}, "large"},
		{"free tenant, small budget", router.Request{PromptTokens: 900, MaxTokens: 100, Identity: "free", Priority: "standard"}, "small"},
		{"free tenant, budget unset", router.Request{PromptTokens: 900, Identity: "free", Priority: "standard"}, "large"},
		{"header", router.Request{PromptTokens: 5000, Priority: "critical", Header: http.Header{"X-Experiment": {"ft"}}}, "fine"},
		{"medium prompt falls to the default", router.Request{PromptTokens: 900, Priority: "standard"}, "large"},
	}
	for _, tt := range tests {
		req := tt.req
		req.Protocol, req.Model = router.ProtocolOpenAI, "auto"
		rt, err := r.Route(&req)
		if err != nil || rt.Model != tt.want {
			t.Errorf("%s: routed to %v (%v), want %s", tt.name, rt, err, tt.want)
		}
	}
	if got := r.Models(router.ProtocolOpenAI); fmt.Sprint(got) != "[auto fine large small]" {
		t.Errorf("models list %v lacks the virtual model", got)
	}
	noDefault := &router.Virtual{Name: "strict", Rules: []router.Rule{{Match: &router.Match{MinPromptTokens: 10}, Targets: []*router.Route{small}}}}
	r.Swap(router.NewTable([]*router.Route{small}, noDefault))
	req := router.Request{Protocol: router.ProtocolOpenAI, Model: "strict", PromptTokens: 1}
	var e *router.Error
	if _, err := r.Route(&req); !errors.As(err, &e) || e.Reason != "no_route" {
		t.Errorf("no matching rule: %v", err)
	}
}

// BenchmarkVirtualRoute measures a routing decision over six rules.
func BenchmarkVirtualRoute(b *testing.B) {
	mk := func(n string) *router.Route {
		return &router.Route{Protocol: router.ProtocolOpenAI, Model: n, TargetModel: n, Scheduler: router.NewScheduler(fleet(b, st(0, 0)), nil)}
	}
	small, large := mk("small"), mk("large")
	auto := &router.Virtual{Name: "auto", Rules: []router.Rule{
		{Match: &router.Match{Headers: map[string]string{"X-Experiment": "ft"}}, Targets: []*router.Route{large}},
		{Match: &router.Match{Priorities: []string{"critical"}}, Targets: []*router.Route{large}},
		{Match: &router.Match{MinPromptTokens: 2000}, Targets: []*router.Route{large}},
		{Match: &router.Match{MaxOutputTokens: 256, Tenants: []string{"free"}}, Targets: []*router.Route{small}},
		{Match: &router.Match{MaxPromptTokens: 500}, Targets: []*router.Route{small, large}, Weights: []int{95, 5}},
		{Targets: []*router.Route{large}},
	}}
	r := router.New()
	r.Swap(router.NewTable([]*router.Route{small, large}, auto))
	hdr := http.Header{"Content-Type": {"application/json"}}
	b.ReportAllocs()
	for b.Loop() {
		req := router.Request{Protocol: router.ProtocolOpenAI, Model: "auto", PromptTokens: 300, Priority: "standard", Header: hdr, SessionKey: "conv-1"}
		if _, err := r.Route(&req); err != nil {
			b.Fatal(err)
		}
	}
}

func TestWeightedSplit(t *testing.T) {
	stable, canary := concrete(t, "stable"), concrete(t, "canary")
	v := &router.Virtual{Name: "chat", Rules: []router.Rule{{Targets: []*router.Route{stable, canary}, Weights: []int{95, 5}}}}
	r := router.New()
	r.Swap(router.NewTable([]*router.Route{stable, canary}, v))
	// Without sessions: 20,000 draws; 5% canary ± 4.5 standard deviations (σ ≈ 0.154%).
	n, canaries := 20000, 0
	for range n {
		req := router.Request{Protocol: router.ProtocolOpenAI, Model: "chat"}
		rt, _ := r.Route(&req)
		if rt == canary {
			canaries++
		}
	}
	if share := float64(canaries) / float64(n); share < 0.043 || share > 0.057 {
		t.Errorf("canary share %.4f, want 0.05 ± 0.007", share)
	}
	// With a session key: the same conversation always gets the same model, and across many
	// sessions the split still holds.
	canaries = 0
	for i := range n {
		key := fmt.Sprintf("conv-%d", i)
		var first *router.Route
		for range 3 {
			req := router.Request{Protocol: router.ProtocolOpenAI, Model: "chat", SessionKey: key}
			rt, _ := r.Route(&req)
			if first == nil {
				first = rt
			} else if rt != first {
				t.Fatalf("session %s flipped between models", key)
			}
		}
		if first == canary {
			canaries++
		}
	}
	if share := float64(canaries) / float64(n); share < 0.043 || share > 0.057 {
		t.Errorf("canary share by session %.4f, want 0.05 ± 0.007", share)
	}
}

// TestOverflowAndReturn: while the preferred pool is saturated, requests go to the overflow
// pool; when it has room again they come back; sheddable requests are shed when both are full.
func TestOverflowAndReturn(t *testing.T) {
	premium := fleet(t, st(9, 0.1))
	cheap := backends.NewPool("cheap", []*backends.Endpoint{mustEndpoint(t, "http://10.9.0.1:8000")}, nil, backends.MetricsVLLM)
	cheap.Endpoints[0].SetStats(st(0, 0.1))
	route := &router.Route{Protocol: router.ProtocolOpenAI, Model: "m", TargetModel: "m",
		Scheduler: router.NewScheduler(premium, defaultProfile()), Overflow: []*router.Scheduler{router.NewScheduler(cheap, defaultProfile())}}
	r := router.New()
	r.Swap(router.NewTable([]*router.Route{route}))
	serve := func(prio string) (string, error) {
		var pool string
		err := r.Serve(context.Background(), &router.Request{Protocol: router.ProtocolOpenAI, Model: "m", Priority: prio},
			func(_ context.Context, tg router.Target) error { pool = tg.Pool.Name; return nil })
		return pool, err
	}
	if pool, err := serve("standard"); err != nil || pool != "cheap" {
		t.Fatalf("saturated premium: served by %q (%v), want cheap", pool, err)
	}
	premium.Endpoints[0].SetStats(st(0, 0.1))
	if pool, err := serve("standard"); err != nil || pool != "p" {
		t.Fatalf("premium with room: served by %q (%v), want p", pool, err)
	}
	premium.Endpoints[0].SetStats(st(9, 0.1))
	cheap.Endpoints[0].SetStats(st(9, 0.1))
	_, err := serve("sheddable")
	var e *router.Error
	if !errors.As(err, &e) || e.Code != router.CodeResourceExhausted || e.Reason != "shed" {
		t.Fatalf("sheddable when all is saturated: %v", err)
	}
	// A critical request waits instead, and is served when room appears.
	done := make(chan string, 1)
	go func() { pool, _ := serve("critical"); done <- pool }()
	waitFor(t, func() bool { return route.Scheduler.Waiting() == 1 })
	premium.Endpoints[0].SetStats(st(0, 0.1))
	route.Scheduler.Wake()
	if pool := <-done; pool != "p" {
		t.Errorf("critical served by %q", pool)
	}
}

func mustEndpoint(t *testing.T, raw string) *backends.Endpoint {
	ep, err := backends.NewEndpoint(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestSessionBindingMoves: a session sticks to its endpoint while it qualifies, moves when it
// is saturated past the margin or unhealthy, and expires after its idle TTL.
func TestSessionBindingMoves(t *testing.T) {
	p := fleet(t, st(0, 0.1), st(0, 0.1), st(0, 0.1))
	store := memory.NewSessions(0)
	clock := func() time.Time { return t0.Add(100 * time.Millisecond) }
	serve := sessionServer(t, p, store)
	first := serve("conv")
	// Load the bound endpoint past the profile's saturation (queue 5) but within the margin
	// (7): the session stays, though a new request would go elsewhere.
	first.SetStats(st(6, 0.1))
	for range 5 {
		if got := serve("conv"); got != first {
			t.Fatalf("session moved within the margin: %s → %s", first.Name, got.Name)
		}
	}
	if other := serve("other"); other == first {
		t.Error("a new session went to the saturated endpoint")
	}
	// Past the margin the binding moves, and stays moved.
	first.SetStats(st(9, 0.1))
	moved := serve("conv")
	if moved == first {
		t.Fatal("session stayed on an endpoint saturated past the margin")
	}
	first.SetStats(st(0, 0.1))
	if got := serve("conv"); got != moved {
		t.Errorf("binding did not move for good: %s", got.Name)
	}
	// Unhealthy: moves.
	moved.MarkFailed(time.Now())
	if got := serve("conv"); got == moved {
		t.Error("session stayed on an ejected endpoint")
	}
	if ep, ok := store.Get(clock().Add(2*time.Minute), "p|conv"); ok {
		t.Errorf("idle binding to %s outlived its TTL", ep)
	}
}
