package app_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-ai/switchyard/backends/backendstest"
	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/internal/app"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := app.Main(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestConfigCheck(t *testing.T) {
	out, _, err := run(t, "config", "check", "../../examples/switchyard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	golden, _ := os.ReadFile("../config/testdata/switchyard.normalized.yaml")
	if out != string(golden) {
		t.Errorf("config check output differs from the normalized golden file:\n%s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("pools:\n  - name: p\n    endpoints: [http://a:1]\nmodels:\n  - name: m\n    pool: q\n    colour: blue\n"), 0o644)
	_, _, err = run(t, "config", "check", bad)
	if err == nil || !strings.Contains(err.Error(), bad+": line 7: field colour not found") {
		t.Errorf("err = %v", err)
	}
	if app.ExitCode(err) != 1 {
		t.Errorf("exit code %d", app.ExitCode(err))
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"config"}, {"serve"}, {"serve", "--backend", "noequals"}, {"serve", "--bogus"}} {
		_, _, err := run(t, args...)
		if app.ExitCode(err) != 2 {
			t.Errorf("%v: err %v, exit code %d, want 2", args, err, app.ExitCode(err))
		}
	}
	out, _, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "switchyard ") {
		t.Errorf("version: %q %v", out, err)
	}
}

// TestServeFromFlags runs `switchyard serve` with --backend and --listen only, as a quick start
// would, sends a request through it and stops it as Ctrl-C would.
func TestServeFromFlags(t *testing.T) {
	up := backendstest.New(t, "a")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- app.Main(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
			"--backend", "m=" + up.URL}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no startup line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	i := strings.Index(line, "http://")
	base := strings.Fields(line[i:])[0]
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("x-switchyard-endpoint") != up.Host() {
		t.Errorf("status %d endpoint %q", resp.StatusCode, resp.Header.Get("x-switchyard-endpoint"))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeFlagsOverrideFile(t *testing.T) {
	up := backendstest.New(t, "a")
	file := filepath.Join(t.TempDir(), "c.yaml")
	// The file's listen address is unusable; --listen must win.
	os.WriteFile(file, []byte("listen: 192.0.2.1:1\nadmin_listen: 192.0.2.1:2\npools:\n  - name: p\n    endpoints: [http://127.0.0.1:1]\nmodels:\n  - {name: m, pool: p}\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- app.Main(ctx, []string{"serve", "--config", file, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
			"--backend", "m=" + up.URL}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no startup line: %v (%v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	base := strings.Fields(line[strings.Index(line, "http://"):])[0]
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("--backend did not replace the file's model m: status %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("serve: %v", err)
	}
}

// TestServeKServeBackendFlag serves a KServe v2 gRPC model from --kserve-backend alone.
func TestServeKServeBackendFlag(t *testing.T) {
	s, err := sim.New(sim.Config{TensorModel: "adder"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: s.CombinedHandler(), Protocols: sim.H2C()}
	go srv.Serve(ln)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- app.Main(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
			"--kserve-backend", "adder=" + ln.Addr().String()}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no startup line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	base := strings.Fields(line[strings.Index(line, "http://"):])[0]
	body := `{"inputs":[{"name":"INPUT0","shape":[2],"datatype":"INT64","data":[1,2]},{"name":"INPUT1","shape":[2],"datatype":"INT64","data":[3,4]}]}`
	resp, err := http.Post(base+"/v2/models/adder/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"data":[4,6]`) {
		t.Errorf("status %d body %s", resp.StatusCode, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
