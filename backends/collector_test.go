package backends_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-ai/switchyard/backends"
)

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) != "" {
		serveBenchPages() // the child process of BenchmarkCollector100Endpoints
		return
	}
	goleak.VerifyTestMain(m)
}

// fakeClock is a settable clock for cool-off checks.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// metricsServer serves a settable /metrics page.
type metricsServer struct {
	*httptest.Server
	hits atomic.Int64

	mu      sync.Mutex
	status  int
	body    []byte
	onHit   func(*http.Request) // called before answering; may block
	paths   []string
	handler http.HandlerFunc // replaces the page when set
}

func newMetricsServer(t *testing.T, body []byte) *metricsServer {
	s := &metricsServer{status: http.StatusOK, body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, body, onHit, handler := s.status, s.body, s.onHit, s.handler
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		if onHit != nil {
			onHit(r)
		}
		if handler != nil {
			handler(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// setOnHit sets a function called with each request before it is answered; it may block.
func (s *metricsServer) setOnHit(f func(*http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onHit = f
}

// setHandler makes the server answer with h instead of its page.
func (s *metricsServer) setHandler(h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

// path returns the path of the i-th request.
func (s *metricsServer) path(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paths[i]
}

func (s *metricsServer) set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// newPool builds a pool of endpoints at urls sharing a client closed when the test ends.
func newPool(t *testing.T, name string, format backends.MetricsFormat, urls ...string) *backends.Pool {
	t.Helper()
	client, err := backends.NewHTTPClient(backends.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	var eps []*backends.Endpoint
	for _, u := range urls {
		ep, err := backends.NewEndpoint(u)
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	return backends.NewPool(name, eps, client, format)
}

func quiet() backends.CollectorOption {
	return backends.WithLogger(slog.New(slog.DiscardHandler))
}

func TestCollectorPublishes(t *testing.T) {
	tests := []struct {
		file       string
		configured backends.MetricsFormat
		detected   backends.MetricsFormat
	}{
		{"vllm.txt", backends.MetricsVLLM, backends.MetricsVLLM},
		{"vllm_dp.txt", backends.MetricsAuto, backends.MetricsVLLM},
		{"vllm_old.txt", backends.MetricsAuto, backends.MetricsVLLM},
		{"sglang.txt", backends.MetricsAuto, backends.MetricsSGLang},
		{"tgi.txt", backends.MetricsAuto, backends.MetricsTGI},
		{"triton.txt", backends.MetricsAuto, backends.MetricsTriton},
		{"triton.txt", backends.MetricsTriton, backends.MetricsTriton},
	}
	for _, tt := range tests {
		t.Run(string(tt.configured)+"/"+tt.file, func(t *testing.T) {
			in := page(t, tt.file)
			srv := newMetricsServer(t, in)
			p := newPool(t, "p", tt.configured, srv.URL+"/base")
			ep := p.Endpoints[0]
			clock := newFakeClock()
			var hooked []*backends.Endpoint
			c := backends.NewCollector([]*backends.Pool{p}, quiet(), backends.WithClock(clock.Now),
				backends.WithOnScrape(func(hp *backends.Pool, hep *backends.Endpoint) {
					if hp != p || hep.Stats() == nil {
						t.Errorf("hook called with pool %v, stats %v", hp.Name, hep.Stats())
					}
					hooked = append(hooked, hep)
				}))
			if ep.Stats() != nil {
				t.Fatal("stats before any scrape")
			}
			for i := range 2 { // the first scrape of an auto pool detects; the second streams
				if err := c.ScrapeOnce(context.Background(), p, ep); err != nil {
					t.Fatal(err)
				}
				if got := p.MetricsFormat(); got != tt.detected {
					t.Fatalf("format %q, want %q", got, tt.detected)
				}
				want, err := parse(t, tt.detected, in)
				if err != nil {
					t.Fatal(err)
				}
				want.ScrapedAt = clock.Now()
				if got := ep.Stats(); got == nil || !reflect.DeepEqual(*got, want) {
					t.Fatalf("scrape %d published %+v, want %+v", i, got, want)
				}
				clock.Advance(time.Second)
			}
			if len(hooked) != 2 || hooked[0] != ep {
				t.Errorf("OnScrape called %d times", len(hooked))
			}
			if got := srv.path(0); got != "/base/metrics" {
				t.Errorf("scraped %q", got)
			}
		})
	}
}

func TestCollectorInFlightAtScrape(t *testing.T) {
	srv := newMetricsServer(t, page(t, "vllm.txt"))
	p := newPool(t, "p", backends.MetricsVLLM, srv.URL)
	ep := p.Endpoints[0]
	for range 3 {
		defer ep.Acquire()()
	}
	// A request sent while the scrape is on its way is not in the count the page reflects.
	srv.setOnHit(func(*http.Request) { defer ep.Acquire()() })
	c := backends.NewCollector([]*backends.Pool{p}, quiet())
	if err := c.ScrapeOnce(context.Background(), p, ep); err != nil {
		t.Fatal(err)
	}
	if got := ep.Stats().InFlightAtScrape; got != 3 {
		t.Errorf("InFlightAtScrape = %d, want 3", got)
	}
}

func TestCollectorDetectsUnknownFormat(t *testing.T) {
	srv := newMetricsServer(t, []byte("# TYPE go_goroutines gauge\ngo_goroutines 12\n"))
	p := newPool(t, "p", backends.MetricsAuto, srv.URL)
	ep := p.Endpoints[0]
	c := backends.NewCollector([]*backends.Pool{p}, quiet())
	for range 2 {
		if err := c.ScrapeOnce(context.Background(), p, ep); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.MetricsFormat(); got != backends.MetricsNone {
		t.Errorf("format %q, want none", got)
	}
	if ep.Stats() != nil {
		t.Errorf("published %+v", ep.Stats())
	}
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("%d scrapes; a pool without metrics must not be scraped again", n)
	}
}

func TestCollectorEjectsAndRestores(t *testing.T) {
	good := page(t, "vllm.txt")
	srv := newMetricsServer(t, good)
	p := newPool(t, "p", backends.MetricsVLLM, srv.URL)
	ep := p.Endpoints[0]
	clock := newFakeClock()
	var healthyInHook []bool
	c := backends.NewCollector([]*backends.Pool{p}, quiet(), backends.WithClock(clock.Now), // default threshold: 3
		backends.WithOnScrape(func(_ *backends.Pool, ep *backends.Endpoint) {
			healthyInHook = append(healthyInHook, ep.Healthy(clock.Now()))
		}))
	scrape := func() error { return c.ScrapeOnce(context.Background(), p, ep) }
	if err := scrape(); err != nil {
		t.Fatal(err)
	}
	first := ep.Stats()

	srv.set(http.StatusServiceUnavailable, []byte("loading"))
	for i := 1; i <= 2; i++ {
		if err := scrape(); err == nil || !strings.Contains(err.Error(), "status 503") {
			t.Fatalf("failure %d: error %v", i, err)
		}
		if !ep.Healthy(clock.Now()) {
			t.Fatalf("ejected after %d failures", i)
		}
	}
	if ep.Stats() != first {
		t.Fatal("a failed scrape replaced the snapshot")
	}
	scrape() // the third consecutive failure ejects for 1s
	now := clock.Now()
	if ep.Healthy(now) || ep.Healthy(now.Add(999*time.Millisecond)) || !ep.Healthy(now.Add(time.Second)) {
		t.Fatal("third failure: want a 1s cool-off")
	}
	clock.Advance(time.Second)
	scrape() // each further failure doubles the cool-off
	now = clock.Now()
	if ep.Healthy(now.Add(1999*time.Millisecond)) || !ep.Healthy(now.Add(2*time.Second)) {
		t.Fatal("fourth failure: want a 2s cool-off")
	}
	if ep.Stats() != first {
		t.Fatal("failed scrapes replaced the snapshot")
	}

	// A good scrape while cooling off is the probe that brings the endpoint back.
	srv.set(http.StatusOK, good)
	clock.Advance(500 * time.Millisecond)
	if err := scrape(); err != nil {
		t.Fatal(err)
	}
	if !ep.Healthy(clock.Now()) {
		t.Fatal("still ejected after a good scrape")
	}
	if s := ep.Stats(); s == first || !s.ScrapedAt.Equal(clock.Now()) {
		t.Fatalf("snapshot %+v not replaced", s)
	}
	if !reflect.DeepEqual(healthyInHook, []bool{true, true}) {
		t.Errorf("endpoint health seen by OnScrape: %v", healthyInHook)
	}

	// The count of consecutive failures starts again.
	srv.set(http.StatusServiceUnavailable, nil)
	scrape()
	scrape()
	if !ep.Healthy(clock.Now()) {
		t.Fatal("ejected after two failures following a success")
	}
}

func TestCollectorScrapeFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + closed.Addr().String()
	closed.Close()

	tests := []struct {
		name    string
		format  backends.MetricsFormat
		handler http.HandlerFunc // nil: refused connection
		want    string
	}{
		{"status", backends.MetricsVLLM, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no", http.StatusInternalServerError)
		}, "status 500"},
		{"malformed needed line", backends.MetricsVLLM, func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte("# HELP vllm:num_requests_waiting x\nvllm:num_requests_waiting{engine=\"0\"} many\n"))
		}, "metrics line 2: vllm:num_requests_waiting"},
		{"wrong server", backends.MetricsVLLM, func(w http.ResponseWriter, _ *http.Request) {
			w.Write(page(t, "sglang.txt"))
		}, "not a vllm endpoint: no vllm:num_requests_waiting"},
		{"page too large", backends.MetricsVLLM, func(w http.ResponseWriter, _ *http.Request) {
			line := []byte("# " + strings.Repeat("x", 1021) + "\n")
			for range 9 << 10 {
				w.Write(line)
			}
		}, "larger than 8388608 bytes"},
		{"page too large to sniff", backends.MetricsAuto, func(w http.ResponseWriter, _ *http.Request) {
			line := []byte("# " + strings.Repeat("x", 1021) + "\n")
			for range 9 << 10 {
				w.Write(line)
			}
		}, "larger than 8388608 bytes"},
		{"timeout", backends.MetricsVLLM, func(_ http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, "deadline exceeded"},
		{"body cut short", backends.MetricsTGI, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.Write([]byte("tgi_queue_size 1\n"))
		}, "unexpected EOF"},
		{"refused", backends.MetricsVLLM, nil, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := refused
			if tt.handler != nil {
				srv := newMetricsServer(t, nil)
				srv.setHandler(tt.handler)
				url = srv.URL
			}
			p := newPool(t, "p", tt.format, url)
			ep := p.Endpoints[0]
			stale := &backends.Stats{Waiting: 42}
			ep.SetStats(stale)
			clock := newFakeClock()
			// Only the timeout case needs a short timeout; reading 9 MiB on a loaded machine
			// must not hit it.
			timeout := 10 * time.Second
			if tt.want == "deadline exceeded" {
				timeout = 200 * time.Millisecond
			}
			c := backends.NewCollector([]*backends.Pool{p}, quiet(), backends.WithClock(clock.Now),
				backends.WithFailureThreshold(1), backends.WithScrapeTimeout(timeout))
			err := c.ScrapeOnce(context.Background(), p, ep)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), ep.Name) {
				t.Errorf("error %q does not name the endpoint", err)
			}
			if ep.Stats() != stale {
				t.Error("the stale snapshot was replaced")
			}
			if ep.Healthy(clock.Now()) {
				t.Error("not ejected at threshold 1")
			}
			if p.MetricsFormat() != tt.format {
				t.Errorf("format changed to %q", p.MetricsFormat())
			}
		})
	}
}

func TestCollectorCanceledScrapeIsNoFailure(t *testing.T) {
	srv := newMetricsServer(t, page(t, "vllm.txt"))
	ctx, cancel := context.WithCancel(context.Background())
	srv.setOnHit(func(r *http.Request) {
		cancel()
		<-r.Context().Done()
	})
	p := newPool(t, "p", backends.MetricsVLLM, srv.URL)
	ep := p.Endpoints[0]
	c := backends.NewCollector([]*backends.Pool{p}, quiet(), backends.WithFailureThreshold(1))
	if err := c.ScrapeOnce(ctx, p, ep); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if !ep.Healthy(time.Now()) {
		t.Error("a scrape cut short by shutdown ejected the endpoint")
	}
}

func TestCollectorRun(t *testing.T) {
	vllmA := newMetricsServer(t, page(t, "vllm.txt"))
	vllmB := newMetricsServer(t, page(t, "vllm_dp.txt"))
	sglang := newMetricsServer(t, page(t, "sglang.txt"))
	none := newMetricsServer(t, page(t, "vllm.txt"))
	pools := []*backends.Pool{
		newPool(t, "vllm", backends.MetricsVLLM, vllmA.URL, vllmB.URL),
		newPool(t, "auto", backends.MetricsAuto, sglang.URL),
		newPool(t, "none", backends.MetricsNone, none.URL),
	}
	type scrape struct {
		pool string
		ep   *backends.Endpoint
	}
	scrapes := make(chan scrape, 64)
	c := backends.NewCollector(pools, quiet(), backends.WithScrapeInterval(5*time.Millisecond),
		backends.WithOnScrape(func(p *backends.Pool, ep *backends.Endpoint) {
			select {
			case scrapes <- scrape{p.Name, ep}:
			default:
			}
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	// Every scraped endpoint is scraped again and again.
	seen := map[*backends.Endpoint]int{}
	for len(seen) < 3 || min(seen[pools[0].Endpoints[0]], seen[pools[0].Endpoints[1]], seen[pools[1].Endpoints[0]]) < 3 {
		select {
		case s := <-scrapes:
			if s.pool == "none" {
				t.Fatal("scraped a pool without metrics")
			}
			seen[s.ep]++
		case <-time.After(10 * time.Second):
			t.Fatalf("scrapes seen: %v", seen)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if pools[1].MetricsFormat() != backends.MetricsSGLang {
		t.Errorf("auto pool detected %q", pools[1].MetricsFormat())
	}
	if s := pools[1].Endpoints[0].Stats(); s == nil || s.Waiting != 7 {
		t.Errorf("sglang stats %+v", s)
	}
	if n := none.hits.Load(); n != 0 {
		t.Errorf("pool with metrics none scraped %d times", n)
	}
	// TestMain's leak check verifies that Run stopped every goroutine it started.
}

func TestCollectorRunWithoutClient(t *testing.T) {
	ep, err := backends.NewEndpoint("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	p := backends.NewPool("p", []*backends.Endpoint{ep}, nil, backends.MetricsVLLM)
	err = backends.NewCollector([]*backends.Pool{p}, quiet()).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no HTTP client") {
		t.Fatalf("Run: %v", err)
	}
}

func TestCollectorRunStopsIdle(t *testing.T) {
	// With nothing to scrape Run still blocks until ctx is done, then returns nil.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- backends.NewCollector(nil, quiet()).Run(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before cancel", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
