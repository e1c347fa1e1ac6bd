package bench_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"
)

// startZeroFleet serves zeroLatency on n loopback ports with real http.Servers.
func startZeroFleet(b *testing.B, n int) (urls []string, stop func()) {
	var srvs []*http.Server
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := &http.Server{Handler: zeroLatency(), ReadHeaderTimeout: 10 * time.Second}
		go s.Serve(ln)
		srvs = append(srvs, s)
		urls = append(urls, "http://"+ln.Addr().String())
	}
	return urls, func() {
		for _, s := range srvs {
			s.Close()
		}
	}
}

// cpuSeconds is the CPU time used so far by this process and its nginx children.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15), counted after the closing paren.
		s := string(b)
		rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(rest) < 13 || rest[1] != self || !strings.Contains(s, "(nginx)") {
			continue
		}
		ut, _ := strconv.ParseFloat(rest[11], 64)
		st, _ := strconv.ParseFloat(rest[12], 64)
		total += (ut + st) / 100 // clock ticks; 100 per second on Linux
	}
	return total
}

// path is one way to reach the fleet.
type path struct {
	name string
	urls []string // requests go round-robin over these
	key  string
}

// post sends body to one of p's URLs and reads the answer to its end; it returns the time to
// the first body byte.
func (p path) post(client *http.Client, i uint64, body string) (time.Duration, error) {
	req, _ := http.NewRequest(http.MethodPost, p.urls[i%uint64(len(p.urls))]+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if p.key != "" {
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.Peek(1); err != nil {
		return 0, err
	}
	ttfb := time.Since(t0)
	io.Copy(io.Discard, br)
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return ttfb, nil
}

func newBenchClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, DisableCompression: true}}
}

// closedLoop runs conc callers for d and reports the rate, latency and CPU per request.
func (p path) closedLoop(body string, conc int, d time.Duration) (result, float64) {
	client := newBenchClient(conc)
	defer client.CloseIdleConnections()
	var n atomic.Uint64
	cpu0 := cpuSeconds()
	r := measure(conc, d, func() error { _, err := p.post(client, n.Add(1), body); return err })
	cpu := cpuSeconds() - cpu0
	reqs := r.rps * d.Seconds()
	return r, cpu / max(reqs, 1)
}

// openLoopAt offers rate requests/s for d, each timed from when it was due, so that a slow
// path cannot hide its queueing; it returns the p50 and p99.
func (p path) openLoopAt(body string, rate float64, d time.Duration) (p50, p99 time.Duration, errs int) {
	client := newBenchClient(256)
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := uint64(0); ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(due))
		wg.Go(func() {
			_, err := p.post(client, i, body)
			el := time.Since(due)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			lat = append(lat, el)
		})
	}
	wg.Wait()
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0, 0, errs
	}
	return lat[len(lat)/2], lat[len(lat)*99/100], errs
}

// medianTTFT runs conc callers of streaming body for d and returns the median time to first
// byte.
func (p path) medianTTFT(body string, conc int, d time.Duration) (time.Duration, int) {
	client := newBenchClient(conc)
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	var ttfts []time.Duration
	var n atomic.Uint64
	r := measure(conc, d, func() error {
		t, err := p.post(client, n.Add(1), body)
		if err == nil {
			mu.Lock()
			ttfts = append(ttfts, t)
			mu.Unlock()
		}
		return err
	})
	slices.Sort(ttfts)
	if len(ttfts) == 0 {
		return 0, r.errors
	}
	return ttfts[len(ttfts)/2], r.errors
}

// BenchmarkProxyOverhead compares, in one run on one machine, a zero-latency fleet of two
// OpenAI-compatible servers reached directly (the client spreads requests itself), through
// nginx (least_conn, keep-alive) and through Switchyard with authentication, rate limits and
// the scoring picker on. It prints requests/s, p50/p99 and CPU per request for non-streaming
// and streaming chat; p50/p99 at a fixed 1,000 requests/s with the latency each proxy adds;
// and the time to first byte of streams with prompts from 1 KB to 256 KB. CPU per request is
// this process's CPU (client, servers and Switchyard) plus nginx's, so differences between
// rows are each proxy's cost.
func BenchmarkProxyOverhead(b *testing.B) {
	urls, stopFleet := startZeroFleet(b, 2)
	defer stopFleet()
	nginx, stopNginx, err := startNginx(urls)
	if err != nil {
		b.Skipf("nginx: %v", err)
	}
	defer stopNginx()
	sy := startOverheadRouter(b, strings.Join(urls, ","), true)
	defer sy.Shutdown(context.Background())
	paths := []path{{"direct", urls, ""}, {"nginx least_conn", []string{nginx}, ""}, {"switchyard (auth, limits, picking)", []string{"http://" + sy.Addr()}, benchKey}}
	dur := 3 * time.Second
	if testing.Short() {
		dur = 500 * time.Millisecond
	}
	out := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	for b.Loop() {
		fmt.Fprintln(out, "workload\tpath\treq/s\tp50\tp99\tCPU/req\tvs nginx req/s\terrors\t")
		for _, w := range []struct{ name, body string }{
			{"chat c=16", `{"model":"m","messages":[{"role":"user","content":"hello"}]}`},
			{"chat stream c=16", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]}`},
		} {
			for _, p := range paths { // warm every path
				p.closedLoop(w.body, 16, dur/5)
			}
			var rs []result
			var cpus []float64
			for _, p := range paths {
				r, cpu := p.closedLoop(w.body, 16, dur)
				rs, cpus = append(rs, r), append(cpus, cpu)
			}
			for i, p := range paths {
				fmt.Fprintf(out, "%s\t%s\t%.0f\t%v\t%v\t%.0fµs\t%.2fx\t%d\t\n", w.name, p.name, rs[i].rps,
					rs[i].p50.Round(time.Microsecond), rs[i].p99.Round(time.Microsecond), cpus[i]*1e6, rs[i].rps/rs[1].rps, rs[i].errors)
			}
			b.ReportMetric(rs[2].rps/rs[1].rps, strings.ReplaceAll(w.name[:strings.Index(w.name, " c=")], " ", "-")+"-vs-nginx-rps")
		}
		out.Flush()

		fmt.Fprintln(out, "\nat 1000 req/s\tpath\tp50\tp99\tadded p50\tadded p99\terrors\t")
		body := `{"model":"m","messages":[{"role":"user","content":"hello"}]}`
		var base50, base99 time.Duration
		for i, p := range paths {
			p50, p99, errs := p.openLoopAt(body, 1000, dur)
			if i == 0 {
				base50, base99 = p50, p99
			}
			fmt.Fprintf(out, "chat\t%s\t%v\t%v\t%v\t%v\t%d\t\n", p.name, p50.Round(time.Microsecond), p99.Round(time.Microsecond),
				(p50 - base50).Round(time.Microsecond), (p99 - base99).Round(time.Microsecond), errs)
			if i == 2 {
				b.ReportMetric(float64(p99-base99)/1e6, "added-p99-ms@1krps")
			}
		}
		out.Flush()

		fmt.Fprintln(out, "\nprompt\tpath\tmedian TTFT c=8\tadded\terrors\t")
		for _, size := range []int{1 << 10, 16 << 10, 64 << 10, 256 << 10} {
			msg := strings.Repeat("The quick brown fox jumps over the lazy dog. ", size/45)
			body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"` + msg + `"}]}`
			var base time.Duration
			for i, p := range paths {
				ttft, errs := p.medianTTFT(body, 8, dur/2)
				if i == 0 {
					base = ttft
				}
				fmt.Fprintf(out, "%d KB\t%s\t%v\t%v\t%d\t\n", size>>10, p.name, ttft.Round(time.Microsecond), (ttft - base).Round(time.Microsecond), errs)
			}
		}
		out.Flush()
	}
}
