package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-ai/switchyard/gen/inference"
)

const (
	kserveServerName    = "switchyard-sim"
	kserveServerVersion = "1.0.0"
	tensorVersion       = "1" // the tensor model's only version
	tensorPlatform      = "sim"
)

// kserveExtensions are the Triton protocol extensions the simulator honours:
// request parameters are accepted (and ignored), and ModelStreamInfer with
// sequence_id parameters works, though the model keeps no per-sequence state.
var kserveExtensions = []string{"parameters", "sequence"}

// Failure reasons, the label values of nv_inference_request_failure.
const (
	reasonRejected = "REJECTED" // queue full or server closed
	reasonCanceled = "CANCELED" // the client went away
	reasonBackend  = "BACKEND"  // injected fault
	reasonOther    = "OTHER"    // invalid request
)

var failureReasons = []string{reasonRejected, reasonCanceled, reasonBackend, reasonOther}

// tensor is one named tensor of a supported datatype; data is a []int32,
// []int64, []float32 or []float64 of shape's element count.
type tensor struct {
	name, dtype string
	shape       []int64
	data        any
}

// tensorCall is a decoded inference request for the add/sub model.
type tensorCall struct {
	id      string
	inputs  []tensor
	outputs []string // requested output names; empty means both
}

// dtypeOps are a supported datatype's element size, a new slice of n
// elements, the add/sub kernel and its typed gRPC contents field.
type dtypeOps struct {
	size   int
	make   func(n int) any
	addSub func(a, b any) (sum, diff any)
	typed  func(*contents) any
	wrap   func(data any) *contents
}

type contents = inference.InferTensorContents

var dtypes = map[string]dtypeOps{
	"INT32": {4, newSlice[int32], addSubOf[int32], func(c *contents) any { return c.GetIntContents() },
		func(d any) *contents { return &contents{IntContents: d.([]int32)} }},
	"INT64": {8, newSlice[int64], addSubOf[int64], func(c *contents) any { return c.GetInt64Contents() },
		func(d any) *contents { return &contents{Int64Contents: d.([]int64)} }},
	"FP32": {4, newSlice[float32], addSubOf[float32], func(c *contents) any { return c.GetFp32Contents() },
		func(d any) *contents { return &contents{Fp32Contents: d.([]float32)} }},
	"FP64": {8, newSlice[float64], addSubOf[float64], func(c *contents) any { return c.GetFp64Contents() },
		func(d any) *contents { return &contents{Fp64Contents: d.([]float64)} }},
}

type number interface {
	int32 | int64 | float32 | float64
}

func newSlice[T number](n int) any { return make([]T, n) }

// addSubOf returns a+b and a−b for a and b of type []T and equal length;
// integers wrap.
func addSubOf[T number](a, b any) (any, any) {
	x, y := a.([]T), b.([]T)
	sum, diff := make([]T, len(x)), make([]T, len(x))
	for i := range x {
		sum[i], diff[i] = x[i]+y[i], x[i]-y[i]
	}
	return sum, diff
}

// elements checks dtype and shape and returns the shape's element count.
func elements(name, dtype string, shape []int64) (int, error) {
	if _, ok := dtypes[dtype]; !ok {
		return 0, fmt.Errorf("input %s: datatype %q is not supported; use INT32, INT64, FP32 or FP64", name, dtype)
	}
	n := int64(1)
	for _, d := range shape {
		if d < 0 || d > 1<<28 || n*d > 1<<28 {
			return 0, fmt.Errorf("input %s: invalid shape %v", name, shape)
		}
		n *= d
	}
	return int(n), nil
}

func dataLen(d any) int { return reflect.ValueOf(d).Len() }

// compute validates c's tensors and returns the requested outputs.
func (c *tensorCall) compute() ([]tensor, error) {
	var in [2]*tensor
	for i := range c.inputs {
		t := &c.inputs[i]
		k := slices.Index([]string{"INPUT0", "INPUT1"}, t.name)
		switch {
		case k < 0:
			return nil, fmt.Errorf("unexpected input %q; the model takes INPUT0 and INPUT1", t.name)
		case in[k] != nil:
			return nil, fmt.Errorf("input %s given twice", t.name)
		}
		in[k] = t
	}
	a, b := in[0], in[1]
	switch {
	case a == nil || b == nil:
		return nil, errors.New("inputs INPUT0 and INPUT1 are both required")
	case a.dtype != b.dtype:
		return nil, fmt.Errorf("INPUT0 is %s but INPUT1 is %s; datatypes must match", a.dtype, b.dtype)
	case !slices.Equal(a.shape, b.shape):
		return nil, fmt.Errorf("INPUT0 has shape %v but INPUT1 has %v; shapes must match", a.shape, b.shape)
	}
	want := c.outputs
	if len(want) == 0 {
		want = []string{"OUTPUT0", "OUTPUT1"}
	}
	sum, diff := dtypes[a.dtype].addSub(a.data, b.data)
	out := make([]tensor, 0, len(want))
	for _, name := range want {
		t := tensor{name: name, dtype: a.dtype, shape: a.shape}
		switch name {
		case "OUTPUT0":
			t.data = sum
		case "OUTPUT1":
			t.data = diff
		default:
			return nil, fmt.Errorf("unknown output %q; the model has OUTPUT0 and OUTPUT1", name)
		}
		out = append(out, t)
	}
	return out, nil
}

// tensorStats is a consistent snapshot of the tensor model's state.
type tensorStats struct {
	running, waiting                 int
	requests, success                int64
	failures                         map[string]int64
	requestDur, queueDur, computeDur time.Duration // summed over successful requests
}

// tensorModel runs add/sub requests through a FIFO limit of
// TensorConcurrency computing at once. It has no goroutine: each request's
// caller waits for its own turn. It is safe for concurrent use.
type tensorModel struct {
	cfg    Config
	faults *faults
	stop   <-chan struct{} // closed by Server.Close

	mu      sync.Mutex
	waiting []*turn
	stats   tensorStats
}

// turn is a queued request's place; ready is closed once it holds a slot.
type turn struct {
	ready   chan struct{}
	granted bool // guarded by tensorModel.mu
}

func newTensorModel(cfg Config, f *faults, stop <-chan struct{}) *tensorModel {
	return &tensorModel{cfg: cfg, faults: f, stop: stop, stats: tensorStats{failures: map[string]int64{}}}
}

func (m *tensorModel) snapshot() tensorStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats
	st.waiting = len(m.waiting)
	st.failures = maps.Clone(m.stats.failures)
	return st
}

func (m *tensorModel) closed() bool {
	select {
	case <-m.stop:
		return true
	default:
		return false
	}
}

// lookup answers NOT_FOUND unless name and version name the tensor model.
func (m *tensorModel) lookup(name, version string) error {
	if name != m.cfg.TensorModel {
		return status.Errorf(codes.NotFound, "model %q is not served here; this server serves %q", name, m.cfg.TensorModel)
	}
	if version != "" && version != tensorVersion {
		return status.Errorf(codes.NotFound, "model %q has no version %q; its only version is %q", name, version, tensorVersion)
	}
	return nil
}

// infer runs one request: it checks the model, decodes the request, applies
// the error and spike faults, waits for a slot and computes. Errors are gRPC
// statuses. It blocks until the result or ctx is done.
func (m *tensorModel) infer(ctx context.Context, name, version string, decode func() (*tensorCall, error)) (*tensorCall, []tensor, error) {
	m.mu.Lock()
	m.stats.requests++
	m.mu.Unlock()
	if err := m.lookup(name, version); err != nil {
		return nil, nil, err
	}
	c, err := decode()
	var out []tensor
	if err == nil {
		out, err = c.compute()
	}
	if err != nil {
		m.fail(reasonOther)
		return nil, nil, status.Error(codes.InvalidArgument, err.Error())
	}
	arrived := time.Now()
	if m.faults.hit(m.cfg.ErrorRate) {
		m.fail(reasonBackend)
		return nil, nil, status.Error(codes.Internal, "injected fault")
	}
	if m.faults.hit(m.cfg.SpikeRate) {
		if err := m.sleep(ctx, m.cfg.SpikeLatency); err != nil {
			return nil, nil, err
		}
	}
	queued := time.Now()
	if err := m.acquire(ctx); err != nil {
		return nil, nil, err
	}
	started := time.Now()
	n := 0
	for _, t := range c.inputs {
		n += dataLen(t.data)
	}
	err = m.sleep(ctx, m.cfg.TensorLatency+m.cfg.TensorPerElement*time.Duration(n))
	m.release()
	if err != nil {
		return nil, nil, err
	}
	done := time.Now()
	m.mu.Lock()
	m.stats.success++
	m.stats.requestDur += done.Sub(arrived)
	m.stats.queueDur += started.Sub(queued)
	m.stats.computeDur += done.Sub(started)
	m.mu.Unlock()
	return c, out, nil
}

func (m *tensorModel) fail(reason string) {
	m.mu.Lock()
	m.stats.failures[reason]++
	m.mu.Unlock()
}

// sleep waits d, failing (and counting the failure) if ctx ends or the
// server closes first.
func (m *tensorModel) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		m.fail(reasonCanceled)
		return status.FromContextError(ctx.Err()).Err()
	case <-m.stop:
		m.fail(reasonRejected)
		return status.Error(codes.Unavailable, errClosed.Error())
	}
}

// acquire takes a compute slot, queueing FIFO behind earlier requests. A
// request beyond MaxWaiting queued ones gets RESOURCE_EXHAUSTED; one whose ctx
// ends while queued leaves the queue at once.
func (m *tensorModel) acquire(ctx context.Context) error {
	m.mu.Lock()
	switch {
	case m.closed():
		m.stats.failures[reasonRejected]++
		m.mu.Unlock()
		return status.Error(codes.Unavailable, errClosed.Error())
	case m.stats.running < m.cfg.TensorConcurrency && len(m.waiting) == 0:
		m.stats.running++
		m.mu.Unlock()
		return nil
	case len(m.waiting) >= m.cfg.MaxWaiting:
		m.stats.failures[reasonRejected]++
		m.mu.Unlock()
		return status.Error(codes.ResourceExhausted, "server is at capacity: waiting queue is full")
	}
	t := &turn{ready: make(chan struct{})}
	m.waiting = append(m.waiting, t)
	m.mu.Unlock()
	var err error
	reason := reasonCanceled
	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
		err = status.FromContextError(ctx.Err()).Err()
	case <-m.stop:
		err, reason = status.Error(codes.Unavailable, errClosed.Error()), reasonRejected
	}
	m.mu.Lock()
	granted := t.granted
	m.waiting = slices.DeleteFunc(m.waiting, func(w *turn) bool { return w == t })
	m.stats.failures[reason]++
	m.mu.Unlock()
	if granted { // the slot arrived as we gave up: pass it on
		m.release()
	}
	return err
}

// release frees a slot, handing it straight to the queue's head if any.
func (m *tensorModel) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.waiting) == 0 {
		m.stats.running--
		return
	}
	t := m.waiting[0]
	m.waiting = m.waiting[1:]
	t.granted = true
	close(t.ready)
}

// kserveService serves GRPCInferenceService for a Server.
type kserveService struct {
	inference.UnimplementedGRPCInferenceServiceServer
	s *Server
}

var _ inference.GRPCInferenceServiceServer = kserveService{}

// RegisterKServe registers the KServe v2 GRPCInferenceService (Triton's
// flavour, with ModelStreamInfer) serving the tensor model on g. The caller
// owns g and stops it; Close makes the service unready and fails its
// requests with UNAVAILABLE.
func (s *Server) RegisterKServe(g grpc.ServiceRegistrar) {
	inference.RegisterGRPCInferenceServiceServer(g, kserveService{s: s})
}

func (k kserveService) ServerLive(context.Context, *inference.ServerLiveRequest) (*inference.ServerLiveResponse, error) {
	return &inference.ServerLiveResponse{Live: true}, nil
}

func (k kserveService) ServerReady(context.Context, *inference.ServerReadyRequest) (*inference.ServerReadyResponse, error) {
	return &inference.ServerReadyResponse{Ready: !k.s.tensor.closed()}, nil
}

func (k kserveService) ServerMetadata(context.Context, *inference.ServerMetadataRequest) (*inference.ServerMetadataResponse, error) {
	return &inference.ServerMetadataResponse{Name: kserveServerName, Version: kserveServerVersion, Extensions: kserveExtensions}, nil
}

// ModelReady answers false, not an error, for a model or version not served,
// as the protocol's health RPCs do.
func (k kserveService) ModelReady(_ context.Context, req *inference.ModelReadyRequest) (*inference.ModelReadyResponse, error) {
	m := k.s.tensor
	return &inference.ModelReadyResponse{Ready: m.lookup(req.GetName(), req.GetVersion()) == nil && !m.closed()}, nil
}

func (k kserveService) ModelMetadata(_ context.Context, req *inference.ModelMetadataRequest) (*inference.ModelMetadataResponse, error) {
	if err := k.s.tensor.lookup(req.GetName(), req.GetVersion()); err != nil {
		return nil, err
	}
	meta := func(names ...string) []*inference.ModelMetadataResponse_TensorMetadata {
		var ts []*inference.ModelMetadataResponse_TensorMetadata
		for _, n := range names {
			ts = append(ts, &inference.ModelMetadataResponse_TensorMetadata{Name: n, Datatype: "INT32", Shape: []int64{-1, -1}})
		}
		return ts
	}
	return &inference.ModelMetadataResponse{
		Name: k.s.cfg.TensorModel, Versions: []string{tensorVersion}, Platform: tensorPlatform,
		Inputs: meta("INPUT0", "INPUT1"), Outputs: meta("OUTPUT0", "OUTPUT1"),
	}, nil
}

func (k kserveService) ModelInfer(ctx context.Context, req *inference.ModelInferRequest) (*inference.ModelInferResponse, error) {
	raw := len(req.GetRawInputContents()) > 0
	c, out, err := k.s.tensor.infer(ctx, req.GetModelName(), req.GetModelVersion(), func() (*tensorCall, error) { return decodeProto(req) })
	if err != nil {
		return nil, err
	}
	resp := &inference.ModelInferResponse{ModelName: k.s.cfg.TensorModel, ModelVersion: tensorVersion, Id: c.id}
	for _, t := range out {
		o := &inference.ModelInferResponse_InferOutputTensor{Name: t.name, Datatype: t.dtype, Shape: t.shape}
		if raw {
			b, _ := binary.Append(nil, binary.LittleEndian, t.data) // fixed-size slices always encode
			resp.RawOutputContents = append(resp.RawOutputContents, b)
		} else {
			o.Contents = dtypes[t.dtype].wrap(t.data)
		}
		resp.Outputs = append(resp.Outputs, o)
	}
	return resp, nil
}

// ModelStreamInfer answers each request with one response, in order; a
// failed request's response carries only error_message and the stream goes
// on. Requests on one stream run one after another.
func (k kserveService) ModelStreamInfer(stream grpc.BidiStreamingServer[inference.ModelInferRequest, inference.ModelStreamInferResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := k.ModelInfer(stream.Context(), req)
		if ctxErr := stream.Context().Err(); ctxErr != nil {
			return status.FromContextError(ctxErr).Err()
		}
		msg := &inference.ModelStreamInferResponse{InferResponse: resp}
		if err != nil {
			msg = &inference.ModelStreamInferResponse{ErrorMessage: status.Convert(err).Message()}
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
}

// decodeProto reads a gRPC request's tensors from typed contents or, when
// present, raw_input_contents (one little-endian entry per input).
func decodeProto(req *inference.ModelInferRequest) (*tensorCall, error) {
	c := &tensorCall{id: req.GetId()}
	raw := req.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(req.GetInputs()) {
		return nil, fmt.Errorf("raw_input_contents has %d entries for %d inputs", len(raw), len(req.GetInputs()))
	}
	for i, in := range req.GetInputs() {
		n, err := elements(in.GetName(), in.GetDatatype(), in.GetShape())
		if err != nil {
			return nil, err
		}
		t := tensor{name: in.GetName(), dtype: in.GetDatatype(), shape: in.GetShape()}
		switch {
		case len(raw) > 0 && in.GetContents() != nil:
			return nil, fmt.Errorf("input %s: contents must not be set when raw_input_contents is used", t.name)
		case len(raw) > 0:
			if want := n * dtypes[t.dtype].size; len(raw[i]) != want {
				return nil, fmt.Errorf("input %s: raw contents hold %d bytes, want %d for shape %v", t.name, len(raw[i]), want, t.shape)
			}
			t.data = dtypes[t.dtype].make(n)
			if _, err := binary.Decode(raw[i], binary.LittleEndian, t.data); err != nil {
				return nil, fmt.Errorf("input %s: %v", t.name, err)
			}
		default:
			t.data = dtypes[t.dtype].typed(in.GetContents())
			if got := dataLen(t.data); got != n {
				return nil, fmt.Errorf("input %s: contents hold %d %s elements, want %d for shape %v", t.name, got, t.dtype, n, t.shape)
			}
		}
		c.inputs = append(c.inputs, t)
	}
	for _, o := range req.GetOutputs() {
		c.outputs = append(c.outputs, o.GetName())
	}
	return c, nil
}
