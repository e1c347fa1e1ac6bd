package integration_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/internal/app"
)

// served is `switchyard serve --config FILE` running in process, as the binary runs it.
type served struct {
	base, admin string
	file        string
	logs        *lockedBuffer
}

// serveFile writes yamlText to a file and runs `switchyard serve --config` on it until the
// test ends.
func serveFile(t *testing.T, yamlText string) *served {
	t.Helper()
	s := &served{file: filepath.Join(t.TempDir(), "switchyard.yaml"), logs: &lockedBuffer{}}
	s.write(t, yamlText)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := app.Main(ctx, []string{"serve", "--config", s.file, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, pw, s.logs)
		pw.CloseWithError(errors.Join(err, io.EOF))
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("serve did not start: %v\n%s", err, s.logs)
	}
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`serving on (http://\S+) \(admin (http://\S+)\)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected first line %q", line)
	}
	s.base, s.admin = m[1], m[2]
	return s
}

// write replaces the config file at once, as a ConfigMap update does (rename over it).
func (s *served) write(t *testing.T, yamlText string) {
	t.Helper()
	tmp := s.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(yamlText), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.file); err != nil {
		t.Fatal(err)
	}
}

var reloadsRE = regexp.MustCompile(`switchyard_config_reloads_total\{result="(ok|rejected)"\} (\d+)`)

// reloads reads the reload counters from the admin port.
func (s *served) reloads(t *testing.T) (ok, rejected int) {
	t.Helper()
	_, body := httpGet(t, s.admin+"/metrics")
	for _, m := range reloadsRE.FindAllStringSubmatch(body, -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1] == "ok" {
			ok = n
		} else {
			rejected = n
		}
	}
	return ok, rejected
}

// waitReloads waits until the counters reach ok and rejected.
func (s *served) waitReloads(t *testing.T, ok, rejected int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, r := s.reloads(t)
		if o == ok && r == rejected {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reloads ok=%d rejected=%d, want %d and %d\n%s", o, r, ok, rejected, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// askModel sends one non-streaming request for model and returns the status and the endpoint
// that served it.
func askModel(t *testing.T, base, model string) (int, string) {
	t.Helper()
	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"`+model+`","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("x-switchyard-endpoint")
}

func reloadYAML(pool []*simServer, models []string, extra string) string {
	var b strings.Builder
	b.WriteString("pools:\n  - name: p\n    metrics: vllm\n    stats: {interval: 50ms}\n    endpoints:\n")
	for _, s := range pool {
		b.WriteString("      - " + s.URL + "\n")
	}
	b.WriteString("models:\n")
	for _, m := range models {
		b.WriteString("  - name: " + m + "\n    pool: p\n    target_model: sim-model\n")
	}
	b.WriteString(extra)
	return b.String()
}

// TestReloadAppliesValidChanges changes the file of a running router: an endpoint replaced,
// a model added and a rate limit added all take effect without a restart.
func TestReloadAppliesValidChanges(t *testing.T) {
	a, b := startSim(t, sim.Config{}), startSim(t, sim.Config{})
	s := serveFile(t, reloadYAML([]*simServer{a}, []string{"m"}, ""))
	if code, ep := askModel(t, s.base, "m"); code != 200 || ep != a.Host {
		t.Fatalf("before reload: %d from %q, want 200 from %s", code, ep, a.Host)
	}
	if code, _ := askModel(t, s.base, "m2"); code != 404 {
		t.Fatalf("m2 before reload: %d, want 404", code)
	}

	s.write(t, reloadYAML([]*simServer{b}, []string{"m", "m2"},
		"limits:\n  rules:\n    - name: three-a-minute\n      requests: 3\n      window: 1m\n"))
	s.waitReloads(t, 1, 0)

	for i, model := range []string{"m2", "m", "m"} {
		code, ep := askModel(t, s.base, model)
		if code != 200 || ep != b.Host {
			t.Errorf("request %d for %s after reload: %d from %q, want 200 from %s", i, model, code, ep, b.Host)
		}
	}
	if code, _ := askModel(t, s.base, "m"); code != 429 {
		t.Errorf("fourth request in the minute: %d, want 429 from the new limit", code)
	}
	if !strings.Contains(s.logs.String(), "configuration reloaded") {
		t.Errorf("no reload logged:\n%s", s.logs)
	}
}

// TestReloadRejectsInvalidConfig writes files that do not decode or validate: each is
// rejected with its line logged, and the running configuration keeps serving.
func TestReloadRejectsInvalidConfig(t *testing.T) {
	a := startSim(t, sim.Config{})
	good := reloadYAML([]*simServer{a}, []string{"m"}, "")
	s := serveFile(t, good)
	tests := []struct {
		name string
		yaml string
		want string // in the log
	}{
		// Line 3 is the pool's metrics; good has 10 lines.
		{"invalid value", strings.Replace(good, "metrics: vllm", "metrics: prom", 1), `line=3 field=pools[0].metrics`},
		{"unknown key", good + "routing:\n  sesion_header: x\n", `line=12 field="" error="field sesion_header not found`},
		{"model of an unknown pool", good + "  - name: m3\n    pool: nowhere\n", `line=12 field=models[1].pool`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.write(t, tt.yaml)
			s.waitReloads(t, 0, i+1)
			logs := s.logs.String()
			if !strings.Contains(logs, "configuration rejected") || !strings.Contains(logs, tt.want) {
				t.Errorf("log lacks the rejection with %q:\n%s", tt.want, logs)
			}
			if code, ep := askModel(t, s.base, "m"); code != 200 || ep != a.Host {
				t.Errorf("after the rejected reload: %d from %q, want 200 from %s", code, ep, a.Host)
			}
		})
	}
}

// TestReloadKeepsStaticSettings changes a listener setting along with a model: the model is
// added, the listener setting is reported as needing a restart and not applied.
func TestReloadKeepsStaticSettings(t *testing.T) {
	a := startSim(t, sim.Config{})
	s := serveFile(t, reloadYAML([]*simServer{a}, []string{"m"}, ""))
	s.write(t, reloadYAML([]*simServer{a}, []string{"m", "m2"}, "server:\n  max_body_bytes: 10\n"))
	s.waitReloads(t, 1, 0)
	if code, _ := askModel(t, s.base, "m2"); code != 200 {
		t.Errorf("m2 after reload: %d, want 200", code)
	}
	// A 10-byte body limit would refuse this request with 413.
	if code, _ := askModel(t, s.base, "m"); code != 200 {
		t.Errorf("max_body_bytes was applied without a restart: %d", code)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "need a restart") || !strings.Contains(logs, "server") {
		t.Errorf("the restart-only change is not reported:\n%s", logs)
	}
}

// TestReloadOnSIGHUP sends the process SIGHUP: the server reloads (the file is unchanged,
// so the reload is counted and changes nothing).
func TestReloadOnSIGHUP(t *testing.T) {
	a := startSim(t, sim.Config{})
	s := serveFile(t, reloadYAML([]*simServer{a}, []string{"m"}, ""))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitReloads(t, 1, 0)
	if logs := s.logs.String(); !strings.Contains(logs, "SIGHUP") {
		t.Errorf("no SIGHUP reload logged:\n%s", logs)
	}
	if code, _ := askModel(t, s.base, "m"); code != 200 {
		t.Errorf("after SIGHUP: %d", code)
	}
}

// stream sends one streaming chat request and reports an error unless it ends with the
// usage chunk and [DONE].
func stream(client *http.Client, base, model string) (string, error) {
	resp, err := client.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(
		`{"model":"`+model+`","stream":true,"stream_options":{"include_usage":true},"max_tokens":24,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	ep := resp.Header.Get("x-switchyard-endpoint")
	switch {
	case err != nil:
		return ep, fmt.Errorf("stream from %s cut: %w", ep, err)
	case resp.StatusCode != 200:
		return ep, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	case !strings.Contains(string(body), `"completion_tokens":24`) || !strings.HasSuffix(string(body), "data: [DONE]\n\n"):
		return ep, fmt.Errorf("stream from %s incomplete: ...%s", ep, body[max(0, len(body)-200):])
	}
	return ep, nil
}

// streams runs streaming requests for model from workers until stop, counting them by the
// endpoint that served them.
type streams struct {
	stopc         chan struct{}
	wg            sync.WaitGroup
	byEndpoint    sync.Map // endpoint -> *atomic.Int64
	failed, total atomic.Int64
}

func startStreams(t *testing.T, base, model string, workers int) *streams {
	s := &streams{stopc: make(chan struct{})}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for range workers {
		s.wg.Go(func() {
			for {
				select {
				case <-s.stopc:
					return
				default:
				}
				ep, err := stream(client, base, model)
				s.total.Add(1)
				if err != nil {
					s.failed.Add(1)
					t.Log(err)
					continue
				}
				v, _ := s.byEndpoint.LoadOrStore(ep, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
			}
		})
	}
	t.Cleanup(func() {
		s.stop()
		client.CloseIdleConnections()
	})
	return s
}

// served counts the streams ep has served so far.
func (s *streams) served(ep string) int64 {
	v, _ := s.byEndpoint.LoadOrStore(ep, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

// stop ends the load once the streams in flight are over, and reports how many failed out of
// how many. It may be called more than once.
func (s *streams) stop() (failed, total int64) {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	s.wg.Wait()
	return s.failed.Load(), s.total.Load()
}

// TestReloadUnderStreamingLoad reloads again and again while streams run: endpoints come and
// go, a model and a limit are added and removed. No request fails and no stream is cut, and
// traffic follows each endpoint set.
func TestReloadUnderStreamingLoad(t *testing.T) {
	sims := []*simServer{startSim(t, sim.Config{}), startSim(t, sim.Config{}), startSim(t, sim.Config{})}
	a, b, c := sims[0], sims[1], sims[2]
	s := serveFile(t, reloadYAML([]*simServer{a, b}, []string{"m"}, ""))
	load := startStreams(t, s.base, "m", 8)
	count := load.served
	steps := []struct {
		pool   []*simServer
		models []string
		extra  string
	}{
		{[]*simServer{b, c}, []string{"m", "m2"}, ""},
		{[]*simServer{a, c}, []string{"m"}, "limits:\n  rules:\n    - name: generous\n      tokens: 100000000\n"},
		{[]*simServer{c}, []string{"m", "m3"}, ""},
		{[]*simServer{a, b, c}, []string{"m"}, ""},
	}
	for i, st := range steps {
		s.write(t, reloadYAML(st.pool, st.models, st.extra))
		s.waitReloads(t, i+1, 0)
		// Each new endpoint set takes traffic before the next reload.
		for _, sv := range st.pool {
			before := count(sv.Host)
			eventually(t, "traffic on "+sv.Host, func() bool { return count(sv.Host) > before })
		}
	}
	if failed, total := load.stop(); failed != 0 || total < 20 {
		t.Errorf("%d of %d streams failed", failed, total)
	}
}

// TestGracefulShutdown stops a router with a stream in flight: /readyz turns 503 at once,
// new connections are refused, the stream finishes whole, then Shutdown returns.
func TestGracefulShutdown(t *testing.T) {
	slow := startSim(t, sim.Config{Model: "m", DecodePerToken: 40 * time.Millisecond})
	srv, base := startRouter(t, simPoolYAML("", slow)+"server:\n  drain_timeout: 20s\n")
	admin := "http://" + srv.AdminAddr()
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(
		`{"model":"m","stream":true,"max_tokens":25,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil { // the stream has begun
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Shutdown(context.Background()) }()
	eventually(t, "/readyz to turn 503", func() bool {
		r, err := http.Get(admin + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusServiceUnavailable
	})
	eventually(t, "new connections to be refused", func() bool {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) with a stream in flight", err)
	default:
	}
	rest, err := io.ReadAll(r)
	if err != nil || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Fatalf("stream cut by shutdown (%v): ...%s", err, rest[max(0, len(rest)-200):])
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last stream ended")
	}
}
