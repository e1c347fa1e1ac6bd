package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/cluster/memory"
	"github.com/switchyard-ai/switchyard/router"
)

// TestPickersSkipDrained: every picker leaves a drained endpoint out, even when it is the
// best by load, answers Unavailable when all are drained, and picks it again once undrained.
func TestPickersSkipDrained(t *testing.T) {
	for _, tt := range []struct {
		name   string
		picker router.Picker
	}{
		{"profile", defaultProfile()},
		{"least in flight", &router.LeastInFlight{IntN: func(int) int { return 0 }}},
		{"round robin", &router.RoundRobin{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The first endpoint is the idlest, so every picker would choose it undrained.
			p := fleet(t, st(0, 0.1), st(3, 0.5), st(3, 0.5))
			for _, ep := range p.Endpoints[1:] {
				done := ep.Acquire()
				defer done()
			}
			drained := p.Endpoints[0]
			drained.SetDrained(true)
			for range 6 {
				res, err := tt.picker.Pick(p, &router.Request{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				res.Done()
				if res.Endpoint == drained {
					t.Fatalf("picked drained endpoint %s", drained.Name)
				}
			}
			for _, ep := range p.Endpoints {
				ep.SetDrained(true)
			}
			if _, err := tt.picker.Pick(p, &router.Request{}, nil); router.AsError(err).Code != router.CodeUnavailable {
				t.Errorf("all drained: err %v, want Unavailable", err)
			}
			for _, ep := range p.Endpoints {
				ep.SetDrained(false)
			}
			seen := map[*backends.Endpoint]bool{}
			for range 6 {
				res, err := tt.picker.Pick(p, &router.Request{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				res.Done()
				seen[res.Endpoint] = true
			}
			if !seen[drained] {
				t.Errorf("undrained endpoint %s was never picked", drained.Name)
			}
		})
	}
}

// TestDrainMovesSession: a session bound to an endpoint that is drained moves to another one
// and stays there after the endpoint returns.
func TestDrainMovesSession(t *testing.T) {
	p := fleet(t, st(0, 0.1), st(0, 0.1), st(0, 0.1))
	store := memory.NewSessions(0)
	serve := sessionServer(t, p, store)
	first := serve("conv")
	first.SetDrained(true)
	moved := serve("conv")
	if moved == first {
		t.Fatalf("session stayed on drained endpoint %s", first.Name)
	}
	if got, _ := store.Get(t0.Add(100*time.Millisecond), "p|conv"); got != moved.Name {
		t.Errorf("binding is %q, want %q", got, moved.Name)
	}
	first.SetDrained(false)
	if got := serve("conv"); got != moved {
		t.Errorf("session went back to %s after undrain, want it to stay on %s", got.Name, moved.Name)
	}
}

// sessionServer routes model m to pool p with session affinity over store, judged at t0+100ms,
// and returns a function that serves one request of a session and reports its endpoint.
func sessionServer(t *testing.T, p *backends.Pool, store *memory.Sessions) func(session string) *backends.Endpoint {
	clock := func() time.Time { return t0.Add(100 * time.Millisecond) }
	sched := router.NewScheduler(p, defaultProfile(), router.WithSessions(store, time.Minute, 7, 0.9), router.WithSchedulerClock(clock))
	r := router.New()
	r.Swap(router.NewTable([]*router.Route{{Model: "m", TargetModel: "m", Scheduler: sched}}))
	return func(session string) *backends.Endpoint {
		t.Helper()
		var ep *backends.Endpoint
		err := r.Serve(context.Background(), &router.Request{Protocol: router.ProtocolOpenAI, Model: "m", SessionKey: session},
			func(_ context.Context, tg router.Target) error { ep = tg.Endpoint; return nil })
		if err != nil {
			t.Fatal(err)
		}
		return ep
	}
}
