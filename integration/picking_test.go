package integration_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends/sim"
)

// simServer is one simulated model server on loopback that a test can kill.
type simServer struct {
	URL  string
	Host string
	srv  *http.Server
	sim  *sim.Server
}

func startSim(t *testing.T, cfg sim.Config) *simServer {
	t.Helper()
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ss := &simServer{URL: "http://" + ln.Addr().String(), Host: ln.Addr().String(), sim: s,
		srv: &http.Server{Handler: s.CombinedHandler(), Protocols: sim.H2C()}}
	go ss.srv.Serve(ln)
	t.Cleanup(ss.kill)
	return ss
}

// kill stops the server abruptly: listener and every connection closed.
func (s *simServer) kill() {
	s.srv.Close()
	s.sim.Close()
}

func simPoolYAML(extra string, sims ...*simServer) string {
	var b strings.Builder
	b.WriteString("pools:\n  - name: p\n    metrics: vllm\n    stats: {interval: 50ms}\n" + extra + "    endpoints:\n")
	for _, s := range sims {
		b.WriteString("      - " + s.URL + "\n")
	}
	b.WriteString("models:\n  - name: m\n    pool: p\n")
	return b.String()
}

// drive sends requests from workers until stop is closed, reporting each answer's endpoint
// and the time its request was sent.
func drive(t *testing.T, base, body string, workers int, stop <-chan struct{}, onAnswer func(endpoint string, at time.Time)) (failed int64) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent := time.Now()
				resp, err := client.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err != nil {
					bad.Add(1)
					t.Logf("request failed: %v", err)
					continue
				}
				var buf [4096]byte
				for {
					if _, err := resp.Body.Read(buf[:]); err != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad.Add(1)
					t.Logf("status %d", resp.StatusCode)
					continue
				}
				onAnswer(resp.Header.Get("x-switchyard-endpoint"), sent)
			}
		})
	}
	wg.Wait()
	return bad.Load()
}

// TestSlowEndpointsGetLessTraffic runs a steady load over two fast endpoints and one four
// times slower: the slow one must serve clearly fewer requests than either fast one.
func TestSlowEndpointsGetLessTraffic(t *testing.T) {
	fast := sim.Config{Model: "m", MaxRunning: 4, DecodePerToken: 2 * time.Millisecond, PrefillPerToken: 20 * time.Microsecond}
	slow := fast
	slow.DecodePerToken, slow.PrefillPerToken = 8*time.Millisecond, 80*time.Microsecond
	a, b, c := startSim(t, fast), startSim(t, fast), startSim(t, slow)
	_, base := startRouter(t, simPoolYAML("", a, b, c))
	var mu sync.Mutex
	counts := map[string]int{}
	stop := make(chan struct{})
	time.AfterFunc(3*time.Second, func() { close(stop) })
	body := `{"model":"m","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"` + strings.Repeat("word ", 400) + `"}]}`
	failed := drive(t, base, body, 10, stop, func(ep string, _ time.Time) {
		mu.Lock()
		counts[ep]++
		mu.Unlock()
	})
	t.Logf("requests per endpoint: fast %d, %d; slow %d", counts[a.Host], counts[b.Host], counts[c.Host])
	if failed > 0 {
		t.Errorf("%d requests failed", failed)
	}
	if mean := float64(counts[a.Host]+counts[b.Host]) / 2; float64(counts[c.Host]) > 0.6*mean {
		t.Errorf("slow endpoint served %d, not clearly under the fast ones' %d and %d", counts[c.Host], counts[a.Host], counts[b.Host])
	}
}

// TestSaturatedEndpointIsAvoided fills one endpoint's queue: new requests must go elsewhere.
func TestSaturatedEndpointIsAvoided(t *testing.T) {
	cfg := sim.Config{Model: "m", MaxRunning: 1, DecodePerToken: 2 * time.Millisecond}
	busy, idle := startSim(t, cfg), startSim(t, cfg)
	_, base := startRouter(t, simPoolYAML("", busy, idle))
	// Six long requests straight to one server: one runs, five wait — saturated (queue >= 5).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 6 {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", busy.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"m","max_tokens":2000,"messages":[{"role":"user","content":"hi"}]}`))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	eventually(t, "the busy endpoint to queue 5", func() bool { return busy.sim.Stats().Waiting >= 5 })
	time.Sleep(150 * time.Millisecond) // three scrape intervals, so the router has seen it
	for i := range 10 {
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("x-switchyard-endpoint"); got != idle.Host {
			t.Fatalf("request %d went to %s, the saturated endpoint", i, got)
		}
	}
}

// TestKilledEndpointStopsGettingTraffic kills one of three endpoints under load: no client
// request fails (the ones caught before their first byte are retried elsewhere), and the dead
// endpoint is ejected at once.
func TestKilledEndpointStopsGettingTraffic(t *testing.T) {
	cfg := sim.Config{Model: "m", MaxRunning: 8, DecodePerToken: 2 * time.Millisecond}
	a, b, c := startSim(t, cfg), startSim(t, cfg), startSim(t, cfg)
	s, base := startRouter(t, simPoolYAML("", a, b, c))
	var killedAt atomic.Int64
	var lateAnswers atomic.Int64
	var total atomic.Int64
	stop := make(chan struct{})
	go func() {
		time.Sleep(time.Second)
		// Close waits for the requests it is serving; any request sent after it returns
		// finds the endpoint dead.
		c.kill()
		killedAt.Store(time.Now().UnixNano())
		time.Sleep(2 * time.Second)
		close(stop)
	}()
	failed := drive(t, base, `{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`, 6, stop, func(ep string, sent time.Time) {
		total.Add(1)
		if k := killedAt.Load(); k != 0 && ep == c.Host && sent.UnixNano() > k {
			lateAnswers.Add(1)
		}
	})
	if failed > 0 {
		t.Errorf("%d client requests failed; every one could have been retried", failed)
	}
	if lateAnswers.Load() > 0 {
		t.Errorf("%d requests sent after the endpoint died were answered by it", lateAnswers.Load())
	}
	_, m := httpGet(t, "http://"+s.AdminAddr()+"/metrics")
	t.Logf("%d requests answered", total.Load())
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "switchyard_upstream_retries_total") {
			t.Log(line)
			var n float64
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &n)
			// In flight at the kill (≤ 6) plus a probe per cool-off (1s, 2s) at most.
			if n > 10 {
				t.Errorf("retries = %v: traffic kept going to the dead endpoint", n)
			}
		}
	}
}

// TestSaturatedPoolQueuesThen429 saturates the only endpoint: a request waits in the queue,
// is served when capacity frees, and past the queue timeout gets 429 with Retry-After.
func TestSaturatedPoolQueuesThen429(t *testing.T) {
	one := startSim(t, sim.Config{Model: "m", MaxRunning: 1, DecodePerToken: 2 * time.Millisecond})
	_, base := startRouter(t, simPoolYAML("    scheduling: {saturation: {max_queue: 1}, queue: {timeout: 300ms}}\n", one))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Two long requests directly: one runs, one waits; the endpoint is saturated (queue >= 1).
	for range 2 {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", one.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"m","max_tokens":3000,"messages":[{"role":"user","content":"hi"}]}`))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	eventually(t, "the endpoint to queue", func() bool { return one.sim.Stats().Waiting >= 1 })
	time.Sleep(150 * time.Millisecond)
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	openAIError(t, resp, 429, "queue_timeout")

	// Capacity frees while a request waits: it is served.
	done := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	time.Sleep(50 * time.Millisecond)
	cancel() // the direct requests go away; the simulator frees their slots
	if code := <-done; code != 200 {
		t.Errorf("queued request got %d after capacity freed", code)
	}
}
