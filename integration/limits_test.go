package integration_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/gen/inference"
)

// serverLimitsYAML is a router in front of one simulator with small limits, so that tests cross
// them with small requests.
func serverLimitsYAML(a *simServer) string {
	return `server:
  max_header_count: 20
  max_header_bytes: 2048
  max_json_depth: 8
  max_tensor_elements: 1000
  max_grpc_message_bytes: 4096
  max_concurrent_streams: 3
  read_header_timeout: 300ms
  read_body_timeout: 300ms
  write_timeout: 300ms
pools:
  - name: p
    metrics: none
    endpoints: [` + a.URL + `]
  - name: t
    protocol: kserve
    metrics: none
    endpoints: [grpc://` + a.Host + `]
  - name: r
    protocol: kserve
    metrics: none
    endpoints: [` + a.URL + `]
models:
  - {name: m, pool: p}
  - {name: tensor, pool: t, target_model: sim-tensor}
  - {name: tensor-rest, pool: r, target_model: sim-tensor}
`
}

func TestLimitHeaders(t *testing.T) {
	a := startSim(t, sim.Config{Model: "m", DecodePerToken: time.Millisecond})
	s, base := startRouter(t, serverLimitsYAML(a))
	many := func(n int) (opts []option.RequestOption, md metadata.MD, h http.Header) {
		md, h = metadata.MD{}, http.Header{}
		for i := range n {
			k := "x-extra-" + strconv.Itoa(i)
			opts = append(opts, option.WithHeader(k, "v"))
			md.Set(k, "v")
			h.Set(k, "v")
		}
		return opts, md, h
	}
	big := strings.Repeat("b", 3000)
	tests := []struct {
		name  string
		opts  []option.RequestOption
		md    metadata.MD
		h     http.Header
		wantM string
	}{
		{"too many", nil, nil, nil, "header fields; the limit is 20"},
		{"too large", []option.RequestOption{option.WithHeader("x-big", big)}, metadata.Pairs("x-big", big), http.Header{"X-Big": {big}}, "bytes; the limit is 2048"},
	}
	tests[0].opts, tests[0].md, tests[0].h = many(30)
	for _, tt := range tests {
		t.Run(tt.name+"/openai", func(t *testing.T) {
			_, err := newOpenAI(base).Chat.Completions.New(context.Background(), chatParams("m"), tt.opts...)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusRequestHeaderFieldsTooLarge ||
				apiErr.Code != "request_header_too_large" || !strings.Contains(apiErr.Message, tt.wantM) {
				t.Fatalf("err = %v, want 431 request_header_too_large", err)
			}
		})
		t.Run(tt.name+"/kserve-rest", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, base+"/v2/models/tensor-rest/infer", strings.NewReader(`{"inputs":[]}`))
			for k, v := range tt.h {
				req.Header[k] = v
			}
			status, body := doRequest(t, req)
			var e struct{ Error string }
			if status != http.StatusRequestHeaderFieldsTooLarge || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tt.wantM) {
				t.Fatalf("status %d body %s, want 431 {\"error\": ...}", status, body)
			}
		})
		t.Run(tt.name+"/grpc", func(t *testing.T) {
			ctx := metadata.NewOutgoingContext(context.Background(), tt.md)
			_, err := grpcClient(t, s.Addr()).ModelInfer(ctx, addRequest("tensor"))
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), tt.wantM) {
				t.Fatalf("err = %v, want RESOURCE_EXHAUSTED", err)
			}
		})
	}
	// Within the limits, the same clients get through.
	if _, err := newOpenAI(base).Chat.Completions.New(context.Background(), chatParams("m"), option.WithHeader("x-ok", "1")); err != nil {
		t.Fatal(err)
	}
}

func TestLimitJSONDepth(t *testing.T) {
	a := startSim(t, sim.Config{Model: "m", DecodePerToken: time.Millisecond})
	_, base := startRouter(t, serverLimitsYAML(a))
	nested := func(n int) any {
		var v any = "leaf"
		for range n {
			v = map[string]any{"k": v}
		}
		return v
	}
	// The body is an object holding metadata: nesting 1 + n.
	_, err := newOpenAI(base).Chat.Completions.New(context.Background(), chatParams("m"), option.WithJSONSet("metadata_x", nested(10)))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Type != "invalid_request_error" ||
		!strings.Contains(apiErr.Message, "8 levels") {
		t.Fatalf("err = %v, want 400 invalid_request_error naming the depth", err)
	}
	if _, err := newOpenAI(base).Chat.Completions.New(context.Background(), chatParams("m"), option.WithJSONSet("metadata_x", nested(4))); err != nil {
		t.Fatalf("a body within the depth: %v", err)
	}
}

func TestLimitTensorElementsAndMessageSize(t *testing.T) {
	a := startSim(t, sim.Config{Model: "m", DecodePerToken: time.Millisecond})
	s, base := startRouter(t, serverLimitsYAML(a))
	c := grpcClient(t, s.Addr())
	ctx := context.Background()
	// 900 elements (within the element limit) in raw form: 7.2 KB of data, over the message limit.
	tooBig := &inference.ModelInferRequest{ModelName: "tensor", Inputs: []*inference.ModelInferRequest_InferInputTensor{
		{Name: "INPUT0", Datatype: "INT64", Shape: []int64{1, 450}}, {Name: "INPUT1", Datatype: "INT64", Shape: []int64{1, 450}}},
		RawInputContents: [][]byte{make([]byte, 8*450), make([]byte, 8*450)}}
	// Typed zeros take one byte each on the wire, so 1,200 elements fit in a small message.
	typed := func(n int) *inference.ModelInferRequest {
		return &inference.ModelInferRequest{ModelName: "tensor", Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "INPUT0", Datatype: "INT32", Shape: []int64{1, int64(n)}, Contents: &inference.InferTensorContents{IntContents: make([]int32, n)}},
			{Name: "INPUT1", Datatype: "INT32", Shape: []int64{1, int64(n)}, Contents: &inference.InferTensorContents{IntContents: make([]int32, n)}}}}
	}
	if _, err := c.ModelInfer(ctx, typed(600)); status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "1000 elements") {
		t.Errorf("1,200 elements: %v, want INVALID_ARGUMENT naming the limit", err)
	}
	if _, err := c.ModelInfer(ctx, tooBig); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a 7.2 KB message: %v, want RESOURCE_EXHAUSTED", err)
	}
	body := `{"inputs":[{"name":"INPUT0","shape":[1,600],"datatype":"INT8","data":[` + strings.TrimSuffix(strings.Repeat("1,", 600), ",") + `]},` +
		`{"name":"INPUT1","shape":[1,600],"datatype":"INT8","data":[` + strings.TrimSuffix(strings.Repeat("1,", 600), ",") + `]}]}`
	req, _ := http.NewRequest(http.MethodPost, base+"/v2/models/tensor-rest/infer", strings.NewReader(body))
	if st, b := doRequest(t, req); st != http.StatusBadRequest || !strings.Contains(b, "1000 elements") {
		t.Errorf("REST with 1,200 elements: %d %s, want 400", st, b)
	}
	if _, err := c.ModelInfer(ctx, typed(100)); err != nil {
		t.Errorf("within the limits: %v", err)
	}
}

func TestLimitConcurrentStreams(t *testing.T) {
	a := startSim(t, sim.Config{Model: "m", TensorLatency: 20 * time.Millisecond})
	s, _ := startRouter(t, serverLimitsYAML(a))
	// The server advertises the bound in its first SETTINGS frame.
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings()
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != 3 {
		t.Fatalf("MAX_CONCURRENT_STREAMS = %d (%v), want 3", v, ok)
	}
	// A gRPC client honours it: ten calls on one connection queue and all succeed.
	c := grpcClient(t, s.Addr())
	errs := make(chan error, 10)
	for range 10 {
		go func() {
			_, err := c.ModelInfer(context.Background(), addRequest("tensor"))
			errs <- err
		}()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// rawConn dials the router with a tiny receive buffer, so that a client that stops reading
// pushes back at once.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closedWithin reports whether the server closed conn (EOF or reset, after any response
// bytes) within d.
func closedWithin(conn net.Conn, d time.Duration) (bool, string) {
	conn.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, string(b)
	}
	return true, string(b)
}

func TestSlowClientHeadersAndBody(t *testing.T) {
	a := startSim(t, sim.Config{Model: "m", DecodePerToken: time.Millisecond})
	s, _ := startRouter(t, serverLimitsYAML(a))
	t.Run("headers never finish", func(t *testing.T) {
		conn := rawConn(t, s.Addr())
		io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: app")
		start := time.Now()
		if ok, _ := closedWithin(conn, 5*time.Second); !ok {
			t.Fatal("connection still open 5s after read_header_timeout (300ms)")
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("closed after %v, before the timeout", d)
		}
	})
	t.Run("body never finishes", func(t *testing.T) {
		conn := rawConn(t, s.Addr())
		io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":")
		start := time.Now()
		if ok, resp := closedWithin(conn, 5*time.Second); !ok {
			t.Fatalf("connection still open 5s after read_body_timeout (300ms); read %q", resp)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("closed after %v, before the timeout", d)
		}
	})
	t.Run("a slow but steady body is fine", func(t *testing.T) {
		body := `{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`
		conn := rawConn(t, s.Addr())
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		for i := 0; i < len(body); i += len(body) / 4 {
			time.Sleep(50 * time.Millisecond)
			io.WriteString(conn, body[i:min(len(body), i+len(body)/4)])
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response %v, %v", resp, err)
		}
		resp.Body.Close()
	})
}

// TestClientThatNeverReads opens streams that produce tokens as fast as the simulator can and
// never reads them. Each must be cut off after write_timeout, its upstream request canceled,
// and the router's goroutines and heap must come back to where they were.
func TestClientThatNeverReads(t *testing.T) {
	a := startSim(t, sim.Config{Model: "m", DecodePerToken: 20 * time.Microsecond, PrefillBase: time.Microsecond,
		MaxRunning: 32, DefaultMaxTokens: 1 << 20, KVBlocks: 1 << 20})
	s, base := startRouter(t, serverLimitsYAML(a))
	// Warm the router's pools and the client's, so that the baseline counts them.
	warm := chatParams("m")
	warm.MaxTokens = openai.Int(4)
	if _, err := newOpenAI(base).Chat.Completions.New(context.Background(), warm); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	const clients = 8
	body := `{"model":"m","stream":true,"max_tokens":1000000,"messages":[{"role":"user","content":"Write forever."}]}`
	for range clients {
		conn := rawConn(t, s.Addr())
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	eventually(t, "every stream running upstream", func() bool { return a.sim.Stats().Running == clients })
	// While they stream into full socket buffers, the router's heap holds little per stream.
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	// The kernel buffers a few MiB per connection before writes block; filling them takes
	// seconds on a busy machine.
	for deadline := time.Now().Add(60 * time.Second); a.sim.Stats().Running > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d stuck streams still running upstream after 60s", a.sim.Stats().Running)
		}
	}
	gen := a.sim.Stats().GenerationTokens
	time.Sleep(100 * time.Millisecond)
	if after := a.sim.Stats().GenerationTokens; after != gen {
		t.Errorf("the simulator still generates: %d tokens, then %d", gen, after)
	}
	// Each connection the router still held would keep a goroutine serving it: back at the
	// baseline, the router has let go of all of them. (Reading the clients' ends to EOF
	// instead would measure how slowly the kernel trickles queued bytes into a 4 KiB window.)
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= goroutines+2 })
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(during.HeapInuse) - int64(before.HeapInuse)
	left := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use: %d KiB before, %+d KiB with %d stuck streams, %+d KiB after; goroutines %d -> %d",
		before.HeapInuse>>10, grew>>10, clients, left>>10, goroutines, runtime.NumGoroutine())
	if grew > 16<<20 {
		t.Errorf("%d stuck streams grew the heap by %d MiB", clients, grew>>20)
	}
	if left > 4<<20 {
		t.Errorf("heap %d MiB above the baseline after the streams were released", left>>20)
	}
}

func doRequest(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
