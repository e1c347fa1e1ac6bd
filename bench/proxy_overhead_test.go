package bench_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
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

// cpuSeconds is the CPU time used so far by this process and by nginx: its master, a child
// of this process, and the master's workers.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	type proc struct {
		ppid string
		cpu  float64
	}
	nginx := map[string]proc{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15), counted after the closing paren.
		s := string(b)
		rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(rest) < 13 || !strings.Contains(s, "(nginx)") {
			continue
		}
		ut, _ := strconv.ParseFloat(rest[11], 64)
		st, _ := strconv.ParseFloat(rest[12], 64)
		nginx[strings.Fields(s)[0]] = proc{rest[1], (ut + st) / 100} // clock ticks; 100 per second on Linux
	}
	self := strconv.Itoa(os.Getpid())
	for _, p := range nginx {
		if p.ppid == self || nginx[p.ppid].ppid == self {
			total += p.cpu
		}
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
// the first body byte and to the last.
func (p path) post(client *http.Client, i uint64, body string) (ttfb, total time.Duration, err error) {
	req, _ := http.NewRequest(http.MethodPost, p.urls[i%uint64(len(p.urls))]+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if p.key != "" {
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	// The first byte read alone, then the rest into io.Discard's pooled buffers: a
	// bufio.Reader per request would add 4 KiB of garbage per request to the process that
	// also runs Switchyard and the servers.
	var first [1]byte
	if _, err := io.ReadFull(resp.Body, first[:]); err != nil {
		return 0, 0, err
	}
	ttfb = time.Since(t0)
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return 0, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return ttfb, time.Since(t0), nil
}

func newBenchClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, DisableCompression: true}}
}

// sample is what one path measured of one workload, pooled over rounds.
type sample struct {
	lat    []time.Duration // per successful request: its latency, or its time to first byte
	errs   int
	secs   float64   // time measured
	cpu    float64   // CPU seconds used meanwhile (closed loops only)
	rounds []float64 // requests/s of each closed-loop round; p99 in ns of each open-loop one
}

func (s *sample) rps() float64 { return float64(len(s.lat)) / s.secs }

func (s *sample) cpuPerReq() time.Duration {
	return time.Duration(s.cpu / float64(max(len(s.lat), 1)) * 1e9)
}

// quantile is the q-quantile of the pooled latencies.
func (s *sample) quantile(q float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	slices.Sort(s.lat)
	return s.lat[int(q*float64(len(s.lat)-1))]
}

// closedLoop runs conc callers for d, each sending its next request when the last is answered,
// and adds their latencies (or times to first byte, with ttfb), the time and the CPU to s.
func (p path) closedLoop(s *sample, client *http.Client, body string, conc int, d time.Duration, ttfb bool) {
	var n atomic.Uint64
	cpu0 := cpuSeconds()
	lat, errs, elapsed := loop(conc, d, func() (time.Duration, error) {
		first, total, err := p.post(client, n.Add(1), body)
		if ttfb {
			return first, err
		}
		return total, err
	})
	s.cpu += cpuSeconds() - cpu0
	s.lat = append(s.lat, lat...)
	s.errs += errs
	s.secs += elapsed.Seconds()
	s.rounds = append(s.rounds, float64(len(lat))/elapsed.Seconds())
}

// openLoopAt offers rate requests/s for d from a goroutine per request, so that a slow path
// cannot hold back the requests after it, and adds their latencies to s and their p99 to its
// rounds. Each request is
// timed from when it is sent, not from when it was due: the pacing sleep wakes up to a
// millisecond late (Go's timers sleep in whole milliseconds when the process is idle), noise
// that every path would carry and that is not the path's.
func (p path) openLoopAt(s *sample, client *http.Client, body string, rate float64, d time.Duration) {
	var round []time.Duration
	var mu sync.Mutex
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
			_, total, err := p.post(client, i, body)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.errs++
				return
			}
			round = append(round, total)
		})
	}
	wg.Wait()
	s.secs += time.Since(start).Seconds()
	s.lat = append(s.lat, round...)
	if len(round) > 0 {
		slices.Sort(round)
		s.rounds = append(s.rounds, float64(round[len(round)*99/100]))
	}
}

// interleave runs each path's part of a measurement rounds times, the paths taking turns, so
// that a change in the machine's speed during the run (other work, frequency) falls on every
// path alike. Each path keeps one client, and so its connections, throughout.
func interleave(paths []path, rounds, conc int, run func(p path, s *sample, client *http.Client)) []*sample {
	samples := make([]*sample, len(paths))
	clients := make([]*http.Client, len(paths))
	for i := range paths {
		samples[i], clients[i] = &sample{}, newBenchClient(conc)
		defer clients[i].CloseIdleConnections()
	}
	for range rounds {
		for i, p := range paths {
			run(p, samples[i], clients[i])
		}
	}
	return samples
}

// BenchmarkProxyOverhead compares, in one run on one machine, a zero-latency fleet of two
// OpenAI-compatible servers reached directly (the client spreads requests itself), through
// nginx (least_conn, keep-alive, a worker per CPU) and through Switchyard with
// authentication, rate limits and the scoring picker on. It prints requests/s, p50/p99 and
// CPU per request for non-streaming and streaming chat; p50/p99 at a fixed 1,000 requests/s
// with the latency each proxy adds; and the time to first byte of streams with prompts from
// 1 KB to 256 KB, 8 at a time, and of 220 KB prompts 150 at a time. CPU per request is this
// process's CPU (client, servers and Switchyard) plus nginx's (master and workers), so
// differences between rows are each proxy's cost.
//
// Every measurement is taken in rounds, the paths taking turns (see interleave); the closed
// loops print the range of Switchyard's requests/s over nginx's across their rounds.
func BenchmarkProxyOverhead(b *testing.B) {
	urls, stopFleet := startZeroFleet(b, 2)
	defer stopFleet()
	// nginx as deployed: a worker per CPU, as worker_processes auto would start, sharing
	// least_conn's counts. Switchyard's process may use every CPU too.
	nginx, stopNginx, err := startNginxWorkers(urls, runtime.NumCPU())
	if err != nil {
		b.Skipf("nginx: %v", err)
	}
	defer stopNginx()
	sy := startOverheadRouter(b, strings.Join(urls, ","), true)
	defer sy.Shutdown(context.Background())
	// As serve does at startup: the process runs with Switchyard's runtime settings, which
	// the client and the fleet in this process share with every path alike.
	prevGC := debug.SetGCPercent(-1)
	debug.SetGCPercent(prevGC)
	defer debug.SetGCPercent(prevGC)
	defaults, err := config.Decode([]byte("models: [{name: m, pool: p}]\npools: [{name: p, endpoints: [" + urls[0] + "]}]\n"))
	if err == nil {
		err = defaults.Finish(nil)
	}
	if err != nil {
		b.Fatal(err)
	}
	if gc, _ := app.TuneRuntime(defaults.Server); gc > 0 {
		fmt.Printf("garbage collector target GOGC=%d (server.gc_percent's default, as serve sets it)\n", gc)
	}
	paths := []path{{"direct", urls, ""}, {"nginx least_conn", []string{nginx}, ""}, {"switchyard (auth, limits, picking)", []string{"http://" + sy.Addr()}, benchKey}}
	dur := 3 * time.Second
	if testing.Short() {
		dur = 500 * time.Millisecond
	}
	const rounds = 6
	out := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	for b.Loop() {
		fmt.Fprintln(out, "workload\tpath\treq/s\tp50\tp99\tCPU/req\tvs nginx req/s\tper round\terrors\t")
		for _, w := range []struct{ name, body string }{
			{"chat c=16", `{"model":"m","messages":[{"role":"user","content":"hello"}]}`},
			{"chat stream c=16", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hello"}]}`},
		} {
			interleave(paths, 1, 16, func(p path, s *sample, c *http.Client) { p.closedLoop(s, c, w.body, 16, dur/5, false) }) // warm
			ss := interleave(paths, rounds, 16, func(p path, s *sample, c *http.Client) {
				p.closedLoop(s, c, w.body, 16, dur/rounds, false)
			})
			var ratios []float64
			for r := range rounds {
				ratios = append(ratios, ss[2].rounds[r]/ss[1].rounds[r])
			}
			for i, p := range paths {
				spread := ""
				if i == 2 {
					spread = fmt.Sprintf("%.2f–%.2fx", slices.Min(ratios), slices.Max(ratios))
				}
				fmt.Fprintf(out, "%s\t%s\t%.0f\t%v\t%v\t%v\t%.2fx\t%s\t%d\t\n", w.name, p.name, ss[i].rps(),
					ss[i].quantile(0.5).Round(time.Microsecond), ss[i].quantile(0.99).Round(time.Microsecond),
					ss[i].cpuPerReq().Round(time.Microsecond), ss[i].rps()/ss[1].rps(), spread, ss[i].errs)
			}
			b.ReportMetric(ss[2].rps()/ss[1].rps(), strings.ReplaceAll(w.name[:strings.Index(w.name, " c=")], " ", "-")+"-vs-nginx-rps")
		}
		out.Flush()

		// A stall of the machine (another tenant, a garbage collection) that catches a round
		// sets its p99, so each round's p99 is compared with the direct path's in the same
		// round, and the median of those differences is what a proxy adds.
		fmt.Fprintln(out, "\nat 1000 req/s\tpath\tp50\tp99\tadded p50\tadded p99 (median of rounds)\tper round\terrors\t")
		body := `{"model":"m","messages":[{"role":"user","content":"hello"}]}`
		ss := interleave(paths, rounds, 256, func(p path, s *sample, c *http.Client) { p.openLoopAt(s, c, body, 1000, 3*dur/rounds) })
		base50 := ss[0].quantile(0.5)
		var added99 time.Duration
		for i, p := range paths {
			var diffs []time.Duration
			for r := range min(len(ss[i].rounds), len(ss[0].rounds)) {
				diffs = append(diffs, time.Duration(ss[i].rounds[r]-ss[0].rounds[r]))
			}
			slices.Sort(diffs)
			med, spread := time.Duration(0), ""
			if len(diffs) > 0 {
				med = (diffs[(len(diffs)-1)/2] + diffs[len(diffs)/2]) / 2
				spread = fmt.Sprintf("%v–%v", diffs[0].Round(10*time.Microsecond), diffs[len(diffs)-1].Round(10*time.Microsecond))
			}
			if i == 2 {
				added99 = med
			}
			p50 := ss[i].quantile(0.5)
			fmt.Fprintf(out, "chat\t%s\t%v\t%v\t%v\t%v\t%s\t%d\t\n", p.name, p50.Round(time.Microsecond), ss[i].quantile(0.99).Round(time.Microsecond),
				(p50 - base50).Round(time.Microsecond), med.Round(time.Microsecond), spread, ss[i].errs)
		}
		b.ReportMetric(float64(added99)/1e6, "added-p99-ms@1krps")
		out.Flush()

		// The last row is the load at which the endpoint pickers in this field are reported to
		// add over a second: 220 KB prompts, 150 at a time.
		fmt.Fprintln(out, "\nprompt\tconcurrency\tpath\tmedian TTFT\tadded\terrors\t")
		added := map[int][]time.Duration{} // by path: added TTFT at 1 KB and at 256 KB, c=8
		for _, load := range []struct{ size, conc int }{{1 << 10, 8}, {16 << 10, 8}, {64 << 10, 8}, {256 << 10, 8}, {220 << 10, 150}} {
			msg := strings.Repeat("The quick brown fox jumps over the lazy dog. ", load.size/45)
			body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"` + msg + `"}]}`
			ss := interleave(paths, rounds/2, load.conc, func(p path, s *sample, c *http.Client) {
				p.closedLoop(s, c, body, load.conc, dur/rounds, true)
			})
			base := ss[0].quantile(0.5)
			for i, p := range paths {
				ttft := ss[i].quantile(0.5)
				if load.conc == 8 && (load.size == 1<<10 || load.size == 256<<10) {
					added[i] = append(added[i], ttft-base)
				}
				fmt.Fprintf(out, "%d KB\t%d\t%s\t%v\t%v\t%d\t\n", load.size>>10, load.conc, p.name, ttft.Round(time.Microsecond), (ttft - base).Round(time.Microsecond), ss[i].errs)
			}
		}
		out.Flush()
		for _, i := range []int{1, 2} {
			fmt.Printf("added TTFT from 1 KB to 256 KB prompts, %s: %v to %v (%+v)\n", paths[i].name,
				added[i][0].Round(time.Microsecond), added[i][1].Round(time.Microsecond), (added[i][1] - added[i][0]).Round(time.Microsecond))
		}
		b.ReportMetric(float64(added[2][1]-added[2][0])/1e6, "added-ttft-growth-ms-1KB-256KB")
	}
}
