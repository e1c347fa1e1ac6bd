package integration_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/gen/inference"
	"github.com/switchyard-ai/switchyard/gen/inference/inferenceconnect"
)

// kserveYAML serves model "tensor" from the gRPC side of sims and model "tensor-rest" (the
// same simulator model under another name) from the REST side of the first one.
func kserveYAML(extra string, sims ...*simServer) string {
	var b strings.Builder
	b.WriteString("pools:\n  - name: grpc\n    protocol: kserve\n    metrics: triton\n    stats: {interval: 50ms}\n" + extra + "    endpoints:\n")
	for _, s := range sims {
		b.WriteString("      - grpc://" + s.Host + "\n")
	}
	b.WriteString("  - name: rest\n    protocol: kserve\n    metrics: none\n    endpoints: [" + sims[0].URL + "]\n")
	b.WriteString("models:\n  - {name: tensor, pool: grpc, target_model: sim-tensor}\n  - {name: tensor-rest, pool: rest, target_model: sim-tensor}\n")
	return b.String()
}

func int32Input(name string, vals ...int32) *inference.ModelInferRequest_InferInputTensor {
	return &inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: "INT32", Shape: []int64{1, int64(len(vals))},
		Contents: &inference.InferTensorContents{IntContents: vals}}
}

func addRequest(model string) *inference.ModelInferRequest {
	return &inference.ModelInferRequest{ModelName: model, Id: "req-1",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{int32Input("INPUT0", 1, 2, 3, 4), int32Input("INPUT1", 10, 20, 30, 40)}}
}

func grpcClient(t *testing.T, addr string) inference.GRPCInferenceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return inference.NewGRPCInferenceServiceClient(conn)
}

func tensorSim(t *testing.T, latency time.Duration, concurrency int) *simServer {
	return startSim(t, sim.Config{Model: "llm", TensorLatency: latency, TensorConcurrency: concurrency})
}

func TestKServeGRPC(t *testing.T) {
	a, b := tensorSim(t, time.Millisecond, 4), tensorSim(t, time.Millisecond, 4)
	s, _ := startRouter(t, kserveYAML("", a, b))
	c := grpcClient(t, s.Addr())
	ctx := context.Background()

	if r, err := c.ServerLive(ctx, &inference.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive = %v, %v", r, err)
	}
	if r, err := c.ServerReady(ctx, &inference.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Errorf("ServerReady = %v, %v", r, err)
	}
	if r, err := c.ServerMetadata(ctx, &inference.ServerMetadataRequest{}); err != nil || r.Name != "switchyard" {
		t.Errorf("ServerMetadata = %v, %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "tensor"}); err != nil || !r.Ready {
		t.Errorf("ModelReady(tensor) = %v, %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "nope"}); err != nil || r.Ready {
		t.Errorf("ModelReady(nope) = %v, %v; want ready false", r, err)
	}
	md, err := c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "tensor"})
	if err != nil || md.Name != "tensor" || len(md.Inputs) != 2 {
		t.Errorf("ModelMetadata = %v, %v", md, err)
	}

	var hdr metadata.MD
	resp, err := c.ModelInfer(ctx, addRequest("tensor"), grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ModelName != "tensor" || resp.Id != "req-1" || len(resp.Outputs) != 2 {
		t.Fatalf("response %v", resp)
	}
	if got := resp.Outputs[0].Contents.IntContents; len(got) != 4 || got[0] != 11 || got[3] != 44 {
		t.Errorf("OUTPUT0 = %v", got)
	}
	if m, e := hdr.Get("x-switchyard-model"), hdr.Get("x-switchyard-endpoint"); len(m) != 1 || m[0] != "sim-tensor" || len(e) != 1 || (e[0] != a.Host && e[0] != b.Host) {
		t.Errorf("routing metadata = %v, %v", m, e)
	}

	// Raw contents pass through untouched both ways.
	raw := &inference.ModelInferRequest{ModelName: "tensor",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "INPUT0", Datatype: "INT32", Shape: []int64{1, 2}}, {Name: "INPUT1", Datatype: "INT32", Shape: []int64{1, 2}}},
		RawInputContents: [][]byte{le32(5, 6), le32(1, 1)}}
	resp, err = c.ModelInfer(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.RawOutputContents) != 2 || string(resp.RawOutputContents[0]) != string(le32(6, 7)) {
		t.Errorf("raw outputs %v", resp.RawOutputContents)
	}

	for _, tt := range []struct {
		name string
		req  *inference.ModelInferRequest
		code codes.Code
	}{
		{"unknown model", addRequest("nope"), codes.NotFound},
		{"count does not match shape", &inference.ModelInferRequest{ModelName: "tensor", Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "INPUT0", Datatype: "INT32", Shape: []int64{2, 2}, Contents: &inference.InferTensorContents{IntContents: []int32{1}}}}}, codes.InvalidArgument},
		{"upstream rejects a missing input", &inference.ModelInferRequest{ModelName: "tensor", Inputs: []*inference.ModelInferRequest_InferInputTensor{int32Input("INPUT0", 1)}}, codes.InvalidArgument},
		{"bad priority parameter", func() *inference.ModelInferRequest {
			r := addRequest("tensor")
			r.Parameters = map[string]*inference.InferParameter{"priority": {ParameterChoice: &inference.InferParameter_StringParam{StringParam: "high"}}}
			return r
		}(), codes.InvalidArgument},
	} {
		_, err := c.ModelInfer(ctx, tt.req)
		if status.Code(err) != tt.code {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.code)
		}
	}
}

func le32(vals ...int32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return b
}

func TestKServeDeadlineAndCancel(t *testing.T) {
	slow := tensorSim(t, 2*time.Second, 1)
	s, _ := startRouter(t, kserveYAML("", slow))
	c := grpcClient(t, s.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.ModelInfer(ctx, addRequest("tensor")); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("client deadline: %v", err)
	}
	// Triton's timeout parameter (microseconds) bounds the request too.
	r := addRequest("tensor")
	r.Parameters = map[string]*inference.InferParameter{"timeout": {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: 100_000}}}
	if _, err := c.ModelInfer(context.Background(), r); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("timeout parameter: %v", err)
	}
	eventually(t, "the upstream to drop the expired requests", func() bool {
		st := slow.sim.Stats()
		return st.TensorRunning == 0 && st.TensorWaiting == 0
	})
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		eventually(t, "the request to run upstream", func() bool { return slow.sim.Stats().TensorRunning == 1 })
		cancel()
	}()
	if _, err := c.ModelInfer(ctx, addRequest("tensor")); status.Code(err) != codes.Canceled {
		t.Errorf("cancel: %v", err)
	}
	eventually(t, "the cancellation to free the upstream slot", func() bool { return slow.sim.Stats().TensorRunning == 0 })
}

func TestKServeStreamInfer(t *testing.T) {
	a := tensorSim(t, time.Millisecond, 4)
	s, _ := startRouter(t, kserveYAML("", a))
	c := grpcClient(t, s.Addr())
	stream, err := c.ModelStreamInfer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bad := addRequest("tensor")
	bad.Inputs = bad.Inputs[:1]
	reqs := []*inference.ModelInferRequest{addRequest("tensor"), bad, addRequest("tensor")}
	reqs[0].Id, reqs[1].Id, reqs[2].Id = "a", "b", "c"
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	var got []string
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.ErrorMessage != "" {
			got = append(got, "error")
			continue
		}
		if r.InferResponse.ModelName != "tensor" {
			t.Errorf("model name %q in stream response", r.InferResponse.ModelName)
		}
		got = append(got, r.InferResponse.Id)
	}
	if strings.Join(got, ",") != "a,error,c" {
		t.Errorf("stream answers %v, want a,error,c", got)
	}
	if hdr, err := stream.Header(); err != nil || len(hdr.Get("x-switchyard-endpoint")) != 1 {
		t.Errorf("stream header %v %v", hdr, err)
	}
}

// TestKServeConnectAndGRPCWeb calls the same service with connect-go's Connect and gRPC-Web
// protocols over HTTP/1.1.
func TestKServeConnectAndGRPCWeb(t *testing.T) {
	a := tensorSim(t, time.Millisecond, 4)
	_, base := startRouter(t, kserveYAML("", a))
	for _, tt := range []struct {
		name string
		opts []connect.ClientOption
	}{
		{"connect", nil},
		{"connect json", []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		c := inferenceconnect.NewGRPCInferenceServiceClient(http.DefaultClient, base, tt.opts...)
		resp, err := c.ModelInfer(context.Background(), connect.NewRequest(addRequest("tensor")))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.Msg.Outputs[1].Contents.IntContents[0] != -9 || resp.Header().Get("x-switchyard-endpoint") != a.Host {
			t.Errorf("%s: %v %v", tt.name, resp.Msg, resp.Header())
		}
		_, err = c.ModelInfer(context.Background(), connect.NewRequest(addRequest("nope")))
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("%s: unknown model: %v", tt.name, err)
		}
		live, err := c.ServerLive(context.Background(), connect.NewRequest(&inference.ServerLiveRequest{}))
		if err != nil || !live.Msg.Live {
			t.Errorf("%s: ServerLive %v %v", tt.name, live, err)
		}
	}
}

func TestKServeREST(t *testing.T) {
	a := tensorSim(t, time.Millisecond, 4)
	_, base := startRouter(t, kserveYAML("", a))
	body := `{"id":"r1","inputs":[{"name":"INPUT0","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]},{"name":"INPUT1","shape":[2,2],"datatype":"FP32","data":[0.5,0.5,0.5,0.5]}],"outputs":[{"name":"OUTPUT0"}]}`
	for _, model := range []string{"tensor", "tensor-rest"} { // gRPC upstream and REST upstream
		resp, err := http.Post(base+"/v2/models/"+model+"/infer", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			ModelName string `json:"model_name"`
			ID        string `json:"id"`
			Outputs   []struct {
				Name     string    `json:"name"`
				Datatype string    `json:"datatype"`
				Shape    []int     `json:"shape"`
				Data     []float64 `json:"data"`
			} `json:"outputs"`
		}
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != 200 || got.ModelName != model || got.ID != "r1" || len(got.Outputs) != 1 ||
			got.Outputs[0].Name != "OUTPUT0" || got.Outputs[0].Data[3] != 4.5 || len(got.Outputs[0].Shape) != 2 {
			t.Errorf("%s: status %d, %+v", model, resp.StatusCode, got)
		}
	}
	for _, tt := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/v2/health/live", "", 200},
		{"GET", "/v2/health/ready", "", 200},
		{"GET", "/v2", "", 200},
		{"GET", "/v2/models/tensor", "", 200},
		{"GET", "/v2/models/tensor/ready", "", 200},
		{"GET", "/v2/models/tensor-rest/versions/1/ready", "", 200},
		{"GET", "/v2/models/nope", "", 404},
		{"POST", "/v2/models/nope/infer", `{"inputs":[]}`, 404},
		{"POST", "/v2/models/tensor/infer", `{"inputs":[{"name":"INPUT0","shape":[1,3],"datatype":"INT32","data":[1,2]}]}`, 400},
		{"POST", "/v2/models/tensor/infer", `{"inputs":[`, 400},
		{"POST", "/v2/models/tensor/infer", `{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"INT8","data":[300]}]}`, 400},
		{"POST", "/v2/models/tensor/versions/7/infer", `{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"INT32","data":[1]},{"name":"INPUT1","shape":[1],"datatype":"INT32","data":[1]}]}`, 404},
	} {
		req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: %d %s, want %d", tt.method, tt.path, resp.StatusCode, b, tt.status)
			continue
		}
		if tt.status >= 400 {
			var e map[string]string
			if json.Unmarshal(b, &e) != nil || e["error"] == "" {
				t.Errorf("%s %s: error body %s", tt.method, tt.path, b)
			}
		}
	}
}

// TestKServePicksByLoad sends concurrent inference to a fast endpoint and one that computes
// one request at a time, twenty times slower: the slow one must get clearly fewer requests.
func TestKServePicksByLoad(t *testing.T) {
	fast, slow := tensorSim(t, 2*time.Millisecond, 4), tensorSim(t, 40*time.Millisecond, 1)
	s, _ := startRouter(t, kserveYAML("    scheduling: {saturation: {max_queue: 2}}\n", fast, slow))
	c := grpcClient(t, s.Addr())
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for range 25 {
				var hdr metadata.MD
				if _, err := c.ModelInfer(context.Background(), addRequest("tensor"), grpc.Header(&hdr)); err != nil {
					t.Errorf("infer: %v", err)
					return
				}
				mu.Lock()
				counts[hdr.Get("x-switchyard-endpoint")[0]]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("fast %d, slow %d", counts[fast.Host], counts[slow.Host])
	if counts[slow.Host]*3 > counts[fast.Host] {
		t.Errorf("slow endpoint got %d of %d requests", counts[slow.Host], counts[fast.Host]+counts[slow.Host])
	}
}

// TestKServeUnavailableAndExhausted: dead endpoints give UNAVAILABLE (REST 503/502), a
// saturated pool past its queue timeout RESOURCE_EXHAUSTED with retry info (REST 429).
func TestKServeUnavailableAndExhausted(t *testing.T) {
	dead := tensorSim(t, time.Millisecond, 1)
	dead.kill()
	s, base := startRouter(t, kserveYAML("", dead))
	c := grpcClient(t, s.Addr())
	if _, err := c.ModelInfer(context.Background(), addRequest("tensor")); status.Code(err) != codes.Unavailable {
		t.Errorf("dead endpoint: %v", err)
	}
	resp, err := http.Post(base+"/v2/models/tensor/infer", "application/json", strings.NewReader(`{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"INT32","data":[1]},{"name":"INPUT1","shape":[1],"datatype":"INT32","data":[1]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("REST with the endpoint cooling off: %d, want 503", resp.StatusCode)
	}

	slow := tensorSim(t, 5*time.Second, 1)
	s2, _ := startRouter(t, kserveYAML("    scheduling: {saturation: {max_queue: 1}, queue: {timeout: 200ms}}\n", slow))
	c2 := grpcClient(t, s2.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	direct := grpcClient(t, slow.Host)
	for range 2 { // one computes, one queues: the endpoint is saturated
		go direct.ModelInfer(ctx, addRequest("sim-tensor"))
	}
	eventually(t, "the endpoint to queue", func() bool { return slow.sim.Stats().TensorWaiting >= 1 })
	time.Sleep(150 * time.Millisecond) // three scrapes
	_, err = c2.ModelInfer(context.Background(), addRequest("tensor"))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("saturated: %v", err)
	}
	hasRetry := false
	for _, d := range st.Details() {
		if _, ok := d.(interface{ GetRetryDelay() *durationpb.Duration }); ok {
			hasRetry = true
		}
	}
	if !hasRetry {
		t.Errorf("RESOURCE_EXHAUSTED without RetryInfo: %v", st.Details())
	}
}
