package router_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/router"
)

var t0 = time.Unix(1_000_000, 0)

// fleet builds a pool whose endpoints carry the given stats (nil = never scraped).
func fleet(t testing.TB, stats ...*backends.Stats) *backends.Pool {
	t.Helper()
	var eps []*backends.Endpoint
	for i, s := range stats {
		ep, err := backends.NewEndpoint(fmt.Sprintf("http://10.0.%d.%d:8000", i/250, i%250+1))
		if err != nil {
			t.Fatal(err)
		}
		if s != nil {
			ep.SetStats(s)
		}
		eps = append(eps, ep)
	}
	return backends.NewPool("p", eps, nil, backends.MetricsVLLM)
}

func st(waiting int, kv float64) *backends.Stats {
	return &backends.Stats{ScrapedAt: t0, Waiting: waiting, Running: 1, KVUsage: kv}
}

func cands(p *backends.Pool) []router.Candidate {
	var cs []router.Candidate
	for _, ep := range p.Endpoints {
		c := router.Candidate{Endpoint: ep, InFlight: ep.InFlight(), Stats: ep.Stats()}
		if c.Stats != nil {
			c.Pending = max(0, c.InFlight-c.Stats.InFlightAtScrape)
		}
		cs = append(cs, c)
	}
	return cs
}

func names(cs []router.Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Endpoint.Name)
	}
	return out
}

func TestFreshFilter(t *testing.T) {
	p := fleet(t, st(0, 0), nil, st(1, 0))
	got := names((router.FreshFilter{}).Filter(nil, cands(p)))
	if len(got) != 2 || got[0] != p.Endpoints[0].Name || got[1] != p.Endpoints[2].Name {
		t.Errorf("kept %v", got)
	}
	unknown := fleet(t, nil, nil)
	if got := (router.FreshFilter{}).Filter(nil, cands(unknown)); len(got) != 2 {
		t.Errorf("all unknown: kept %d, want all (fall back to local counts)", len(got))
	}
}

func TestSaturationFilter(t *testing.T) {
	f := &router.SaturationFilter{MaxQueue: 5, MaxKV: 0.8}
	tests := []struct {
		name     string
		stats    *backends.Stats
		inflight int
		keep     bool
	}{
		{"idle", st(0, 0.1), 0, true},
		{"queue below", st(4, 0.1), 0, true},
		{"queue at bound", st(5, 0.1), 0, false},
		{"pending pushes queue to bound", st(3, 0.1), 2, false},
		{"kv at bound with a queue", st(1, 0.8), 0, false},
		{"kv at bound, nothing queued", st(0, 0.8), 0, true},
		{"kv unknown passes", &backends.Stats{ScrapedAt: t0, KVUsage: -1}, 0, true},
		{"stats unknown passes", nil, 9, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fleet(t, tt.stats)
			for range tt.inflight {
				defer p.Endpoints[0].Acquire()()
			}
			if got := len(f.Filter(nil, cands(p))) == 1; got != tt.keep {
				t.Errorf("kept = %v, want %v", got, tt.keep)
			}
		})
	}
}

func TestScorers(t *testing.T) {
	p := fleet(t, st(0, 0.2), st(4, 0.9), st(2, -1), nil)
	defer p.Endpoints[1].Acquire()()
	defer p.Endpoints[3].Acquire()()
	defer p.Endpoints[3].Acquire()()
	tests := []struct {
		name   string
		scorer router.Scorer
		want   []float64
	}{
		// queue = waiting + pending: 0, 5, 2, unknown
		{"queue", router.QueueScorer{}, []float64{1, 0, 0.6, 0}},
		{"kv", router.KVCacheScorer{}, []float64{0.8, 0.1, 0.5, 0.5}},
		// in flight: 0, 1, 0, 2
		{"in flight", router.InFlightScorer{}, []float64{1, 0.5, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make([]float64, 4)
			tt.scorer.Score(nil, cands(p), got)
			for i := range got {
				if d := got[i] - tt.want[i]; d > 1e-9 || d < -1e-9 {
					t.Errorf("scores = %v, want %v", got, tt.want)
					break
				}
			}
		})
	}
}

func TestMaxScoreTieBreak(t *testing.T) {
	scores := []float64{0.5, 0.9, 0.2, 0.9}
	keepNew := &router.MaxScore{IntN: func(int) int { return 0 }}
	keepOld := &router.MaxScore{IntN: func(n int) int { return n - 1 }}
	if got := keepNew.Select(nil, scores); got != 3 {
		t.Errorf("got %d, want 3", got)
	}
	if got := keepOld.Select(nil, scores); got != 1 {
		t.Errorf("got %d, want 1", got)
	}
	if got := (&router.MaxScore{}).Select(nil, []float64{0.1, 0.7, 0.3}); got != 1 {
		t.Errorf("got %d, want the unique maximum 1", got)
	}
}

func TestPowerOfTwo(t *testing.T) {
	cs := make([]router.Candidate, 4)
	scores := []float64{0.1, 0.9, 0.5, 0.3}
	draws := []int{2, 0} // a = 2, then b from n-1 = 0 -> candidates 2 and 0
	i := 0
	p2c := &router.PowerOfTwo{IntN: func(int) int { d := draws[i%2]; i++; return d }}
	if got := p2c.Select(cs, scores); got != 2 {
		t.Errorf("between 2 (0.5) and 0 (0.1) picked %d", got)
	}
	// Over many real draws the worst candidate is never chosen and the best most often.
	counts := make([]int, 4)
	real := &router.PowerOfTwo{}
	for range 6000 {
		counts[real.Select(cs, scores)]++
	}
	if counts[0] != 0 || counts[1] < counts[2] || counts[2] < counts[3] {
		t.Errorf("selection counts %v", counts)
	}
}

func defaultProfile() *router.Profile {
	return &router.Profile{
		Filters: []router.Filter{router.FreshFilter{}, &router.SaturationFilter{MaxQueue: 5, MaxKV: 0.8}},
		Scorers: []router.WeightedScorer{
			{Scorer: router.QueueScorer{}, Weight: 2}, {Scorer: router.KVCacheScorer{}, Weight: 2}, {Scorer: router.InFlightScorer{}, Weight: 1},
		},
		Selector:   &router.MaxScore{IntN: func(int) int { return 0 }},
		StaleAfter: 2 * time.Second,
		Now:        func() time.Time { return t0.Add(100 * time.Millisecond) },
	}
}

func TestProfilePick(t *testing.T) {
	t.Run("prefers short queue and free cache", func(t *testing.T) {
		p := fleet(t, st(3, 0.5), st(0, 0.1), st(1, 0.2))
		res, err := defaultProfile().Pick(p, &router.Request{}, nil)
		if err != nil || res.Endpoint != p.Endpoints[1] {
			t.Fatalf("picked %v (%v)", res.Endpoint, err)
		}
		res.Done()
	})
	t.Run("stale stats are unknown, not idle", func(t *testing.T) {
		stale := st(0, 0)
		stale.ScrapedAt = t0.Add(-time.Minute)
		p := fleet(t, stale, st(2, 0.5))
		res, err := defaultProfile().Pick(p, &router.Request{}, nil)
		if err != nil || res.Endpoint != p.Endpoints[1] {
			t.Fatalf("picked %v (%v); the stale endpoint must not win", res.Endpoint, err)
		}
		res.Done()
	})
	t.Run("requests sent since the scrape count", func(t *testing.T) {
		p := fleet(t, st(0, 0.1), st(0, 0.1))
		prof := defaultProfile()
		var picks []*backends.Endpoint
		for range 4 {
			res, err := prof.Pick(p, &router.Request{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Done()
			picks = append(picks, res.Endpoint)
		}
		n0 := 0
		for _, e := range picks {
			if e == p.Endpoints[0] {
				n0++
			}
		}
		if n0 != 2 {
			t.Errorf("a burst on one snapshot went %d/4 to one endpoint; want an even spread", n0)
		}
	})
	t.Run("all saturated", func(t *testing.T) {
		p := fleet(t, st(5, 0.1), st(1, 0.95))
		_, err := defaultProfile().Pick(p, &router.Request{}, nil)
		if !errors.Is(err, router.ErrSaturated) {
			t.Fatalf("err = %v, want ErrSaturated", err)
		}
		var e *router.Error
		if !errors.As(err, &e) || e.Code != router.CodeResourceExhausted || e.RetryAfter <= 0 {
			t.Errorf("error = %+v", e)
		}
	})
	t.Run("unhealthy and skipped excluded", func(t *testing.T) {
		p := fleet(t, st(0, 0), st(0, 0), st(4, 0.7))
		p.Endpoints[0].MarkFailed(time.Now())
		res, err := defaultProfile().Pick(p, &router.Request{}, func(ep *backends.Endpoint) bool { return ep == p.Endpoints[1] })
		if err != nil || res.Endpoint != p.Endpoints[2] {
			t.Fatalf("picked %v (%v)", res.Endpoint, err)
		}
		res.Done()
	})
}

func TestSchedulerQueuesWhileSaturated(t *testing.T) {
	p := fleet(t, st(9, 0.1)) // saturated until its stats change
	prof := defaultProfile()
	prof.Filters[1] = &router.SaturationFilter{MaxQueue: 1, MaxKV: 0.8} // then one request at a time
	sched := router.NewScheduler(p, prof, router.WithQueue(3, 5*time.Second))
	r := router.New(router.WithShedClasses(nil)) // every class waits here; shedding is tested below
	r.Swap(router.NewTable([]*router.Route{{Model: "m", TargetModel: "m", Scheduler: sched}}))

	var mu sync.Mutex
	var order []string
	done := make(chan error, 3)
	start := func(prio string) {
		go func() {
			done <- r.Serve(context.Background(), &router.Request{Protocol: router.ProtocolOpenAI, Model: "m", Priority: prio}, func(context.Context, router.Target) error {
				mu.Lock()
				order = append(order, prio)
				mu.Unlock()
				return nil
			})
		}()
	}
	start("sheddable")
	waitFor(t, func() bool { return sched.Waiting() == 1 })
	start("standard")
	waitFor(t, func() bool { return sched.Waiting() == 2 })
	start("critical")
	waitFor(t, func() bool { return sched.Waiting() == 3 })

	// The queue is full: one more fails at once with 429 semantics.
	err := r.Serve(context.Background(), &router.Request{Protocol: router.ProtocolOpenAI, Model: "m", Priority: "critical"}, func(context.Context, router.Target) error { return nil })
	var e *router.Error
	if !errors.As(err, &e) || e.Code != router.CodeResourceExhausted || e.Reason != "queue_full" {
		t.Fatalf("over the bound: %v", err)
	}
	// Capacity appears: waiters go in priority order.
	p.Endpoints[0].SetStats(st(0, 0.1))
	sched.Wake()
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(order) != "[critical standard sheddable]" {
		t.Errorf("served in order %v", order)
	}
}

func TestSchedulerQueueTimeoutAndCancel(t *testing.T) {
	p := fleet(t, st(9, 0.1))
	sched := router.NewScheduler(p, defaultProfile(), router.WithQueue(10, 50*time.Millisecond))
	r := router.New()
	r.Swap(router.NewTable([]*router.Route{{Model: "m", TargetModel: "m", Scheduler: sched}}))
	err := r.Serve(context.Background(), &router.Request{Protocol: router.ProtocolOpenAI, Model: "m"}, func(context.Context, router.Target) error { return nil })
	var e *router.Error
	if !errors.As(err, &e) || e.Reason != "queue_timeout" || e.RetryAfter <= 0 {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- r.Serve(ctx, &router.Request{Protocol: router.ProtocolOpenAI, Model: "m"}, func(context.Context, router.Target) error { return nil })
	}()
	waitFor(t, func() bool { return sched.Waiting() == 1 })
	cancel()
	if err := <-errc; !errors.As(err, &e) || e.Code != router.CodeCanceled {
		t.Fatalf("err = %v", err)
	}
	if sched.Waiting() != 0 {
		t.Errorf("canceled waiter left in the queue")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRoundRobin(t *testing.T) {
	p := fleet(t, nil, nil, nil)
	rr := &router.RoundRobin{}
	seen := map[*backends.Endpoint]int{}
	for range 9 {
		res, err := rr.Pick(p, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		seen[res.Endpoint]++
		res.Done()
	}
	for _, ep := range p.Endpoints {
		if seen[ep] != 3 {
			t.Errorf("%s picked %d times of 9", ep.Name, seen[ep])
		}
	}
}

// BenchmarkProfilePick measures the default profile's cost per pick on snapshots of 10, 100
// and 1,000 endpoints.
func BenchmarkProfilePick(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		stats := make([]*backends.Stats, n)
		for i := range stats {
			stats[i] = st(i%4, float64(i%10)/20)
		}
		p := fleet(b, stats...)
		for _, ep := range p.Endpoints {
			// Learned speed, a known batch capacity of 4 and 4 streams running: the latency
			// scorer takes its full path, reading each endpoint's remaining outputs.
			ep.SetStats(&backends.Stats{ScrapedAt: t0, Running: 4, Waiting: 1, KVUsage: 0.3})
			ep.ObserveStream(1000, backends.Sent{InFlight: 1}, 115*time.Millisecond, 100*time.Millisecond, 11)
			for range 4 {
				f := ep.Fly(200)
				f.Token()
				defer f.Land()
			}
		}
		prof := defaultProfile()
		prof.Scorers = append(prof.Scorers, router.WeightedScorer{Scorer: &router.LatencyScorer{}, Weight: 3})
		prof.Selector = &router.MaxScore{}
		req := &router.Request{Protocol: router.ProtocolOpenAI, Model: "m", PromptTokens: 500}
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := prof.Pick(p, req, nil)
				if err != nil {
					b.Fatal(err)
				}
				res.Done()
			}
		})
	}
}

func TestLatencyScorer(t *testing.T) {
	p := fleet(t, st(0, 0), st(0, 0), st(0, 0))
	// Endpoint 0 prefills at 100µs/token, endpoint 1 at 200µs/token; endpoint 2 is unobserved.
	for range 100 {
		p.Endpoints[0].ObserveStream(1000, backends.Sent{InFlight: 1}, 107500*time.Microsecond, 50*time.Millisecond, 11)
		p.Endpoints[1].ObserveStream(1000, backends.Sent{InFlight: 1}, 207500*time.Microsecond, 50*time.Millisecond, 11)
	}
	scores := make([]float64, 3)
	(&router.LatencyScorer{}).Score(&router.Request{PromptTokens: 4000}, cands(p), scores)
	if scores[0] != 1 || scores[1] != 0 || scores[2] != 1 {
		t.Errorf("scores = %v, want [1 0 1] (the unobserved endpoint is explored)", scores)
	}
	// In slow decode steps endpoint 0 is worse for a short prompt despite its faster prefill.
	for range 200 {
		p.Endpoints[0].ObserveStream(1000, backends.Sent{InFlight: 1}, 400*time.Millisecond, 2*time.Second, 11)
	}
	(&router.LatencyScorer{}).Score(&router.Request{PromptTokens: 300}, cands(p), scores)
	if scores[0] != 0 || scores[1] != 1 {
		t.Errorf("short prompt, endpoint 0 in slow decode steps: scores = %v, want endpoint 1 preferred", scores)
	}
	// Prefill work already sent to endpoint 1 counts against it.
	p.Endpoints[1].StartPrefill(50000)
	(&router.LatencyScorer{}).Score(&router.Request{PromptTokens: 300}, cands(p), scores)
	if scores[1] != 0 {
		t.Errorf("endpoint 1 with 50k tokens of prefill queued: scores = %v", scores)
	}
}

// TestShedHeadroom: sheddable requests leave a quarter of an endpoint's batch slots free;
// other classes may use them.
func TestShedHeadroom(t *testing.T) {
	f := &router.SaturationFilter{MaxQueue: 5, MaxKV: 0.8, Shed: map[string]bool{"sheddable": true}, Headroom: 0.25}
	p := fleet(t, &backends.Stats{ScrapedAt: t0, Running: 8, Waiting: 1, KVUsage: 0.1}) // learns capacity 8
	for _, tt := range []struct {
		running  int
		priority string
		keep     bool
	}{
		{5, "sheddable", true},
		{6, "sheddable", false}, // 6 of 8 busy: the last 2 are kept free
		{6, "critical", true},
		{7, "standard", true},
	} {
		p.Endpoints[0].SetStats(&backends.Stats{ScrapedAt: t0, Running: tt.running, KVUsage: 0.1})
		got := len(f.Filter(&router.Request{Priority: tt.priority}, cands(p))) == 1
		if got != tt.keep {
			t.Errorf("%d running, %s: kept %v, want %v", tt.running, tt.priority, got, tt.keep)
		}
	}
}
