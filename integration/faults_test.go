package integration_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/gen/inference"
	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/internal/faultproxy"
)

// faultProxy puts a fault proxy in front of addr (host:port), closed when the test ends.
func faultProxy(t *testing.T, addr string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// faultBed is a router under fault injection with clients of its own, so that a scenario can
// stop everything it started and check that nothing leaked: no goroutine beyond those running
// before the router started, and no connection left open through any proxy.
type faultBed struct {
	t       *testing.T
	s       *app.Server
	base    string
	http    *http.Client
	oa      *openai.Client
	grpc    *grpc.ClientConn
	proxies []*faultproxy.Proxy
	before  goleak.Option
}

// newFaultBed starts a router from yamlText. Call it after the simulators and proxies exist.
func newFaultBed(t *testing.T, yamlText string, proxies ...*faultproxy.Proxy) *faultBed {
	t.Helper()
	b := &faultBed{t: t, proxies: proxies, before: goleak.IgnoreCurrent()}
	cfg, err := config.Decode([]byte(yamlText))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	if err := cfg.Finish([]byte(yamlText)); err != nil {
		t.Fatal(err)
	}
	logs := io.Discard
	if os.Getenv("SWITCHYARD_TEST_LOGS") != "" {
		logs = os.Stderr
	}
	if b.s, err = app.Start(context.Background(), cfg, app.WithLogOutput(logs)); err != nil {
		t.Fatal(err)
	}
	b.base = "http://" + b.s.Addr()
	b.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	oa := openai.NewClient(option.WithBaseURL(b.base+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0),
		option.WithHTTPClient(b.http))
	b.oa = &oa
	if b.grpc, err = grpc.NewClient(b.s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	return b
}

// finish stops the router and the clients, then checks for leaked goroutines and connections.
func (b *faultBed) finish() {
	t := b.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.grpc.Close()
	b.http.CloseIdleConnections()
	if err := b.s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	for _, p := range b.proxies {
		eventually(t, "no connection left open through the proxy", func() bool { return p.Open() == 0 })
	}
	if err := goleak.Find(b.before,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreAnyFunction("github.com/switchyard-ai/switchyard/internal/faultproxy.(*Proxy).accept"),
	); err != nil {
		t.Errorf("leaked goroutines: %v", err)
	}
}

// stream runs one streaming chat and returns the endpoint that served it and the stream's
// error.
func (b *faultBed) stream(model string) (string, string, error) {
	var resp *http.Response
	p := chatParams(model)
	p.MaxTokens = openai.Int(16)
	s := b.oa.Chat.Completions.NewStreaming(context.Background(), p, option.WithResponseInto(&resp))
	var text strings.Builder
	for s.Next() {
		for _, c := range s.Current().Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	endpoint := ""
	if resp != nil {
		endpoint = resp.Header.Get("x-switchyard-endpoint")
	}
	return endpoint, text.String(), s.Err()
}

// chat runs one non-streaming chat and returns the endpoint that served it.
func (b *faultBed) chat(model string) (string, error) {
	var resp *http.Response
	p := chatParams(model)
	p.MaxTokens = openai.Int(8)
	c, err := b.oa.Chat.Completions.New(context.Background(), p, option.WithResponseInto(&resp))
	if err != nil {
		return "", err
	}
	if len(c.Choices) == 0 || c.Choices[0].Message.Content == "" {
		return "", errors.New("empty completion")
	}
	return resp.Header.Get("x-switchyard-endpoint"), nil
}

func fastSim(t *testing.T) *simServer {
	return startSim(t, sim.Config{Model: "m", DecodePerToken: 200 * time.Microsecond, PrefillBase: 100 * time.Microsecond})
}

func twoEndpointYAML(extra, faulty, healthy string) string {
	return "pools:\n  - name: p\n    metrics: none\n" + extra + "    endpoints: [" + faulty + ", " + healthy + "]\nmodels:\n  - {name: m, pool: p}\n"
}

// A connection reset before any response byte is retried on the other endpoint; the client
// never sees it.
func TestFaultResetBeforeFirstByte(t *testing.T) {
	a, b := fastSim(t), fastSim(t)
	pa := faultProxy(t, a.Host)
	bed := newFaultBed(t, twoEndpointYAML("", "http://"+pa.Addr(), b.URL), pa)
	defer bed.finish()
	pa.Set(faultproxy.Fault{Kind: faultproxy.ResetBeforeFirstByte})
	for i := 0; pa.Resets() < 3; i++ {
		if i == 300 {
			t.Fatalf("only %d resets in %d requests", pa.Resets(), i)
		}
		var ep string
		var err error
		if i%2 == 0 {
			ep, err = bed.chat("m")
		} else {
			var text string
			ep, text, err = bed.stream("m")
			if err == nil && text == "" {
				err = errors.New("empty stream")
			}
		}
		if err != nil {
			t.Fatalf("request %d failed: %v", i, err)
		}
		if ep != b.Host {
			t.Fatalf("request %d served by %q, want the healthy endpoint %s", i, ep, b.Host)
		}
		time.Sleep(100 * time.Millisecond) // let the reset endpoint's cool-off pass now and then
	}
}

// A connection reset mid-stream ends the client's stream with an OpenAI error event, and the
// endpoint is marked: the next requests go elsewhere.
func TestFaultResetMidStream(t *testing.T) {
	a, b := fastSim(t), fastSim(t)
	pa := faultProxy(t, a.Host)
	bed := newFaultBed(t, twoEndpointYAML("", "http://"+pa.Addr(), b.URL), pa)
	defer bed.finish()
	pa.Set(faultproxy.Fault{Kind: faultproxy.ResetMidStream, After: 600}) // headers and a few events
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("no stream reached the faulty endpoint in 100 tries")
		}
		ep, _, err := bed.stream("m")
		if ep != pa.Addr() {
			if err != nil {
				t.Fatalf("stream from the healthy endpoint failed: %v", err)
			}
			continue
		}
		var apiErr *openai.Error
		if err == nil || !strings.Contains(err.Error(), "connection reset mid-stream") {
			t.Fatalf("stream cut mid-way ended with %v (%T), want an error event naming the reset", err, err)
		}
		if errors.As(err, &apiErr) && apiErr.StatusCode != 0 && apiErr.StatusCode != http.StatusOK {
			t.Errorf("status %d: the stream had started, so it stays 200 with an error event", apiErr.StatusCode)
		}
		break
	}
	// Marked failed: the cool-off sends the next requests to the other endpoint.
	for i := range 3 {
		ep, _, err := bed.stream("m")
		if err != nil || ep != b.Host {
			t.Fatalf("request %d after the reset: endpoint %q, %v; want %s", i, ep, err, b.Host)
		}
	}
}

// An upstream that stalls times out: 504 before the first byte, an error event mid-stream, and
// DEADLINE_EXCEEDED over gRPC.
func TestFaultStall(t *testing.T) {
	a := fastSim(t)
	pa, pg := faultProxy(t, a.Host), faultProxy(t, a.Host)
	yaml := `upstream: {first_byte_timeout: 300ms, idle_stream_timeout: 300ms}
pools:
  - {name: p, metrics: none, endpoints: [http://` + pa.Addr() + `]}
  - {name: t, protocol: kserve, metrics: none, endpoints: [grpc://` + pg.Addr() + `]}
models:
  - {name: m, pool: p}
  - {name: tensor, pool: t, target_model: sim-tensor}
`
	bed := newFaultBed(t, yaml, pa, pg)
	defer bed.finish()
	kc := inference.NewGRPCInferenceServiceClient(bed.grpc)
	if _, err := kc.ModelInfer(context.Background(), addRequest("tensor")); err != nil {
		t.Fatal(err) // the gRPC connection to the upstream is up before it stalls
	}

	pa.Set(faultproxy.Fault{Kind: faultproxy.Stall})
	start := time.Now()
	_, err := bed.chat("m")
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusGatewayTimeout || apiErr.Code != "upstream_timeout" {
		t.Errorf("stalled before the first byte: %v, want 504 upstream_timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("504 after %v, want about the 300ms first-byte timeout", d)
	}

	pa.Set(faultproxy.Fault{Kind: faultproxy.Stall, After: 600})
	_, _, err = bed.stream("m")
	if err == nil || !strings.Contains(err.Error(), "idle stream timeout") {
		t.Errorf("stalled mid-stream: %v, want an error event naming the idle timeout", err)
	}

	pg.Set(faultproxy.Fault{Kind: faultproxy.Stall})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = kc.ModelInfer(ctx, addRequest("tensor"))
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("stalled gRPC upstream: %v, want DEADLINE_EXCEEDED", err)
	}
	pa.Set(faultproxy.Fault{})
	pg.Set(faultproxy.Fault{})
	// The broken stream put the only endpoint in a cool-off (503 meanwhile); then it serves.
	eventually(t, "serving after the stall", func() bool { _, err := bed.chat("m"); return err == nil })
	if _, err := kc.ModelInfer(context.Background(), addRequest("tensor")); err != nil {
		t.Errorf("gRPC after the stall: %v", err)
	}
}

// An endpoint whose connections fail and recover, twice, is ejected while it fails (every
// request served elsewhere, none lost) and takes requests again once it recovers.
func TestFaultFlappingEndpoint(t *testing.T) {
	a, b := fastSim(t), fastSim(t)
	pa := faultProxy(t, a.Host)
	yaml := "pools:\n  - name: p\n    metrics: vllm\n    stats: {interval: 50ms, failure_threshold: 2}\n" +
		"    endpoints: [http://" + pa.Addr() + ", " + b.URL + "]\nmodels:\n  - {name: m, pool: p}\n"
	bed := newFaultBed(t, yaml, pa)
	defer bed.finish()
	served := func(want string) bool {
		for range 20 {
			ep, err := bed.chat("m")
			if err != nil {
				t.Fatalf("a request failed while the endpoint flapped: %v", err)
			}
			if ep == want {
				return true
			}
		}
		return false
	}
	eventually(t, "the proxied endpoint serving", func() bool { return served(pa.Addr()) })
	for round := range 2 {
		pa.Set(faultproxy.Fault{Kind: faultproxy.ResetBeforeFirstByte})
		eventually(t, "ejection", func() bool {
			for range 20 {
				ep, err := bed.chat("m")
				if err != nil {
					t.Fatalf("a request failed while the endpoint was down: %v", err)
				}
				if ep != b.Host {
					return false
				}
			}
			return true
		})
		pa.Set(faultproxy.Fault{})
		eventually(t, "the endpoint's return", func() bool { return served(pa.Addr()) })
		t.Logf("round %d: ejected and back; %d resets so far", round, pa.Resets())
	}
}
