package sim_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/gen/inference"
)

const tensorModel = "sim-tensor"

// kserveHarness adds a grpc-go client, over bufconn, to a harness.
type kserveHarness struct {
	*harness
	grpc inference.GRPCInferenceServiceClient
}

func startKServe(t *testing.T, cfg sim.Config) *kserveHarness {
	t.Helper()
	h := start(t, cfg)
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	h.sim.RegisterKServe(g)
	var wg sync.WaitGroup
	wg.Go(func() { g.Serve(lis) })
	conn, err := grpc.NewClient("passthrough:///sim",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop(); wg.Wait() })
	return &kserveHarness{harness: h, grpc: inference.NewGRPCInferenceServiceClient(conn)}
}

func (h *harness) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := h.srv.Client().Get(h.srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// contents puts a []int32, []int64, []float32 or []float64 in its typed field.
func contents(v any) *inference.InferTensorContents {
	switch v := v.(type) {
	case []int32:
		return &inference.InferTensorContents{IntContents: v}
	case []int64:
		return &inference.InferTensorContents{Int64Contents: v}
	case []float32:
		return &inference.InferTensorContents{Fp32Contents: v}
	case []float64:
		return &inference.InferTensorContents{Fp64Contents: v}
	}
	return nil
}

func input(name, dtype string, shape []int64, data any) *inference.ModelInferRequest_InferInputTensor {
	return &inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: dtype, Shape: shape, Contents: contents(data)}
}

// addSub builds a request with typed inputs, or raw ones with raw set.
func addSub(dtype string, shape []int64, a, b any, raw bool) *inference.ModelInferRequest {
	req := &inference.ModelInferRequest{ModelName: tensorModel, Inputs: []*inference.ModelInferRequest_InferInputTensor{
		input("INPUT0", dtype, shape, a), input("INPUT1", dtype, shape, b),
	}}
	if raw {
		for i, v := range []any{a, b} {
			buf, _ := binary.Append(nil, binary.LittleEndian, v)
			req.RawInputContents = append(req.RawInputContents, buf)
			req.Inputs[i].Contents = nil
		}
	}
	return req
}

// outputData returns output i of resp as a slice like proto, read from
// raw_output_contents when raw is set and from typed contents otherwise.
func outputData(t *testing.T, resp *inference.ModelInferResponse, i int, proto any, raw bool) any {
	t.Helper()
	c := resp.GetOutputs()[i].GetContents()
	if !raw {
		if len(resp.GetRawOutputContents()) != 0 {
			t.Fatalf("typed request answered with raw contents")
		}
		return map[reflect.Type]any{
			reflect.TypeFor[[]int32](): c.GetIntContents(), reflect.TypeFor[[]int64](): c.GetInt64Contents(),
			reflect.TypeFor[[]float32](): c.GetFp32Contents(), reflect.TypeFor[[]float64](): c.GetFp64Contents(),
		}[reflect.TypeOf(proto)]
	}
	if c != nil || len(resp.GetRawOutputContents()) != len(resp.GetOutputs()) {
		t.Fatalf("raw request answered with contents %v and %d raw entries", c, len(resp.GetRawOutputContents()))
	}
	n := reflect.ValueOf(proto).Len()
	v := reflect.MakeSlice(reflect.TypeOf(proto), n, n).Interface()
	if _, err := binary.Decode(resp.GetRawOutputContents()[i], binary.LittleEndian, v); err != nil {
		t.Fatalf("decode raw output %d: %v", i, err)
	}
	return v
}

func TestKServeAddSub(t *testing.T) {
	h := startKServe(t, sim.Config{})
	for _, tc := range []struct {
		name, dtype     string
		shape           []int64
		a, b, sum, diff any
		raw             bool
	}{
		{"INT32 typed", "INT32", []int64{1, 4}, []int32{1, 2, 3, 4}, []int32{10, 20, 30, 40}, []int32{11, 22, 33, 44}, []int32{-9, -18, -27, -36}, false},
		{"INT32 raw", "INT32", []int64{2, 2}, []int32{5, 6, 7, 8}, []int32{1, 1, 1, 9}, []int32{6, 7, 8, 17}, []int32{4, 5, 6, -1}, true},
		{"FP32 typed", "FP32", []int64{3}, []float32{1.5, 2, -1}, []float32{0.25, 4, 1}, []float32{1.75, 6, 0}, []float32{1.25, -2, -2}, false},
		{"FP32 raw", "FP32", []int64{1, 1, 2}, []float32{0.5, 8}, []float32{0.5, 2}, []float32{1, 10}, []float32{0, 6}, true},
		{"INT64 typed", "INT64", []int64{2}, []int64{1 << 40, 3}, []int64{1, 4}, []int64{1<<40 + 1, 7}, []int64{1<<40 - 1, -1}, false},
		{"FP64 raw", "FP64", []int64{1, 2}, []float64{1.5, 2}, []float64{0.5, 3}, []float64{2, 5}, []float64{1, -1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := addSub(tc.dtype, tc.shape, tc.a, tc.b, tc.raw)
			req.Id = "req-" + tc.name
			resp, err := h.grpc.ModelInfer(context.Background(), req)
			if err != nil {
				t.Fatalf("ModelInfer: %v", err)
			}
			if resp.GetId() != req.Id || resp.GetModelName() != tensorModel || resp.GetModelVersion() != "1" || len(resp.GetOutputs()) != 2 {
				t.Fatalf("response %v", resp)
			}
			for i, want := range []any{tc.sum, tc.diff} {
				out := resp.GetOutputs()[i]
				if out.GetName() != []string{"OUTPUT0", "OUTPUT1"}[i] || out.GetDatatype() != tc.dtype || !reflect.DeepEqual(out.GetShape(), tc.shape) {
					t.Fatalf("output %d: %v", i, out)
				}
				if got := outputData(t, resp, i, want, tc.raw); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %v, want %v", out.GetName(), got, want)
				}
			}
		})
	}
}

func TestKServeRequestedOutputs(t *testing.T) {
	h := startKServe(t, sim.Config{})
	for _, raw := range []bool{false, true} {
		req := addSub("INT32", []int64{1, 2}, []int32{5, 1}, []int32{2, 3}, raw)
		req.Id = "only-diff"
		req.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT1"}}
		resp, err := h.grpc.ModelInfer(context.Background(), req)
		if err != nil {
			t.Fatalf("raw=%v: %v", raw, err)
		}
		if len(resp.GetOutputs()) != 1 || resp.GetOutputs()[0].GetName() != "OUTPUT1" || resp.GetId() != "only-diff" {
			t.Fatalf("raw=%v: response %v, want only OUTPUT1 and the id", raw, resp)
		}
		if got := outputData(t, resp, 0, make([]int32, 2), raw); !reflect.DeepEqual(got, []int32{3, -2}) {
			t.Fatalf("raw=%v: OUTPUT1 = %v", raw, got)
		}
		if raw && !bytes.Equal(resp.GetRawOutputContents()[0], []byte{3, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff}) {
			t.Fatalf("raw OUTPUT1 = %x", resp.GetRawOutputContents()[0])
		}
	}
}

func TestKServeHealthAndMetadata(t *testing.T) {
	h := startKServe(t, sim.Config{})
	ctx := context.Background()
	live, err := h.grpc.ServerLive(ctx, &inference.ServerLiveRequest{})
	if err != nil || !live.GetLive() {
		t.Fatalf("ServerLive: %v %v", live, err)
	}
	ready, err := h.grpc.ServerReady(ctx, &inference.ServerReadyRequest{})
	if err != nil || !ready.GetReady() {
		t.Fatalf("ServerReady: %v %v", ready, err)
	}
	meta, err := h.grpc.ServerMetadata(ctx, &inference.ServerMetadataRequest{})
	if err != nil || meta.GetName() != "switchyard-sim" || meta.GetVersion() == "" || !strings.Contains(strings.Join(meta.GetExtensions(), ","), "parameters") {
		t.Fatalf("ServerMetadata: %v %v", meta, err)
	}
	for _, tc := range []struct {
		name, version string
		want          bool
	}{{tensorModel, "", true}, {tensorModel, "1", true}, {tensorModel, "2", false}, {"sim-model", "", false}} {
		r, err := h.grpc.ModelReady(ctx, &inference.ModelReadyRequest{Name: tc.name, Version: tc.version})
		if err != nil || r.GetReady() != tc.want {
			t.Errorf("ModelReady(%q, %q) = %v, %v; want %v", tc.name, tc.version, r, err, tc.want)
		}
	}
	mm, err := h.grpc.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: tensorModel, Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if mm.GetName() != tensorModel || !reflect.DeepEqual(mm.GetVersions(), []string{"1"}) || mm.GetPlatform() != "sim" ||
		len(mm.GetInputs()) != 2 || len(mm.GetOutputs()) != 2 {
		t.Fatalf("ModelMetadata: %v", mm)
	}
	for _, tm := range append(mm.GetInputs(), mm.GetOutputs()...) {
		if tm.GetDatatype() != "INT32" || !reflect.DeepEqual(tm.GetShape(), []int64{-1, -1}) {
			t.Errorf("tensor metadata %v", tm)
		}
	}
	for _, req := range []*inference.ModelMetadataRequest{{Name: "nope"}, {Name: tensorModel, Version: "2"}} {
		if _, err := h.grpc.ModelMetadata(ctx, req); status.Code(err) != codes.NotFound {
			t.Errorf("ModelMetadata(%v): %v, want NotFound", req, err)
		}
	}

	h.sim.Close()
	ready, err = h.grpc.ServerReady(ctx, &inference.ServerReadyRequest{})
	if err != nil || ready.GetReady() {
		t.Fatalf("ServerReady after Close: %v %v", ready, err)
	}
	if r, err := h.grpc.ModelReady(ctx, &inference.ModelReadyRequest{Name: tensorModel}); err != nil || r.GetReady() {
		t.Fatalf("ModelReady after Close: %v %v", r, err)
	}
	_, err = h.grpc.ModelInfer(ctx, addSub("INT32", []int64{1}, []int32{1}, []int32{1}, false))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("ModelInfer after Close: %v, want Unavailable", err)
	}
	if code, _ := h.get(t, "/v2/health/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("REST ready after Close: %d", code)
	}
}

func TestKServeErrors(t *testing.T) {
	h := startKServe(t, sim.Config{})
	i32 := []int32{1, 2}
	ok := func() *inference.ModelInferRequest { return addSub("INT32", []int64{1, 2}, i32, i32, false) }
	with := func(f func(r *inference.ModelInferRequest)) *inference.ModelInferRequest { r := ok(); f(r); return r }
	for _, tc := range []struct {
		name string
		req  *inference.ModelInferRequest
		want codes.Code
	}{
		{"unknown model", with(func(r *inference.ModelInferRequest) { r.ModelName = "nope" }), codes.NotFound},
		{"unknown version", with(func(r *inference.ModelInferRequest) { r.ModelVersion = "2" }), codes.NotFound},
		{"missing input", with(func(r *inference.ModelInferRequest) { r.Inputs = r.Inputs[:1] }), codes.InvalidArgument},
		{"unexpected input", with(func(r *inference.ModelInferRequest) { r.Inputs[1].Name = "INPUT2" }), codes.InvalidArgument},
		{"shape mismatch", with(func(r *inference.ModelInferRequest) { r.Inputs[1].Shape = []int64{2, 1} }), codes.InvalidArgument},
		{"datatype mismatch", with(func(r *inference.ModelInferRequest) {
			r.Inputs[1] = input("INPUT1", "INT64", []int64{1, 2}, []int64{1, 2})
		}), codes.InvalidArgument},
		{"unsupported datatype", addSub("BYTES", []int64{1}, nil, nil, false), codes.InvalidArgument},
		{"element count", with(func(r *inference.ModelInferRequest) { r.Inputs[0].Contents.IntContents = []int32{1} }), codes.InvalidArgument},
		{"raw length", with(func(r *inference.ModelInferRequest) {
			r.Inputs[0].Contents, r.Inputs[1].Contents = nil, nil
			r.RawInputContents = [][]byte{make([]byte, 8), make([]byte, 7)}
		}), codes.InvalidArgument},
		{"raw and typed", with(func(r *inference.ModelInferRequest) { r.RawInputContents = [][]byte{make([]byte, 8), make([]byte, 8)} }), codes.InvalidArgument},
		{"unknown output", with(func(r *inference.ModelInferRequest) {
			r.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT9"}}
		}), codes.InvalidArgument},
	} {
		_, err := h.grpc.ModelInfer(context.Background(), tc.req)
		if status.Code(err) != tc.want || status.Convert(err).Message() == "" {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := h.grpc.ModelInfer(context.Background(), ok()); err != nil {
		t.Fatalf("valid request after errors: %v", err)
	}
}

func TestKServeFaults(t *testing.T) {
	h := startKServe(t, sim.Config{ErrorRate: 1})
	_, err := h.grpc.ModelInfer(context.Background(), addSub("INT32", []int64{1}, []int32{1}, []int32{2}, false))
	if status.Code(err) != codes.Internal {
		t.Fatalf("ErrorRate 1: %v, want Internal", err)
	}
	code, _, body := h.post(t, "/v2/models/sim-tensor/infer", `{"inputs":[
		{"name":"INPUT0","shape":[1],"datatype":"INT32","data":[1]},{"name":"INPUT1","shape":[1],"datatype":"INT32","data":[1]}]}`)
	checkV2Error(t, code, body, http.StatusInternalServerError)

	const spike = 100 * time.Millisecond
	slow := startKServe(t, sim.Config{SpikeRate: 1, SpikeLatency: spike})
	begin := time.Now()
	if _, err := slow.grpc.ModelInfer(context.Background(), addSub("INT32", []int64{1}, []int32{1}, []int32{2}, false)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < spike {
		t.Fatalf("spiked request took %v, want at least %v", took, spike)
	}
}

func TestKServeStreamInfer(t *testing.T) {
	h := startKServe(t, sim.Config{})
	stream, err := h.grpc.ModelStreamInfer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seq := func(k string, v *inference.InferParameter) map[string]*inference.InferParameter {
		return map[string]*inference.InferParameter{
			"sequence_id": {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: 42}}, k: v,
		}
	}
	yes := &inference.InferParameter{ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: true}}
	ids := []string{"s0", "s1", "s2", "s3"}
	for i, id := range ids {
		req := addSub("INT32", []int64{1}, []int32{int32(i)}, []int32{10}, i%2 == 1)
		req.Id = id
		switch i {
		case 0:
			req.Parameters = seq("sequence_start", yes)
		case 2:
			req.Inputs = req.Inputs[:1] // invalid: INPUT1 missing
		case 3:
			req.Parameters = seq("sequence_end", yes)
		}
		if err := stream.Send(req); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if i == 2 {
			if resp.GetErrorMessage() == "" || resp.GetInferResponse() != nil {
				t.Fatalf("response %d: %v, want only an error message", i, resp)
			}
			continue
		}
		got := outputData(t, resp.GetInferResponse(), 0, make([]int32, 1), i%2 == 1)
		if resp.GetErrorMessage() != "" || resp.GetInferResponse().GetId() != id || !reflect.DeepEqual(got, []int32{int32(i) + 10}) {
			t.Fatalf("response %d: %v, want id %s and sum %d", i, resp, id, i+10)
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last response: %v, want EOF", err)
	}
}

func TestKServeQueueAndCancel(t *testing.T) {
	h := startKServe(t, sim.Config{TensorConcurrency: 1, TensorLatency: time.Hour, MaxWaiting: 2})
	req := addSub("INT32", []int64{1}, []int32{1}, []int32{2}, false)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	cancels := make([]context.CancelFunc, 3)
	t.Cleanup(func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	})
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		wg.Go(func() { _, errs[i] = h.grpc.ModelInfer(ctx, req) })
		eventually(t, "the request to run or queue", func() bool { st := h.sim.Stats(); return st.TensorRunning+st.TensorWaiting == i+1 })
	}
	if st := h.sim.Stats(); st.TensorRunning != 1 || st.TensorWaiting != 2 {
		t.Fatalf("stats %+v: want 1 running and 2 waiting", st)
	}
	fams := h.scrape(t)
	labels := []string{"model", tensorModel, "version", "1"}
	if got := metric(t, fams, "nv_inference_pending_request_count", labels...); got != 2 {
		t.Fatalf("pending requests = %v, want 2", got)
	}
	if used, total := metric(t, fams, "nv_gpu_memory_used_bytes"), metric(t, fams, "nv_gpu_memory_total_bytes"); total != 80<<30 || used <= 2<<30 || used >= total {
		t.Fatalf("GPU memory used %v of %v", used, total)
	}
	if got := metric(t, fams, "nv_gpu_utilization"); got != 1 {
		t.Fatalf("GPU utilization %v, want 1", got)
	}

	// The queue is full: one more is refused at once, over gRPC and REST.
	if _, err := h.grpc.ModelInfer(context.Background(), req); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("request beyond the queue: %v, want ResourceExhausted", err)
	}
	code, hdr, body := h.post(t, "/v2/models/sim-tensor/infer", `{"inputs":[
		{"name":"INPUT0","shape":[1],"datatype":"INT32","data":[1]},{"name":"INPUT1","shape":[1],"datatype":"INT32","data":[1]}]}`)
	checkV2Error(t, code, body, http.StatusTooManyRequests)
	if hdr.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}

	cancels[1]() // leaves the queue
	eventually(t, "the cancelled request to leave the queue", func() bool { return h.sim.Stats().TensorWaiting == 1 })
	cancels[0]() // frees the slot for the last queued request
	eventually(t, "the queued request to take the slot", func() bool {
		st := h.sim.Stats()
		return st.TensorRunning == 1 && st.TensorWaiting == 0
	})
	cancels[2]()
	eventually(t, "the slot to free", func() bool { return h.sim.Stats().TensorRunning == 0 })
	wg.Wait()
	for i, err := range errs {
		if status.Code(err) != codes.Canceled {
			t.Errorf("request %d: %v, want Canceled", i, err)
		}
	}
	fams = h.scrape(t)
	for reason, want := range map[string]float64{"CANCELED": 3, "REJECTED": 2, "BACKEND": 0, "OTHER": 0} {
		if got := metric(t, fams, "nv_inference_request_failure", append(labels, "reason", reason)...); got != want {
			t.Errorf("failures %s = %v, want %v", reason, got, want)
		}
	}
	if got := metric(t, fams, "nv_inference_pending_request_count", labels...); got != 0 {
		t.Errorf("pending requests = %v, want 0", got)
	}
}

func TestTritonMetricsMove(t *testing.T) {
	const latency = 5 * time.Millisecond
	h := startKServe(t, sim.Config{TensorLatency: latency})
	labels := []string{"model", tensorModel, "version", "1"}
	before := h.scrape(t)
	if got := metric(t, before, "nv_inference_request_success", labels...); got != 0 {
		t.Fatalf("successes before any request = %v", got)
	}
	for range 3 {
		if _, err := h.grpc.ModelInfer(context.Background(), addSub("FP32", []int64{2}, []float32{1, 2}, []float32{3, 4}, true)); err != nil {
			t.Fatal(err)
		}
	}
	code, _, body := h.post(t, "/v2/models/sim-tensor/infer", `{"inputs":[
		{"name":"INPUT0","shape":[1],"datatype":"INT32","data":[1]},{"name":"INPUT1","shape":[1],"datatype":"INT32","data":[1]}]}`)
	if code != http.StatusOK {
		t.Fatalf("REST infer: %d %s", code, body)
	}
	_, _, _ = h.post(t, "/v2/models/sim-tensor/infer", `{"inputs":[]}`)

	fams := h.scrape(t)
	for name, want := range map[string]float64{"nv_inference_request_success": 4, "nv_inference_count": 4, "nv_inference_exec_count": 4} {
		if got := metric(t, fams, name, labels...); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := metric(t, fams, "nv_inference_request_failure", append(labels, "reason", "OTHER")...); got != 1 {
		t.Errorf("OTHER failures = %v, want 1", got)
	}
	minUs := float64(4 * latency.Microseconds())
	for _, name := range []string{"nv_inference_request_duration_us", "nv_inference_compute_infer_duration_us"} {
		if got := metric(t, fams, name, labels...); got < minUs {
			t.Errorf("%s = %v, want at least %v", name, got, minUs)
		}
	}
	if got := metric(t, fams, "nv_inference_queue_duration_us", labels...); got < 0 {
		t.Errorf("queue duration %v", got)
	}
	if got := metric(t, fams, "nv_gpu_memory_used_bytes"); got != 2<<30 {
		t.Errorf("idle GPU memory used %v, want the weights' 2 GiB", got)
	}
	metric(t, fams, "vllm:num_requests_running") // vLLM's families stay beside Triton's
	if st := h.sim.Stats(); st.TensorRequests != 5 || st.Requests != 0 {
		t.Errorf("stats %+v: want 5 tensor requests and no LLM requests", st)
	}
}

func checkV2Error(t *testing.T, code int, body []byte, want int) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); code != want || err != nil || e.Error == "" {
		t.Fatalf("status %d body %s: want %d with {\"error\": ...}", code, body, want)
	}
}

func TestKServeREST(t *testing.T) {
	h := startKServe(t, sim.Config{})
	for _, tc := range []struct{ path, want string }{
		{"/v2/health/live", `{"live":true}`},
		{"/v2/health/ready", `{"ready":true}`},
		{"/v2/models/sim-tensor/ready", `{"name":"sim-tensor","ready":true}`},
		{"/v2/models/sim-tensor/versions/1/ready", `{"name":"sim-tensor","ready":true}`},
	} {
		if code, body := h.get(t, tc.path); code != http.StatusOK || string(body) != tc.want {
			t.Errorf("GET %s: %d %s, want %s", tc.path, code, body, tc.want)
		}
	}
	var server struct {
		Name       string   `json:"name"`
		Version    string   `json:"version"`
		Extensions []string `json:"extensions"`
	}
	code, body := h.get(t, "/v2")
	if err := json.Unmarshal(body, &server); code != http.StatusOK || err != nil || server.Name != "switchyard-sim" || !strings.Contains(strings.Join(server.Extensions, ","), "parameters") {
		t.Fatalf("GET /v2: %d %s", code, body)
	}
	for _, path := range []string{"/v2/models/sim-tensor", "/v2/models/sim-tensor/versions/1"} {
		var meta struct {
			Name     string   `json:"name"`
			Versions []string `json:"versions"`
			Platform string   `json:"platform"`
			Inputs   []struct {
				Name, Datatype string
				Shape          []int64
			} `json:"inputs"`
			Outputs []json.RawMessage `json:"outputs"`
		}
		code, body := h.get(t, path)
		if err := json.Unmarshal(body, &meta); code != http.StatusOK || err != nil || meta.Name != tensorModel || meta.Platform != "sim" ||
			!reflect.DeepEqual(meta.Versions, []string{"1"}) || len(meta.Inputs) != 2 || len(meta.Outputs) != 2 ||
			meta.Inputs[0].Name != "INPUT0" || meta.Inputs[0].Datatype != "INT32" || !reflect.DeepEqual(meta.Inputs[0].Shape, []int64{-1, -1}) {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	for _, path := range []string{"/v2/models/nope", "/v2/models/sim-tensor/versions/2", "/v2/models/nope/ready", "/v2/models/sim-tensor/versions/2/ready"} {
		code, body := h.get(t, path)
		checkV2Error(t, code, body, http.StatusNotFound)
	}

	for _, tc := range []struct{ name, path, body, want string }{
		{"flat INT32 with id", "/v2/models/sim-tensor/infer",
			`{"id":"r1","inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"INT32","data":[1,2,3,4]},
			  {"name":"INPUT1","shape":[1,4],"datatype":"INT32","data":[10,20,30,40]}]}`,
			`{"model_name":"sim-tensor","model_version":"1","id":"r1","outputs":[` +
				`{"name":"OUTPUT0","shape":[1,4],"datatype":"INT32","data":[11,22,33,44]},` +
				`{"name":"OUTPUT1","shape":[1,4],"datatype":"INT32","data":[-9,-18,-27,-36]}]}`},
		{"nested FP32, version path, one output, parameters", "/v2/models/sim-tensor/versions/1/infer",
			`{"parameters":{"sequence_id":7,"sequence_start":true},"outputs":[{"name":"OUTPUT0"}],"inputs":[
			  {"name":"INPUT1","shape":[2,2],"datatype":"FP32","data":[[0.5,1],[1,1]]},
			  {"name":"INPUT0","shape":[2,2],"datatype":"FP32","data":[[1.5,2],[3,4]]}]}`,
			`{"model_name":"sim-tensor","model_version":"1","id":"","outputs":[` +
				`{"name":"OUTPUT0","shape":[2,2],"datatype":"FP32","data":[2,3,4,5]}]}`},
		{"INT64 beyond float64 precision", "/v2/models/sim-tensor/infer",
			`{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"INT64","data":[9007199254740993]},
			  {"name":"INPUT1","shape":[1],"datatype":"INT64","data":[0]}],"outputs":[{"name":"OUTPUT1"}]}`,
			`{"model_name":"sim-tensor","model_version":"1","id":"","outputs":[` +
				`{"name":"OUTPUT1","shape":[1],"datatype":"INT64","data":[9007199254740993]}]}`},
	} {
		code, _, body := h.post(t, tc.path, tc.body)
		if code != http.StatusOK || string(body) != tc.want {
			t.Errorf("%s: %d\n got %s\nwant %s", tc.name, code, body, tc.want)
		}
	}

	in := func(shape, data string) string {
		return `{"name":"INPUT0","shape":` + shape + `,"datatype":"INT32","data":` + data + `},{"name":"INPUT1","shape":[2],"datatype":"INT32","data":[1,2]}`
	}
	for _, tc := range []struct {
		name, path, body string
		want             int
	}{
		{"unknown model", "/v2/models/nope/infer", `{"inputs":[` + in("[2]", "[1,2]") + `]}`, http.StatusNotFound},
		{"unknown version", "/v2/models/sim-tensor/versions/3/infer", `{"inputs":[` + in("[2]", "[1,2]") + `]}`, http.StatusNotFound},
		{"invalid JSON", "/v2/models/sim-tensor/infer", `{"inputs":`, http.StatusBadRequest},
		{"shape mismatch", "/v2/models/sim-tensor/infer", `{"inputs":[` + in("[1,2]", "[1,2]") + `]}`, http.StatusBadRequest},
		{"element count", "/v2/models/sim-tensor/infer", `{"inputs":[` + in("[2]", "[1,2,3]") + `]}`, http.StatusBadRequest},
		{"non-numeric data", "/v2/models/sim-tensor/infer", `{"inputs":[` + in("[2]", `["a","b"]`) + `]}`, http.StatusBadRequest},
		{"INT32 overflow", "/v2/models/sim-tensor/infer", `{"inputs":[` + in("[2]", "[3000000000,1]") + `]}`, http.StatusBadRequest},
		{"fraction in INT32", "/v2/models/sim-tensor/infer", `{"inputs":[` + in("[2]", "[1.5,1]") + `]}`, http.StatusBadRequest},
		{"missing input", "/v2/models/sim-tensor/infer", `{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP64","data":[1]}]}`, http.StatusBadRequest},
	} {
		code, _, body := h.post(t, tc.path, tc.body)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
			continue
		}
		checkV2Error(t, code, body, tc.want)
	}
}

func TestTensorConfig(t *testing.T) {
	var cfg sim.Config
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	cfg.BindFlags(fs)
	for name, want := range map[string]string{
		"tensor-model": "sim-tensor", "tensor-latency": "2ms", "tensor-per-element": "0s", "tensor-concurrency": "4",
	} {
		if f := fs.Lookup(name); f == nil || f.DefValue != want || f.Usage == "" {
			t.Errorf("flag --%s = %+v, want default %q and help text", name, f, want)
		}
	}
	if err := fs.Parse([]string{"--tensor-model=add", "--tensor-concurrency=2", "--tensor-per-element=1us"}); err != nil {
		t.Fatal(err)
	}
	if cfg.TensorModel != "add" || cfg.TensorConcurrency != 2 || cfg.TensorPerElement != time.Microsecond || cfg.TensorLatency != 2*time.Millisecond {
		t.Fatalf("parsed config %+v", cfg)
	}
	for _, c := range []sim.Config{{TensorConcurrency: -1}, {TensorLatency: -time.Second}, {TensorPerElement: -1}} {
		if s, err := sim.New(c); err == nil || !strings.Contains(err.Error(), "tensor-") {
			if s != nil {
				s.Close()
			}
			t.Errorf("New(%+v): %v, want a tensor-* error", c, err)
		}
	}
}
