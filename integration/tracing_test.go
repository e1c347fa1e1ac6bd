package integration_test

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/switchyard-ai/switchyard/backends/backendstest"
	"github.com/switchyard-ai/switchyard/backends/sim"
)

// otlpReceiver is an OTLP/gRPC trace endpoint on loopback that keeps what it receives.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	addr  string
}

func startOTLP(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: ln.Addr().String()}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return r
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// trace returns the spans of one trace by name.
func (r *otlpReceiver) trace(traceID string) map[string]*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]*tracepb.Span{}
	for _, s := range r.spans {
		if hex.EncodeToString(s.TraceId) == traceID {
			out[s.Name] = s
		}
	}
	return out
}

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
)

// checkTrace asserts the router's spans for one request: a server span continuing the client's
// trace, with policy, pick and upstream children, and returns the upstream span's id.
func checkTrace(t *testing.T, spans map[string]*tracepb.Span, serverName string) string {
	t.Helper()
	server := spans[serverName]
	if server == nil {
		t.Fatalf("no server span %q among %v", serverName, keys(spans))
	}
	if hex.EncodeToString(server.ParentSpanId) != clientSpan || server.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("server span parent %x kind %v, want the client's %s", server.ParentSpanId, server.Kind, clientSpan)
	}
	for _, child := range []string{"switchyard.policy", "switchyard.pick", "switchyard.upstream"} {
		s := spans[child]
		if s == nil {
			t.Fatalf("no %s span among %v", child, keys(spans))
		}
		if string(s.ParentSpanId) != string(server.SpanId) {
			t.Errorf("%s is not a child of the server span", child)
		}
	}
	attrs := map[string]string{}
	for _, kv := range server.Attributes {
		attrs[kv.Key] = kv.Value.GetStringValue()
	}
	if attrs["gen_ai.request.model"] == "" {
		t.Errorf("server span lacks the routing decision: %v", attrs)
	}
	return hex.EncodeToString(spans["switchyard.upstream"].SpanId)
}

func keys(m map[string]*tracepb.Span) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTracing exports spans over OTLP to a receiver and propagates W3C trace context: an
// OpenAI request carries it to the upstream HTTP server, a KServe gRPC call through the
// router is traced the same way.
func TestTracing(t *testing.T) {
	recv := startOTLP(t)
	up := backendstest.New(t, "llm")
	tensor := startSim(t, sim.Config{Model: "x", TensorModel: "sim-tensor"})
	srv, base := startRouter(t, `
tracing: {otlp_endpoint: "`+recv.addr+`", insecure: true}
pools:
  - {name: llm, metrics: none, endpoints: [`+up.URL+`]}
  - {name: t, protocol: kserve, metrics: none, endpoints: [grpc://`+tensor.Host+`]}
models:
  - {name: chat, pool: llm}
  - {name: tensor, pool: t, target_model: sim-tensor}
`)
	traceparent := "00-" + clientTrace + "-" + clientSpan + "-01"
	req := strings.NewReader(`{"model":"chat","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`)
	hreq, _ := http.NewRequest("POST", base+"/v1/chat/completions", req)
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("traceparent", traceparent)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("chat: %v %v", err, resp)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+strings.Repeat("ab", 16)+"-"+clientSpan+"-01")
	if _, err := grpcClient(t, srv.Addr()).ModelInfer(ctx, addRequest("tensor")); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx2) // flushes the batched spans

	upstreamSpan := checkTrace(t, recv.trace(clientTrace), "POST /v1/chat/completions")
	got := up.LastHeader().Get("traceparent")
	if want := "00-" + clientTrace + "-" + upstreamSpan + "-01"; got != want {
		t.Errorf("upstream traceparent %q, want %q (the client's trace, the upstream span as parent)", got, want)
	}
	checkTrace(t, recv.trace(strings.Repeat("ab", 16)), "POST /inference.GRPCInferenceService/ModelInfer")
}
