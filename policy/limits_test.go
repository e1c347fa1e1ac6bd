package policy_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/cluster"
	"github.com/switchyard-ai/switchyard/cluster/memory"
	"github.com/switchyard-ai/switchyard/policy"
)

// noon is the start of a minute window (and of an hour window).
var noon = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for limiters.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// recorder records the charges a limiter sends to its counters.
type recorder struct {
	cluster.Counters
	mu    sync.Mutex
	tried [][]cluster.Charge
	added [][]cluster.Charge
}

func (r *recorder) TryAdd(now time.Time, charges []cluster.Charge) (bool, []int64) {
	r.mu.Lock()
	r.tried = append(r.tried, append([]cluster.Charge(nil), charges...))
	r.mu.Unlock()
	return r.Counters.TryAdd(now, charges)
}

func (r *recorder) Add(now time.Time, charges []cluster.Charge) {
	r.mu.Lock()
	r.added = append(r.added, append([]cluster.Charge(nil), charges...))
	r.mu.Unlock()
	r.Counters.Add(now, charges)
}

func rpm(name string, max int64, by ...string) policy.Limit {
	return policy.Limit{Name: name, Kind: policy.LimitRequests, Max: max, Window: time.Minute, By: by}
}

func tpm(name string, max int64, by ...string) policy.Limit {
	return policy.Limit{Name: name, Kind: policy.LimitTokens, Max: max, Window: time.Minute, By: by}
}

var acme = policy.Subject{Tenant: "acme", Model: "m", Route: "/v1/chat/completions"}

// mustReserve reserves or fails the test.
func mustReserve(t *testing.T, l *policy.Limiter, s policy.Subject, tokens int64) *policy.Reservation {
	t.Helper()
	r, err := l.Reserve(s, tokens)
	if err != nil {
		t.Fatalf("Reserve(%+v, %d) = %v; want admitted", s, tokens, err)
	}
	return r
}

// mustDeny expects a refusal and returns its Denial.
func mustDeny(t *testing.T, l *policy.Limiter, s policy.Subject, tokens int64) *policy.Denial {
	t.Helper()
	r, err := l.Reserve(s, tokens)
	var d *policy.Denial
	if !errors.As(err, &d) {
		t.Fatalf("Reserve(%+v, %d) = %v, %v; want a *Denial", s, tokens, r, err)
	}
	if r != nil {
		t.Errorf("Reserve returned a reservation with its denial")
	}
	return d
}

func TestReserveWindowEdges(t *testing.T) {
	clk := newClock(noon)
	l := policy.NewLimiter(memory.NewCounters(), []policy.Limit{rpm("rpm", 3)}, policy.WithClock(clk.Now))
	steps := []struct {
		at        time.Duration // since noon
		wantOK    bool
		wantRetry time.Duration
	}{
		{at: 59*time.Second + 999*time.Millisecond, wantOK: true},
		{at: 59*time.Second + 999*time.Millisecond, wantOK: true},
		{at: 59*time.Second + 999*time.Millisecond, wantOK: true},
		{at: 59*time.Second + 999*time.Millisecond, wantRetry: time.Second}, // 1ms rounded up
		{at: time.Minute, wantOK: true},
		{at: time.Minute, wantOK: true},
		{at: time.Minute, wantOK: true},
		{at: time.Minute, wantRetry: time.Minute},
		{at: time.Minute + 500*time.Millisecond, wantRetry: time.Minute}, // 59.5s rounded up
		{at: 2*time.Minute - time.Nanosecond, wantRetry: time.Second},
		{at: 2 * time.Minute, wantOK: true},
	}
	for i, s := range steps {
		clk.Set(noon.Add(s.at))
		_, err := l.Reserve(acme, 0)
		if s.wantOK {
			if err != nil {
				t.Errorf("step %d at +%v: %v; want admitted", i, s.at, err)
			}
			continue
		}
		var d *policy.Denial
		if !errors.As(err, &d) {
			t.Errorf("step %d at +%v: %v; want a *Denial", i, s.at, err)
			continue
		}
		if d.RetryAfter != s.wantRetry {
			t.Errorf("step %d at +%v: RetryAfter = %v; want %v", i, s.at, d.RetryAfter, s.wantRetry)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		limit  policy.Limit
		fillAt time.Duration // since noon: the limit's only request
		denyAt time.Duration
		want   time.Duration
	}{
		{"window start", rpm("rpm", 1), 0, 0, time.Minute},
		{"just after start", rpm("rpm", 1), 0, time.Millisecond, time.Minute},
		{"whole seconds left", rpm("rpm", 1), 0, 30 * time.Second, 30 * time.Second},
		{"fraction rounds up", rpm("rpm", 1), 0, 58*time.Second + 500*time.Millisecond, 2 * time.Second},
		{"last nanosecond", rpm("rpm", 1), 0, time.Minute - 1, time.Second},
		{
			"sub-second window is at least 1s",
			policy.Limit{Name: "rps10", Max: 1, Window: 100 * time.Millisecond},
			0, 50 * time.Millisecond, time.Second,
		},
		{
			"hour window",
			policy.Limit{Name: "rph", Max: 1, Window: time.Hour},
			10 * time.Minute, 20 * time.Minute, 40 * time.Minute,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(noon.Add(tt.fillAt))
			l := policy.NewLimiter(memory.NewCounters(), []policy.Limit{tt.limit}, policy.WithClock(clk.Now))
			mustReserve(t, l, acme, 0)
			clk.Set(noon.Add(tt.denyAt))
			if d := mustDeny(t, l, acme, 0); d.RetryAfter != tt.want {
				t.Errorf("RetryAfter = %v; want %v", d.RetryAfter, tt.want)
			}
		})
	}
}

func TestReserveTooLarge(t *testing.T) {
	tests := []struct {
		name      string
		limit     policy.Limit
		at        time.Duration
		tokens    int64
		wantOK    bool
		wantRetry time.Duration
	}{
		{"zero tokens", tpm("tpm", 1000), 0, 0, true, 0},
		{"exactly max", tpm("tpm", 1000), 0, 1000, true, 0},
		{"over max waits a window", tpm("tpm", 1000), 0, 1001, false, time.Minute},
		{"over max near the window end still waits a window", tpm("tpm", 1000), 59 * time.Second, 1001, false, time.Minute},
		{"over max of an hour limit", policy.Limit{Name: "tph", Kind: policy.LimitTokens, Max: 10, Window: time.Hour}, 0, 11, false, time.Hour},
		{"max zero refuses requests", rpm("off", 0), 30 * time.Second, 0, false, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(noon.Add(tt.at))
			l := policy.NewLimiter(memory.NewCounters(), []policy.Limit{tt.limit}, policy.WithClock(clk.Now))
			if tt.wantOK {
				mustReserve(t, l, acme, tt.tokens)
				return
			}
			d := mustDeny(t, l, acme, tt.tokens)
			if d.RetryAfter != tt.wantRetry || d.Limit.Name != tt.limit.Name {
				t.Errorf("Denial = %s after %v; want %s after %v", d.Limit.Name, d.RetryAfter, tt.limit.Name, tt.wantRetry)
			}
			// Nothing was charged: the whole limit is still there.
			if tt.limit.Kind == policy.LimitTokens {
				if got := tokensLeft(t, l, acme); got != tt.limit.Max {
					t.Errorf("tokens left after the denial = %d; want %d", got, tt.limit.Max)
				}
			}
		})
	}
}

// quotaOf reserves tokens and reports the quota left: the reservation's Status, or the
// Denial's Quota when refused.
func quotaOf(t *testing.T, l *policy.Limiter, s policy.Subject, tokens int64) (q policy.Quota, admitted bool) {
	t.Helper()
	r, err := l.Reserve(s, tokens)
	if err == nil {
		return r.Status(), true
	}
	var d *policy.Denial
	if !errors.As(err, &d) {
		t.Fatalf("Reserve: %v; want nil or a *Denial", err)
	}
	return d.Quota, false
}

// tokensLeft reserves no tokens and reports the tokens left under the tightest token limit.
func tokensLeft(t *testing.T, l *policy.Limiter, s policy.Subject) int64 {
	t.Helper()
	q, _ := quotaOf(t, l, s, 0)
	return q.Tokens.Remaining
}

func TestSettle(t *testing.T) {
	clk := newClock(noon.Add(10 * time.Second))
	l := policy.NewLimiter(memory.NewCounters(), []policy.Limit{tpm("tpm", 1000)}, policy.WithClock(clk.Now))

	r1 := mustReserve(t, l, acme, 600)
	mustDeny(t, l, acme, 600)

	// Settling below the reservation makes room.
	r1.Settle(100)
	r2 := mustReserve(t, l, acme, 600)
	if got := tokensLeft(t, l, acme); got != 300 {
		t.Errorf("after settling down: remaining %d; want 300", got)
	}

	// A stream that ran past its reservation keeps counting: 100 + 950 = 1050 of 1000.
	r2.Settle(950)
	if got := tokensLeft(t, l, acme); got != 0 {
		t.Errorf("after settling up: remaining %d; want 0", got)
	}
	mustDeny(t, l, acme, 1)

	// Only the first Settle counts.
	r2.Settle(0)
	r1.Settle(0)
	mustDeny(t, l, acme, 1)

	// An aborted stream in the next window keeps what it consumed.
	clk.Set(noon.Add(time.Minute))
	r3 := mustReserve(t, l, acme, 500)
	r3.Settle(120)
	if got := tokensLeft(t, l, acme); got != 880 {
		t.Errorf("after an abort: remaining %d; want 880", got)
	}
}

func TestSettleChargesTheReservedWindow(t *testing.T) {
	clk := newClock(noon.Add(30 * time.Second))
	rec := &recorder{Counters: memory.NewCounters()}
	l := policy.NewLimiter(rec, []policy.Limit{rpm("rpm", 10), tpm("tpm", 1000)}, policy.WithClock(clk.Now))

	r := mustReserve(t, l, acme, 600)
	clk.Set(noon.Add(70 * time.Second))
	r.Settle(900)

	if len(rec.added) != 1 || len(rec.added[0]) != 1 {
		t.Fatalf("Add calls = %+v; want one with the token charge only", rec.added)
	}
	got := rec.added[0][0]
	if got.Key != "tpm" || !got.WindowStart.Equal(noon) || got.Amount != 300 || got.Window != time.Minute {
		t.Errorf("settlement charge = %+v; want key tpm, window start %v, amount 300", got, noon)
	}
	// The new window is not charged for usage admitted by the old one.
	if got := tokensLeft(t, l, acme); got != 1000 {
		t.Errorf("new window remaining %d; want 1000", got)
	}
}

// TestCharge meters a long-lived session: each Charge adds to the token limits' current
// windows, says whether room is left, and a later window starts afresh.
func TestCharge(t *testing.T) {
	clk := newClock(noon.Add(10 * time.Second))
	l := policy.NewLimiter(memory.NewCounters(), []policy.Limit{rpm("rpm", 10), tpm("tpm", 100)}, policy.WithClock(clk.Now))
	r := mustReserve(t, l, acme, 1)
	r.Settle(0) // the session holds no tokens up front
	for i, tt := range []struct {
		tokens int64
		room   bool
		left   int64
	}{{40, true, 60}, {0, true, 60}, {-5, true, 60}, {59, true, 1}, {1, false, 0}, {30, false, 0}} {
		if room := r.Charge(tt.tokens); room != tt.room {
			t.Errorf("charge %d (%d): room %v; want %v", i, tt.tokens, room, tt.room)
		}
		if got := tokensLeft(t, l, acme); got != tt.left {
			t.Errorf("charge %d (%d): remaining %d; want %d", i, tt.tokens, got, tt.left)
		}
	}
	mustDeny(t, l, acme, 1)
	// Usage after the window rolls over counts in the new window only.
	clk.Set(noon.Add(time.Minute + time.Second))
	if !r.Charge(25) {
		t.Error("no room in a fresh window after 25 tokens")
	}
	if got := tokensLeft(t, l, acme); got != 75 {
		t.Errorf("new window remaining %d; want 75", got)
	}
	// Request limits are not charged by it.
	for range 9 {
		mustReserve(t, l, acme, 0)
	}
	var none *policy.Reservation
	if !none.Charge(10) {
		t.Error("a nil reservation reported no room")
	}
}

func TestSettleNoChange(t *testing.T) {
	rec := &recorder{Counters: memory.NewCounters()}
	clk := newClock(noon)
	l := policy.NewLimiter(rec, []policy.Limit{rpm("rpm", 10), tpm("tpm", 1000)}, policy.WithClock(clk.Now))
	mustReserve(t, l, acme, 200).Settle(200)
	mustReserve(t, l, acme, -5).Settle(-1) // negative counts as 0
	only := policy.NewLimiter(rec, []policy.Limit{rpm("rpm2", 10)}, policy.WithClock(clk.Now))
	mustReserve(t, only, acme, 200).Settle(10) // no token limit to settle
	if len(rec.added) != 0 {
		t.Errorf("Add calls = %+v; want none", rec.added)
	}
	var nilRes *policy.Reservation
	nilRes.Settle(5)
	if q := nilRes.Status(); q.Requests != nil || q.Tokens != nil {
		t.Errorf("nil Status = %+v; want zero", q)
	}
}

func TestSettleConcurrentCountsOnce(t *testing.T) {
	clk := newClock(noon)
	l := policy.NewLimiter(memory.NewCounters(), []policy.Limit{tpm("tpm", 1000)}, policy.WithClock(clk.Now))
	r := mustReserve(t, l, acme, 600)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { r.Settle(100) })
	}
	wg.Wait()
	if got := tokensLeft(t, l, acme); got != 900 {
		t.Errorf("remaining %d; want 900", got)
	}
}

func TestAllLimitsMustPass(t *testing.T) {
	tests := []struct {
		name       string
		limits     []policy.Limit
		before     []int64 // tokens of earlier requests
		tokens     int64
		wantDenier string
		wantUsed   map[string]int64 // counter key → value after the refusal
	}{
		{
			name:       "request limit has room, token limit does not",
			limits:     []policy.Limit{rpm("tenant-rpm", 10, "tenant"), tpm("model-tpm", 1000, "model")},
			before:     []int64{900},
			tokens:     200,
			wantDenier: "model-tpm",
			wantUsed:   map[string]int64{"tenant-rpm|tenant=acme": 1, "model-tpm|model=m": 900},
		},
		{
			name:       "token limit has room, request limit does not",
			limits:     []policy.Limit{tpm("model-tpm", 1000, "model"), rpm("tenant-rpm", 2, "tenant")},
			before:     []int64{100, 0},
			tokens:     200,
			wantDenier: "tenant-rpm",
			wantUsed:   map[string]int64{"tenant-rpm|tenant=acme": 2, "model-tpm|model=m": 100},
		},
		{
			name:       "first of two full limits is named",
			limits:     []policy.Limit{rpm("tenant-rpm", 1, "tenant"), tpm("model-tpm", 100, "model")},
			before:     []int64{100},
			tokens:     1,
			wantDenier: "tenant-rpm",
			wantUsed:   map[string]int64{"tenant-rpm|tenant=acme": 1, "model-tpm|model=m": 100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counters := memory.NewCounters()
			l := policy.NewLimiter(counters, tt.limits, policy.WithClock(newClock(noon).Now))
			for _, tokens := range tt.before {
				mustReserve(t, l, acme, tokens)
			}
			if d := mustDeny(t, l, acme, tt.tokens); d.Limit.Name != tt.wantDenier {
				t.Errorf("denied by %q; want %q", d.Limit.Name, tt.wantDenier)
			}
			for key, want := range tt.wantUsed {
				_, v := counters.TryAdd(noon, []cluster.Charge{{Key: key, Window: time.Minute, WindowStart: noon, Max: 1 << 40}})
				if v[0] != want {
					t.Errorf("counter %q = %d; want %d", key, v[0], want)
				}
			}
		})
	}
}

func TestByAndMatch(t *testing.T) {
	beta := policy.Subject{Tenant: "beta", Model: "m", Route: acme.Route}
	acmeM2 := policy.Subject{Tenant: "acme", Model: "m2", Route: acme.Route}
	acmeEmbed := policy.Subject{Tenant: "acme", Model: "m", Route: "/v1/embeddings"}
	type try struct {
		s      policy.Subject
		wantOK bool
	}
	tests := []struct {
		name  string
		limit policy.Limit
		tries []try
	}{
		{
			name:  "no By shares one counter",
			limit: rpm("global", 1),
			tries: []try{{acme, true}, {beta, false}},
		},
		{
			name:  "per tenant counters are separate",
			limit: rpm("tenant-rpm", 1, "tenant"),
			tries: []try{{acme, true}, {acme, false}, {beta, true}, {acmeM2, false}},
		},
		{
			name:  "Match restricts to one tenant",
			limit: policy.Limit{Name: "acme-rpm", Max: 1, Window: time.Minute, Match: map[string]string{"tenant": "acme"}},
			tries: []try{{acme, true}, {acme, false}, {beta, true}, {beta, true}},
		},
		{
			name:  "per model",
			limit: rpm("model-rpm", 1, "model"),
			tries: []try{{acme, true}, {beta, false}, {acmeM2, true}},
		},
		{
			name:  "per route",
			limit: rpm("route-rpm", 1, "route"),
			tries: []try{{acme, true}, {acmeM2, false}, {acmeEmbed, true}},
		},
		{
			name:  "per tenant and model",
			limit: rpm("tm", 1, "tenant", "model"),
			tries: []try{{acme, true}, {acmeM2, true}, {beta, true}, {acme, false}},
		},
		{
			name: "Match on model and route, keyed by tenant",
			limit: policy.Limit{Name: "m-chat", Max: 1, Window: time.Minute, By: []string{"tenant"},
				Match: map[string]string{"model": "m", "route": acme.Route}},
			tries: []try{{acme, true}, {acme, false}, {beta, true}, {acmeM2, true}, {acmeEmbed, true}, {acmeEmbed, true}},
		},
		{
			name:  "values cannot forge another counter's key",
			limit: rpm("tm", 1, "tenant", "model"),
			tries: []try{
				{policy.Subject{Tenant: "a|model=b", Model: "c"}, true},
				{policy.Subject{Tenant: "a", Model: "b|model=c"}, true},
				{policy.Subject{Tenant: "a%7Cmodel%3Db", Model: "c"}, true},
				{policy.Subject{Tenant: "a", Model: "b|model=c"}, false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := policy.NewLimiter(memory.NewCounters(), []policy.Limit{tt.limit}, policy.WithClock(newClock(noon).Now))
			for i, try := range tt.tries {
				_, err := l.Reserve(try.s, 0)
				if (err == nil) != try.wantOK {
					t.Errorf("try %d %+v: err = %v; want admitted %v", i, try.s, err, try.wantOK)
				}
			}
		})
	}
}

func TestCounterKeys(t *testing.T) {
	rec := &recorder{Counters: memory.NewCounters()}
	clk := newClock(noon.Add(90*time.Minute + 12*time.Second))
	l := policy.NewLimiter(rec, []policy.Limit{
		rpm("global-rpm", 100),
		{Name: "tenant-tpm", Kind: policy.LimitTokens, Max: 1000, Window: time.Hour, By: []string{"tenant", "model"}},
		{Name: "route-rpm", Max: 5, Window: time.Minute, By: []string{"route"}, Match: map[string]string{"tenant": "other"}},
	}, policy.WithClock(clk.Now))
	mustReserve(t, l, acme, 42)

	want := []cluster.Charge{
		{Key: "global-rpm", Window: time.Minute, WindowStart: noon.Add(90 * time.Minute), Max: 100, Amount: 1},
		{Key: "tenant-tpm|tenant=acme|model=m", Window: time.Hour, WindowStart: noon.Add(time.Hour), Max: 1000, Amount: 42},
	}
	if len(rec.tried) != 1 || len(rec.tried[0]) != len(want) {
		t.Fatalf("TryAdd calls = %+v; want one with %d charges", rec.tried, len(want))
	}
	for i, got := range rec.tried[0] {
		w := want[i]
		if got.Key != w.Key || got.Window != w.Window || !got.WindowStart.Equal(w.WindowStart) ||
			got.Max != w.Max || got.Amount != w.Amount {
			t.Errorf("charge %d = %+v; want %+v", i, got, w)
		}
	}
}

func TestReserveConcurrent(t *testing.T) {
	const (
		goroutines = 64
		each       = 100
		max        = 500
	)
	clk := newClock(noon.Add(30 * time.Second))
	l := policy.NewLimiter(memory.NewCounters(), []policy.Limit{
		rpm("rpm", max),
		tpm("tpm", 1<<40, "tenant"),
	}, policy.WithClock(clk.Now))
	var admitted, denied atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				r, err := l.Reserve(acme, 10)
				if err != nil {
					if !errors.Is(err, policy.ErrRateLimited) {
						t.Errorf("Reserve: %v", err)
					}
					denied.Add(1)
					continue
				}
				admitted.Add(1)
				r.Settle(7)
			}
		})
	}
	wg.Wait()
	if a, d := admitted.Load(), denied.Load(); a != max || d != goroutines*each-max {
		t.Errorf("admitted %d, denied %d; want %d, %d", a, d, max, goroutines*each-max)
	}
	// The refused requests charged no tokens; the admitted ones were settled to 7 each.
	if got := mustDeny(t, l, acme, 0).Quota.Tokens; got.Limit-got.Remaining != 7*max {
		t.Errorf("tokens used %d; want %d", got.Limit-got.Remaining, 7*max)
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name         string
		limits       []policy.Limit
		at           time.Duration
		before       int // earlier requests of 100 tokens
		tokens       int64
		wantDenied   bool
		wantRequests *policy.LimitStatus
		wantTokens   *policy.LimitStatus
	}{
		{
			name:   "no limits",
			limits: nil,
		},
		{
			name:         "one request limit",
			limits:       []policy.Limit{rpm("rpm", 10)},
			at:           20 * time.Second,
			wantRequests: &policy.LimitStatus{Name: "rpm", Limit: 10, Remaining: 9, Reset: 40 * time.Second},
		},
		{
			name: "tightest of each kind",
			limits: []policy.Limit{
				rpm("tenant-rpm", 100, "tenant"),
				rpm("global-rpm", 5),
				{Name: "tenant-tph", Kind: policy.LimitTokens, Max: 100000, Window: time.Hour, By: []string{"tenant"}},
				tpm("tenant-tpm", 1000, "tenant"),
			},
			at:           59*time.Second + 500*time.Millisecond,
			before:       2,
			tokens:       250,
			wantRequests: &policy.LimitStatus{Name: "global-rpm", Limit: 5, Remaining: 2, Reset: 500 * time.Millisecond},
			wantTokens:   &policy.LimitStatus{Name: "tenant-tpm", Limit: 1000, Remaining: 550, Reset: 500 * time.Millisecond},
		},
		{
			name:         "ties go to the first limit",
			limits:       []policy.Limit{tpm("a", 1000), tpm("b", 1000, "model")},
			tokens:       10,
			wantRequests: nil,
			wantTokens:   &policy.LimitStatus{Name: "a", Limit: 1000, Remaining: 990, Reset: time.Minute},
		},
		{
			name:         "settled overuse shows no room, not negative",
			limits:       []policy.Limit{tpm("tpm", 150)},
			before:       2, // 200 tokens against 150 via settlement
			tokens:       0,
			wantDenied:   true,
			wantTokens:   &policy.LimitStatus{Name: "tpm", Limit: 150, Remaining: 0, Reset: time.Minute},
			wantRequests: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(noon.Add(tt.at))
			l := policy.NewLimiter(memory.NewCounters(), tt.limits, policy.WithClock(clk.Now))
			for range tt.before {
				mustReserve(t, l, acme, 0).Settle(100)
			}
			q, admitted := quotaOf(t, l, acme, tt.tokens)
			if admitted == tt.wantDenied {
				t.Errorf("admitted = %v; want %v", admitted, !tt.wantDenied)
			}
			checkStatus(t, "Requests", q.Requests, tt.wantRequests)
			checkStatus(t, "Tokens", q.Tokens, tt.wantTokens)
		})
	}
}

func checkStatus(t *testing.T, what string, got, want *policy.LimitStatus) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %+v; want %+v", what, got, want)
	case *got != *want:
		t.Errorf("%s = %+v; want %+v", what, *got, *want)
	}
}

func TestDenial(t *testing.T) {
	clk := newClock(noon.Add(45 * time.Second))
	l := policy.NewLimiter(memory.NewCounters(), []policy.Limit{rpm("tenant-rpm", 2, "tenant"), tpm("tenant-tpm", 1000, "tenant")},
		policy.WithClock(clk.Now))
	mustReserve(t, l, acme, 300)
	mustReserve(t, l, acme, 300)

	_, err := l.Reserve(acme, 100)
	if !errors.Is(err, policy.ErrRateLimited) {
		t.Fatalf("err = %v; want it to wrap ErrRateLimited", err)
	}
	var d *policy.Denial
	if !errors.As(err, &d) {
		t.Fatalf("err = %v; want a *Denial", err)
	}
	if d.Limit.Name != "tenant-rpm" || d.RetryAfter != 15*time.Second {
		t.Errorf("denied by %q, retry after %v; want tenant-rpm, 15s", d.Limit.Name, d.RetryAfter)
	}
	checkStatus(t, "Requests", d.Quota.Requests, &policy.LimitStatus{Name: "tenant-rpm", Limit: 2, Remaining: 0, Reset: 15 * time.Second})
	checkStatus(t, "Tokens", d.Quota.Tokens, &policy.LimitStatus{Name: "tenant-tpm", Limit: 1000, Remaining: 400, Reset: 15 * time.Second})
	for _, want := range []string{"policy: rate limited", "tenant-rpm", "15s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Error() = %q; want it to contain %q", err.Error(), want)
		}
	}
}

func TestValidateLimits(t *testing.T) {
	tests := []struct {
		name    string
		limits  []policy.Limit
		wantErr string // empty: valid
	}{
		{"none", nil, ""},
		{"valid", []policy.Limit{rpm("a", 1, "tenant", "model", "route"), tpm("b", 0)}, ""},
		{"no name", []policy.Limit{{Max: 1, Window: time.Minute}}, "no name"},
		{"negative max", []policy.Limit{rpm("a", -1)}, "negative"},
		{"no window", []policy.Limit{{Name: "a", Max: 1}}, "window"},
		{"unknown kind", []policy.Limit{{Name: "a", Kind: 7, Max: 1, Window: time.Minute}}, "kind"},
		{"unknown by", []policy.Limit{rpm("a", 1, "user")}, `by "user"`},
		{"by twice", []policy.Limit{rpm("a", 1, "tenant", "tenant")}, "twice"},
		{"unknown match", []policy.Limit{{Name: "a", Max: 1, Window: time.Minute, Match: map[string]string{"team": "x"}}}, `match "team"`},
		{"duplicate name", []policy.Limit{rpm("a", 1), tpm("a", 1)}, "defined twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := policy.ValidateLimits(tt.limits)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("ValidateLimits = %v; want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ValidateLimits = %v; want an error containing %q", err, tt.wantErr)
			}
			defer func() {
				if recover() == nil {
					t.Error("NewLimiter did not panic on invalid limits")
				}
			}()
			policy.NewLimiter(memory.NewCounters(), tt.limits)
		})
	}
}

func TestLimiterCopiesLimits(t *testing.T) {
	limits := []policy.Limit{{Name: "acme", Max: 1, Window: time.Minute, By: []string{"tenant"}, Match: map[string]string{"tenant": "acme"}}}
	l := policy.NewLimiter(memory.NewCounters(), limits, policy.WithClock(newClock(noon).Now))
	limits[0].Match["tenant"] = "beta"
	limits[0].By[0] = "model"
	mustReserve(t, l, acme, 0)
	mustDeny(t, l, acme, 0)
	mustReserve(t, l, policy.Subject{Tenant: "beta"}, 0)
	mustReserve(t, l, policy.Subject{Tenant: "beta"}, 0)
}
