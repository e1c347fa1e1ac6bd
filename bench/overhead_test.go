package bench_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
)

// zeroLatency answers like an OpenAI-compatible server that needs no time to generate: a fixed
// chat completion, or eight SSE chunks when the request streams.
func zeroLatency() http.Handler {
	completion := []byte(`{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`)
	chunk := []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok\"},\"finish_reason\":null}]}\n\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			f := w.(http.Flusher)
			for range 8 {
				w.Write(chunk)
				f.Flush()
			}
			io.WriteString(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(completion)
	})
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int
}

// measure runs call from conc goroutines for d and reports the rate and latency percentiles of
// the calls that succeeded.
func measure(conc int, d time.Duration, call func() error) result {
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if call() != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	if len(lat) == 0 {
		return result{errors: errs}
	}
	return result{rps: float64(len(lat)) / elapsed.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], errors: errs}
}

// load posts body to url from conc goroutines for d, each request measured to its last byte.
func load(url string, body string, conc int, d time.Duration) result {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, DisableCompression: true}}
	defer client.CloseIdleConnections()
	return measure(conc, d, func() error {
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// BenchmarkOverhead prints requests/s and p50/p99 latency for a client talking to a
// zero-latency backend directly and through Switchyard, side by side, and their ratio.
func BenchmarkOverhead(b *testing.B) {
	up := httptest.NewServer(zeroLatency())
	defer up.Close()
	cfg, err := config.Decode([]byte("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nlog: {level: error}\n"))
	if err != nil {
		b.Fatal(err)
	}
	cfg.AddBackend("m=" + up.URL)
	cfg.Pools[0].Metrics = "none"
	if err := cfg.Finish(nil); err != nil {
		b.Fatal(err)
	}
	s, err := app.Start(context.Background(), cfg, app.WithLogOutput(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	dur := 3 * time.Second
	if testing.Short() {
		dur = 500 * time.Millisecond
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tpath\treq/s\tp50\tp99\terrors\t")
	for b.Loop() {
		for _, w := range []struct {
			name, body string
			conc       int
		}{
			{"chat c=16", `{"model":"m","messages":[{"role":"user","content":"hello"}]}`, 16},
			{"chat stream c=16", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]}`, 16},
		} {
			load(up.URL+"/v1/chat/completions", w.body, w.conc, dur/5) // warm both paths
			load("http://"+s.Addr()+"/v1/chat/completions", w.body, w.conc, dur/5)
			direct := load(up.URL+"/v1/chat/completions", w.body, w.conc, dur)
			proxied := load("http://"+s.Addr()+"/v1/chat/completions", w.body, w.conc, dur)
			fmt.Fprintf(tw, "%s\tdirect\t%.0f\t%v\t%v\t%d\t\n", w.name, direct.rps, direct.p50.Round(time.Microsecond), direct.p99.Round(time.Microsecond), direct.errors)
			fmt.Fprintf(tw, "%s\tswitchyard\t%.0f\t%v\t%v\t%d\t\n", w.name, proxied.rps, proxied.p50.Round(time.Microsecond), proxied.p99.Round(time.Microsecond), proxied.errors)
			fmt.Fprintf(tw, "%s\tratio\t%.2fx\t%.2fx\t%.2fx\t\t\n", w.name, proxied.rps/direct.rps,
				float64(proxied.p50)/float64(direct.p50), float64(proxied.p99)/float64(direct.p99))
			b.ReportMetric(proxied.rps/direct.rps, strings.ReplaceAll(w.name[:strings.Index(w.name, " c=")], " ", "-")+"-rps-ratio")
			if proxied.errors > 0 || direct.errors > 0 {
				b.Errorf("%s: %d direct and %d proxied requests failed", w.name, direct.errors, proxied.errors)
			}
		}
	}
	tw.Flush()
}
