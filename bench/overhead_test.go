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
	"github.com/switchyard-ai/switchyard/policy"
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
	lat, errs, elapsed := loop(conc, d, func() (time.Duration, error) {
		t0 := time.Now()
		err := call()
		return time.Since(t0), err
	})
	slices.Sort(lat)
	if len(lat) == 0 {
		return result{errors: errs}
	}
	return result{rps: float64(len(lat)) / elapsed.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], errors: errs}
}

// loop runs call from conc goroutines for d, each calling again as soon as its last call
// returned, and returns the durations the calls that succeeded reported, how many failed, and
// how long it ran.
func loop(conc int, d time.Duration, call func() (time.Duration, error)) (lat []time.Duration, errs int, elapsed time.Duration) {
	var mu sync.Mutex
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for time.Now().Before(deadline) {
				took, err := call()
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, took)
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	return lat, errs, time.Since(start)
}

// load posts body to url from conc goroutines for d, each request measured to its last byte.
// A non-empty key is sent as a bearer token.
func load(url, body, key string, conc int, d time.Duration) result {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, DisableCompression: true}}
	defer client.CloseIdleConnections()
	return measure(conc, d, func() error {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := client.Do(req)
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

// benchKey is the API key of the router with policy on.
const benchKey = "sk-bench"

// startOverheadRouter starts Switchyard in front of upstream; with policy, every request
// presents an API key and passes a request limit and a token limit (large enough never to
// refuse).
func startOverheadRouter(b *testing.B, upstream string, withPolicy bool) *app.Server {
	yaml := "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nlog: {level: error}\n"
	if withPolicy {
		yaml += "auth:\n  api_keys: [{name: bench, sha256: " + policy.HashKey(benchKey) + ", tenant: bench}]\n" +
			"limits:\n  rules:\n    - {name: rpm, requests: 1000000000, window: 1m}\n    - {name: tpm, tokens: 1000000000000, window: 1m, by: [tenant, model]}\n"
	}
	cfg, err := config.Decode([]byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	cfg.AddBackend("m=" + upstream)
	cfg.Pools[0].Metrics = "none"
	if err := cfg.Finish(nil); err != nil {
		b.Fatal(err)
	}
	s, err := app.Start(context.Background(), cfg, app.WithLogOutput(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkOverhead prints requests/s and p50/p99 latency for a client talking to a
// zero-latency backend directly, through Switchyard, and through Switchyard with
// authentication and rate limits on, side by side, with the ratios.
func BenchmarkOverhead(b *testing.B) {
	up := httptest.NewServer(zeroLatency())
	defer up.Close()
	plain := startOverheadRouter(b, up.URL, false)
	defer plain.Shutdown(context.Background())
	guarded := startOverheadRouter(b, up.URL, true)
	defer guarded.Shutdown(context.Background())
	dur := 3 * time.Second
	if testing.Short() {
		dur = 500 * time.Millisecond
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tpath\treq/s\tp50\tp99\terrors\t")
	row := func(name, path string, r result) {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%v\t%v\t%d\t\n", name, path, r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errors)
	}
	ratio := func(name, path string, x, y result) {
		fmt.Fprintf(tw, "%s\t%s\t%.2fx\t%.2fx\t%.2fx\t\t\n", name, path, x.rps/y.rps, float64(x.p50)/float64(y.p50), float64(x.p99)/float64(y.p99))
	}
	for b.Loop() {
		for _, w := range []struct {
			name, body string
			conc       int
		}{
			{"chat c=16", `{"model":"m","messages":[{"role":"user","content":"hello"}]}`, 16},
			{"chat stream c=16", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]}`, 16},
		} {
			targets := []struct{ url, key string }{
				{up.URL, ""}, {"http://" + plain.Addr(), ""}, {"http://" + guarded.Addr(), benchKey},
			}
			for _, tg := range targets { // warm every path
				load(tg.url+"/v1/chat/completions", w.body, tg.key, w.conc, dur/5)
			}
			var rs []result
			for _, tg := range targets {
				rs = append(rs, load(tg.url+"/v1/chat/completions", w.body, tg.key, w.conc, dur))
			}
			row(w.name, "direct", rs[0])
			row(w.name, "switchyard", rs[1])
			row(w.name, "switchyard + auth + limits", rs[2])
			ratio(w.name, "switchyard / direct", rs[1], rs[0])
			ratio(w.name, "auth+limits on / off", rs[2], rs[1])
			short := strings.ReplaceAll(w.name[:strings.Index(w.name, " c=")], " ", "-")
			b.ReportMetric(rs[1].rps/rs[0].rps, short+"-rps-ratio")
			b.ReportMetric(rs[2].rps/rs[1].rps, short+"-policy-rps-ratio")
			for i, r := range rs {
				if r.errors > 0 {
					b.Errorf("%s: %d requests failed on path %d", w.name, r.errors, i)
				}
			}
		}
	}
	tw.Flush()
}
