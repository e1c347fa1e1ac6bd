package backends_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
)

func BenchmarkParseMetrics(b *testing.B) {
	for _, bb := range []struct {
		file   string
		format backends.MetricsFormat
	}{
		{"vllm.txt", backends.MetricsVLLM},
		{"vllm_old.txt", backends.MetricsVLLM},
		{"vllm_dp.txt", backends.MetricsVLLM},
		{"sglang.txt", backends.MetricsSGLang},
		{"tgi.txt", backends.MetricsTGI},
		{"triton.txt", backends.MetricsTriton},
	} {
		b.Run(bb.file, func(b *testing.B) {
			in := page(b, bb.file)
			r := bytes.NewReader(in)
			var s backends.Stats
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(in)
				if err := backends.ParseMetrics(bb.format, r, &s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchServerEnv, when set in the environment of the test binary, makes TestMain serve
// benchmark pages instead of running tests: see serveBenchPages.
const benchServerEnv = "BACKENDS_BENCH_SERVE"

// serveBenchPages is the child process of BenchmarkCollector100Endpoints. It serves the page
// named by the environment variable at /metrics on the given number of loopback listeners,
// prints their addresses one per line, and exits when its stdin closes.
func serveBenchPages() {
	var n int
	var file string
	if _, err := fmt.Sscanf(os.Getenv(benchServerEnv), "%d %s", &n, &file); err != nil {
		fmt.Fprintln(os.Stderr, "bad", benchServerEnv, err)
		os.Exit(2)
	}
	body, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	length := strconv.Itoa(len(body))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Content-Length", length)
		w.Write(body)
	})}
	out := bufio.NewWriter(os.Stdout)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		go srv.Serve(l)
		fmt.Fprintln(out, l.Addr())
	}
	out.Flush()
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	os.Exit(0)
}

// BenchmarkCollector100Endpoints runs a Collector scraping 100 endpoints every 100ms for a
// fixed wall time (2s; 500ms with -short) and reports its steady-state cost. The endpoints
// are served by a child process (this test binary in serveBenchPages mode) from pre-rendered
// bytes of testdata/metrics/vllm.txt, so the CPU and allocation figures are the collector's
// side alone: HTTP client, parsing, publishing, scheduling, and the runtime's share (GC).
func BenchmarkCollector100Endpoints(b *testing.B) {
	const endpoints, interval = 100, 100 * time.Millisecond
	window := 2 * time.Second
	if testing.Short() {
		window = 500 * time.Millisecond
	}
	file, err := filepath.Abs(filepath.Join("testdata", "metrics", "vllm.txt"))
	if err != nil {
		b.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", benchServerEnv, endpoints, file))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	var eps []*backends.Endpoint
	lines := bufio.NewScanner(stdout)
	for len(eps) < endpoints && lines.Scan() {
		ep, err := backends.NewEndpoint("http://" + lines.Text())
		if err != nil {
			b.Fatal(err)
		}
		eps = append(eps, ep)
	}
	if len(eps) < endpoints {
		b.Fatalf("child served %d endpoints: %v", len(eps), lines.Err())
	}
	client, err := backends.NewHTTPClient(backends.HTTPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	pool := backends.NewPool("bench", eps, client, backends.MetricsVLLM)

	var scrapes atomic.Int64
	warm := make(chan struct{}) // closed once every endpoint is connected and scraped twice
	c := backends.NewCollector([]*backends.Pool{pool}, backends.WithScrapeInterval(interval),
		backends.WithOnScrape(func(*backends.Pool, *backends.Endpoint) {
			if scrapes.Add(1) == 2*endpoints {
				close(warm)
			}
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-warm:
	case <-time.After(10 * time.Second):
		b.Fatalf("only %d scrapes in 10s", scrapes.Load())
	}

	var total struct {
		wall, cpu       time.Duration
		scrapes, allocs uint64
	}
	b.ResetTimer()
	for range b.N {
		var ru0, ru1 syscall.Rusage
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		n0, t0 := scrapes.Load(), time.Now()
		time.Sleep(window) // a fixed measurement window, not a wait for a condition
		n1, t1 := scrapes.Load(), time.Now()
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		runtime.ReadMemStats(&ms1)
		total.wall += t1.Sub(t0)
		total.cpu += cpuTime(ru1) - cpuTime(ru0)
		total.scrapes += uint64(n1 - n0)
		total.allocs += ms1.Mallocs - ms0.Mallocs
	}
	b.StopTimer()
	if total.scrapes == 0 {
		b.Fatal("no scrapes")
	}
	n := float64(total.scrapes)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(n/total.wall.Seconds(), "scrapes/s")
	b.ReportMetric(total.cpu.Seconds()/n*1e6, "cpu-µs/scrape")
	b.ReportMetric(float64(total.allocs)/n, "allocs/scrape")
	b.ReportMetric(total.cpu.Seconds()/total.wall.Seconds(), "cores")
}

func cpuTime(ru syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
