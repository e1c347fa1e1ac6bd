package integration_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
)

func TestMain(m *testing.M) {
	// serve, run in process by some tests, sets the garbage collector's target unless GOGC is
	// set; the memory checks here are calibrated at Go's default.
	os.Setenv("GOGC", "100")
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of clients that tests do not own close on their own.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		// An embedded etcd member stopped as a crash would can leave a peer's version request
		// blocked on its closed backend; that goroutine is etcd's, not the router's.
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/etcdserver/api/etcdhttp.newPeerHandler.versionHandler.func1"),
	)
}

// startRouter starts Switchyard from YAML (listen addresses are forced onto loopback port 0)
// with any further options and returns its base URL, stopping it when the test ends.
func startRouter(t *testing.T, yamlText string, opts ...app.StartOption) (*app.Server, string) {
	t.Helper()
	cfg, err := config.Decode([]byte(yamlText))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	if err := cfg.Finish([]byte(yamlText)); err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := io.Discard
	if os.Getenv("SWITCHYARD_TEST_LOGS") != "" {
		logs = os.Stderr
	}
	s, err := app.Start(context.Background(), cfg, append([]app.StartOption{app.WithLogOutput(logs)}, opts...)...)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, "http://" + s.Addr()
}

// poolYAML renders a config with one model served by a pool of the given URLs.
func poolYAML(model, target string, urls ...string) string {
	var b strings.Builder
	b.WriteString("pools:\n  - name: p\n    metrics: none\n    endpoints:\n")
	for _, u := range urls {
		b.WriteString("      - " + u + "\n")
	}
	b.WriteString("models:\n  - name: " + model + "\n    pool: p\n")
	if target != "" {
		b.WriteString("    target_model: " + target + "\n")
	}
	return b.String()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
