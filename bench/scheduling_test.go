package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
)

// contender is one way of spreading requests over the fleet. start gets the fleet's root URLs
// and returns the base URL clients send to and a func that stops it, or an error when the
// contender cannot run on this machine.
type contender struct {
	name  string
	start func(urls []string) (base string, stop func(), err error)
}

// baseline is the contender the others' tail latencies are compared with.
const baseline = "switchyard default"

// allContenders are run in this order, each against a fresh fleet. Add one with one line.
var allContenders = []contender{
	{"round-robin", switchyardWith("{picker: round-robin}")},
	{"least-conn (nginx)", startNginx},
	{"least-in-flight (switchyard)", switchyardWith("{picker: least-in-flight}")},
	{baseline, switchyardWith("")},
}

// selectedContenders is every contender, or only those named (comma-separated) in
// SWITCHYARD_BENCH_CONTENDERS, for quicker comparisons while working on one of them.
func selectedContenders(b *testing.B) []contender {
	only := os.Getenv("SWITCHYARD_BENCH_CONTENDERS")
	if only == "" {
		return allContenders
	}
	var out []contender
	for _, c := range allContenders {
		if slices.Contains(strings.Split(only, ","), c.name) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		b.Fatalf("SWITCHYARD_BENCH_CONTENDERS=%q names no contender", only)
	}
	return out
}

// promptMix is the distribution of user-prompt lengths in tokens: each band is drawn with its
// probability, uniformly between lo and hi.
var promptMix = []struct {
	p      float64
	lo, hi int
}{{0.70, 50, 400}, {0.25, 800, 2000}, {0.05, 3000, 6000}}

// Output lengths (max_tokens) are uniform in [outputLo, outputHi]; the simulator always
// generates exactly max_tokens.
const outputLo, outputHi = 16, 256

// chatTemplateTokens is what the simulator adds to a one-message chat: it renders
// "user: <content>\n", and "user" and ":" are a token each.
const chatTemplateTokens = 2

// loadFactor is the offered load as a fraction of the fleet's estimated capacity.
const loadFactor = 0.8

// arrival is one request of the workload: when it is sent, relative to the start of the run,
// and its body.
type arrival struct {
	at     time.Duration
	body   []byte
	prompt int // prompt tokens as the simulator counts them
	output int
}

// workload draws Poisson arrivals at rate per second for window, each a streaming chat
// completion with a prompt and output length from promptMix and [outputLo, outputHi]. Prompts
// are random four-letter words, one token each to the simulator and unique in practice, so no
// request hits another's prefix cache. The same seed yields the same workload.
func workload(seed uint64, rate float64, window time.Duration) []arrival {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var out []arrival
	var words []string
	for t := time.Duration(0); ; {
		t += time.Duration(r.ExpFloat64() / rate * float64(time.Second))
		if t >= window {
			return out
		}
		band, u := promptMix[len(promptMix)-1], r.Float64()
		for _, bd := range promptMix {
			if u -= bd.p; u < 0 {
				band = bd
				break
			}
		}
		n := band.lo + r.IntN(band.hi-band.lo+1)
		words = words[:0]
		for range n {
			w := []byte{'a', 'a', 'a', 'a'}
			for i := range w {
				w[i] += byte(r.IntN(26))
			}
			words = append(words, string(w))
		}
		o := outputLo + r.IntN(outputHi-outputLo+1)
		body, err := json.Marshal(map[string]any{
			"model":          "m",
			"messages":       []map[string]string{{"role": "user", "content": strings.Join(words, " ")}},
			"max_tokens":     o,
			"stream":         true,
			"stream_options": map[string]bool{"include_usage": true},
		})
		if err != nil {
			panic(err) // plain maps always marshal
		}
		out = append(out, arrival{at: t, body: body, prompt: n + chatTemplateTokens, output: o})
	}
}

// meanPrompt and meanOutput are the workload's expected prompt and output lengths in tokens.
func meanPrompt() float64 {
	m := float64(chatTemplateTokens)
	for _, band := range promptMix {
		m += band.p * float64(band.lo+band.hi) / 2
	}
	return m
}

func meanOutput() float64 { return float64(outputLo+outputHi) / 2 }

// outcome is what the client saw of one request.
type outcome struct {
	ok        bool
	ttft, e2e time.Duration
	tokens    int       // completion tokens, from the usage chunk or else counted
	end       time.Time // when the request finished or failed
	fail      string    // why it failed; empty when ok
	detail    string    // an example error message for fail
}

// sseChunk is the part of a chat completion chunk the client reads.
type sseChunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// streamChat sends one streaming chat completion and reads its server-sent events. TTFT is
// measured to the first event with non-empty delta content (the simulator's first event carries
// only the role), end-to-end to data: [DONE]. A non-200 answer, a transport error or a stream
// that ends without [DONE] is a failure.
func streamChat(ctx context.Context, client *http.Client, url string, body []byte) outcome {
	failed := func(why string, err error) outcome {
		o := outcome{fail: why, end: time.Now()}
		if err != nil {
			o.detail = err.Error()
		}
		return o
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return failed("bad request", err)
	}
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return failed("unfinished at drain cap", nil)
		}
		return failed("transport error", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return failed(fmt.Sprintf("HTTP %d", resp.StatusCode), errors.New(strings.TrimSpace(string(msg))))
	}
	var o outcome
	counted := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		if string(data) == "[DONE]" {
			o.e2e, o.end = time.Since(t0), time.Now()
			if o.ttft == 0 {
				return failed("no content before [DONE]", nil)
			}
			if o.tokens == 0 {
				o.tokens = counted
			}
			o.ok = true
			return o
		}
		var c sseChunk
		if json.Unmarshal(data, &c) != nil {
			continue
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != "" {
				if o.ttft == 0 {
					o.ttft = time.Since(t0)
				}
				counted++
			}
		}
		if c.Usage != nil {
			o.tokens = c.Usage.CompletionTokens
		}
	}
	switch {
	case ctx.Err() != nil:
		return failed("unfinished at drain cap", nil)
	case sc.Err() != nil:
		return failed("stream error", sc.Err())
	}
	return failed("stream without [DONE]", nil)
}

// tally summarizes one contender's run.
type tally struct {
	sent, ok               int
	window, elapsed        time.Duration // arrivals; first send to last request's end
	tokens                 int
	ttft50, ttft99         time.Duration
	e2e50, e2e99           time.Duration
	lag99                  time.Duration // p99 of how late the client sent a request
	fastShare              float64       // fraction of finished requests that fast servers finished; NaN if unknown
	fails                  map[string]int
	failDetail             map[string]string
	unavailable, scrapeErr error
}

func (t tally) failed() int           { return t.sent - t.ok }
func (t tally) offered() float64      { return float64(t.sent) / t.window.Seconds() }
func (t tally) completed() float64    { return float64(t.ok) / t.elapsed.Seconds() }
func (t tally) outputTokens() float64 { return float64(t.tokens) / t.elapsed.Seconds() }

// quantile returns the q-quantile of sorted by nearest rank, or 0 for no samples.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[max(int(math.Ceil(q*float64(len(sorted))))-1, 0)]
}

// offer runs the workload open-loop against base: each request is sent at its arrival time
// whatever is still in flight. After the last arrival it waits up to drainCap for requests
// in flight, then cancels them; they count as failed.
func offer(client *http.Client, base string, reqs []arrival, window, drainCap time.Duration) tally {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outs := make([]outcome, len(reqs))
	lags := make([]time.Duration, len(reqs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, a := range reqs {
		if d := time.Until(start.Add(a.at)); d > 0 {
			time.Sleep(d) // pacing the arrivals, not waiting for a condition
		}
		lags[i] = time.Since(start) - a.at
		wg.Go(func() { outs[i] = streamChat(ctx, client, base, a.body) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	drained := time.NewTimer(drainCap)
	defer drained.Stop()
	select {
	case <-done:
	case <-drained.C:
		cancel()
		<-done
	}

	t := summarize(outs, start, window)
	slices.Sort(lags)
	t.lag99 = quantile(lags, 0.99)
	return t
}

// warmUp sends small requests until one succeeds, so the measured run starts with the
// contender ready and the client's connection pool warm. Every contender gets the same.
func warmUp(client *http.Client, base string) error {
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"warm up"}],"max_tokens":2,"stream":true}`)
	var o outcome
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		o = streamChat(ctx, client, base, body)
		cancel()
		if o.ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond) // retry pacing
	}
	return fmt.Errorf("warm-up request failed: %s %s", o.fail, o.detail)
}

// runContender starts a fresh fleet and c in front of it, offers the workload and stops both.
func runContender(b *testing.B, c contender, reqs []arrival, window, drainCap time.Duration) tally {
	urls, stopFleet := startFleet(b)
	defer stopFleet()
	base, stop, err := c.start(urls)
	if err != nil {
		return tally{unavailable: err}
	}
	defer stop()
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute, DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	if err := warmUp(client, base); err != nil {
		return tally{unavailable: err}
	}
	before, scrapeErrr := fleetFinished(client, urls)
	t := offer(client, base, reqs, window, drainCap)
	after, err := fleetFinished(client, urls)
	t.fastShare = math.NaN()
	if err = errors.Join(scrapeErrr, err); err != nil {
		t.scrapeErr = err
		return t
	}
	var fast, all float64
	for i := range urls {
		n := after[i] - before[i]
		all += n
		if i < fleetFast {
			fast += n
		}
	}
	if all > 0 {
		t.fastShare = fast / all
	}
	return t
}

// BenchmarkScheduling offers one open-loop workload at 80% of a heterogeneous simulated fleet's
// estimated capacity to each contender in turn, a fresh fleet each, and prints their throughput
// and client-measured latencies side by side, with each one's tail latency relative to
// Switchyard's default scheduling. Arrivals run 40s per contender (8s with -short).
func BenchmarkScheduling(b *testing.B) {
	window, drainCap := 40*time.Second, 2*time.Minute
	if testing.Short() {
		window = 8 * time.Second
	}
	fleet := fleetConfigs()
	capacity := fleetCapacity(fleet, meanPrompt(), meanOutput())
	rate := loadFactor * capacity
	reqs := workload(1, rate, window)
	var promptSum, outputSum int
	for _, a := range reqs {
		promptSum += a.prompt
		outputSum += a.output
	}
	fmt.Printf("fleet: %d fast + %d slow simulated servers, model m, batch %d; fast prefill %v + %v/token, decode %v/token; slow ×2\n",
		fleetFast, len(fleet)-fleetFast, fleet[0].MaxRunning, fleet[0].PrefillBase, fleet[0].PrefillPerToken, fleet[0].DecodePerToken)
	fmt.Printf("workload: %d streaming chats over %v, Poisson at %.1f req/s = %.2f × estimated capacity %.1f req/s; mean prompt %.0f tokens (expected %.0f), mean output %.0f (expected %.0f)\n",
		len(reqs), window, rate, loadFactor, capacity, float64(promptSum)/float64(len(reqs)), meanPrompt(),
		float64(outputSum)/float64(len(reqs)), meanOutput())

	contenders := selectedContenders(b)
	results := make([]tally, len(contenders))
	for b.Loop() {
		for i, c := range contenders {
			results[i] = runContender(b, c, reqs, window, drainCap)
		}
	}

	var ref *tally
	for i, c := range contenders {
		if c.name == baseline && results[i].unavailable == nil && results[i].ok > 0 {
			ref = &results[i]
		}
	}
	ratio := func(t tally, pick func(tally) time.Duration) string {
		if ref == nil || pick(*ref) == 0 || pick(t) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", float64(pick(t))/float64(pick(*ref)))
	}
	ttft99 := func(t tally) time.Duration { return t.ttft99 }
	e2e99 := func(t tally) time.Duration { return t.e2e99 }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "contender\tsent\tok\tfailed\toffered/s\tspan\tdone/s\tout tok/s\tTTFT p50\tTTFT p99\te2e p50\te2e p99\tTTFT p99 vs default\te2e p99 vs default\ton fast\t")
	var notes []string
	for i, c := range contenders {
		t := results[i]
		if t.unavailable != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", c.name)
			notes = append(notes, fmt.Sprintf("%s: unavailable: %v", c.name, t.unavailable))
			continue
		}
		share := "-"
		if !math.IsNaN(t.fastShare) {
			share = fmt.Sprintf("%.0f%%", 100*t.fastShare)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.1fs\t%.1f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			c.name, t.sent, t.ok, t.failed(), t.offered(), t.elapsed.Seconds(), t.completed(), t.outputTokens(),
			ms(t.ttft50), ms(t.ttft99), ms(t.e2e50), ms(t.e2e99),
			ratio(t, ttft99), ratio(t, e2e99), share)
		for _, why := range slices.Sorted(maps.Keys(t.fails)) {
			notes = append(notes, fmt.Sprintf("%s: %d failed: %s (e.g. %q)", c.name, t.fails[why], why, t.failDetail[why]))
		}
		if t.scrapeErr != nil {
			notes = append(notes, fmt.Sprintf("%s: fleet metrics: %v", c.name, t.scrapeErr))
		}
		if t.lag99 > 50*time.Millisecond {
			notes = append(notes, fmt.Sprintf("%s: the client sent 1%% of requests over %v late (machine busy)", c.name, t.lag99.Round(time.Millisecond)))
		}
		slug := metricSlug(c.name)
		b.ReportMetric(float64(t.ttft99)/float64(time.Millisecond), slug+"-ttft-p99-ms")
		b.ReportMetric(float64(t.e2e99)/float64(time.Millisecond), slug+"-e2e-p99-ms")
		b.ReportMetric(t.completed(), slug+"-done-req/s")
		if t.ok == 0 {
			b.Errorf("%s: no request succeeded", c.name)
		}
	}
	tw.Flush()
	fmt.Println("span: first send to the last request's end; done/s and out tok/s are over the span")
	fmt.Printf("on fast: share of finished requests served by the %d fast servers (they hold %.0f%% of the estimated capacity)\n",
		fleetFast, 100*fleetCapacity(fleet[:fleetFast], meanPrompt(), meanOutput())/capacity)
	for _, n := range notes {
		fmt.Println(n)
	}
}

// metricSlug turns a contender's name into a b.ReportMetric unit: lower case, runs of other
// characters than letters and digits become one dash.
func metricSlug(name string) string {
	var s strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && s.Len() > 0 {
				s.WriteByte('-')
			}
			s.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
	}
	return s.String()
}

// switchyardWith returns a contender's start func that runs Switchyard in process with one
// pool of the fleet, its scheduling block set to scheduling (YAML) or left out when empty.
func switchyardWith(scheduling string) func(urls []string) (string, func(), error) {
	return func(urls []string) (string, func(), error) {
		quoted := make([]string, len(urls))
		for i, u := range urls {
			quoted[i] = fmt.Sprintf("%q", u)
		}
		var y strings.Builder
		y.WriteString("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nlog: {level: error}\n")
		y.WriteString("upstream: {first_byte_timeout: 5m}\n")
		fmt.Fprintf(&y, "pools:\n  - name: fleet\n    metrics: vllm\n    endpoints: [%s]\n", strings.Join(quoted, ", "))
		if scheduling != "" {
			fmt.Fprintf(&y, "    scheduling: %s\n", scheduling)
		}
		y.WriteString("models:\n  - {name: m, pool: fleet}\n")
		data := []byte(y.String())
		cfg, err := config.Decode(data)
		if err != nil {
			return "", nil, err
		}
		if err := cfg.Finish(data); err != nil {
			return "", nil, err
		}
		s, err := app.Start(context.Background(), cfg, app.WithLogOutput(io.Discard))
		if err != nil {
			return "", nil, err
		}
		return "http://" + s.Addr(), func() { s.Shutdown(context.Background()) }, nil
	}
}

// nginxBinary finds nginx, installing Debian's package once if it is missing.
var nginxBinary = sync.OnceValues(func() (string, error) {
	find := func() (string, error) {
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			return "/usr/sbin/nginx", nil
		}
		return exec.LookPath("nginx")
	}
	if bin, err := find(); err == nil {
		return bin, nil
	}
	fmt.Println("nginx not found; installing Debian's nginx-light (or nginx) with apt-get")
	install := exec.Command("sh", "-c", "apt-get update -qq && "+
		"(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx)")
	if out, err := install.CombinedOutput(); err != nil {
		out = bytes.TrimSpace(out)
		return "", fmt.Errorf("installing nginx: %v: %s", err, out[max(len(out)-300, 0):])
	}
	return find()
})

// startNginx runs nginx as a child process, balancing the fleet with least_conn over
// keep-alive upstream connections and without buffering, so streams pass through as they come.
// It runs as one process, so that least_conn sees every connection.
func startNginx(urls []string) (string, func(), error) { return startNginxWorkers(urls, 1) }

// startNginxWorkers is startNginx with a master process and the given number of worker
// processes, which share least_conn's connection counts through a shared-memory zone; with
// one, nginx runs as a single process.
func startNginxWorkers(urls []string, workers int) (string, func(), error) {
	bin, err := nginxBinary()
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close() // nginx binds it next; another process taking it first is unlikely on loopback
	dir, err := os.MkdirTemp("", "switchyard-bench-nginx-")
	if err != nil {
		return "", nil, err
	}
	var servers strings.Builder
	for _, u := range urls {
		fmt.Fprintf(&servers, "    server %s;\n", strings.TrimPrefix(u, "http://"))
	}
	processes, listen := "master_process off;\nworker_processes 1;\n", addr
	if workers > 1 {
		processes = fmt.Sprintf("master_process on;\nworker_processes %d;\n", workers)
		if os.Geteuid() == 0 {
			processes += "user root;\n" // workers otherwise drop to nobody, who cannot use dir
		}
		servers.WriteString("    zone fleet 64k;\n")
		listen += " reuseport" // each worker its own socket: the kernel spreads connections evenly
	}
	conf := fmt.Sprintf(`daemon off;
%[4]sworker_rlimit_nofile 16384;
error_log stderr warn;
pid %[1]s/nginx.pid;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream fleet {
    least_conn;
%[2]s    keepalive 64;
  }
  server {
    listen %[3]s;
    client_max_body_size 32m;
    location / {
      proxy_pass http://fleet;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
`, dir, servers.String(), listen, processes)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	var stderr bytes.Buffer // written by exec's copier until Wait returns; read only after
	cmd := exec.Command(bin, "-p", dir+"/", "-c", confPath, "-e", "stderr")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		if workers > 1 {
			cmd.Process.Signal(syscall.SIGTERM) // the master stops its workers, then itself
		} else {
			cmd.Process.Kill()
		}
		<-exited
		os.RemoveAll(dir)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return "http://" + addr, stop, nil
		}
		select {
		case err := <-exited:
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("nginx exited: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
		case <-time.After(20 * time.Millisecond): // polling a child process for its port
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("nginx did not listen on %s within 10s: %s", addr, bytes.TrimSpace(stderr.Bytes()))
		}
	}
}
