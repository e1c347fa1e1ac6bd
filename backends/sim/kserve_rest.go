package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kserveRoutes adds the KServe v2 REST API for the tensor model to mux.
func (s *Server) kserveRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, marshal(map[string]bool{"live": true}))
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		ready := !s.tensor.closed()
		writeJSON(w, readyStatus(ready), marshal(map[string]bool{"ready": ready}))
	})
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, marshal(map[string]any{
			"name": kserveServerName, "version": kserveServerVersion, "extensions": kserveExtensions,
		}))
	})
	for _, p := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		mux.HandleFunc("GET "+p, s.handleV2Metadata)
		mux.HandleFunc("GET "+p+"/ready", s.handleV2Ready)
		mux.HandleFunc("POST "+p+"/infer", s.handleV2Infer)
	}
}

func readyStatus(ready bool) int {
	if ready {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// writeV2Error answers with a KServe REST error body for a gRPC status error.
// Injected faults are 500; RESOURCE_EXHAUSTED is 429, the same refusal the
// OpenAI API gives for a full queue.
func writeV2Error(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	code := http.StatusBadRequest // INVALID_ARGUMENT and CANCELED, as Triton answers
	switch st.Code() {
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.ResourceExhausted:
		code = http.StatusTooManyRequests
		w.Header().Set("Retry-After", "1")
	case codes.Unavailable:
		code = http.StatusServiceUnavailable
	case codes.Internal:
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, marshal(map[string]string{"error": st.Message()}))
}

func (s *Server) handleV2Metadata(w http.ResponseWriter, r *http.Request) {
	if err := s.tensor.lookup(r.PathValue("name"), r.PathValue("version")); err != nil {
		writeV2Error(w, err)
		return
	}
	meta := func(names ...string) []map[string]any {
		var ts []map[string]any
		for _, n := range names {
			ts = append(ts, map[string]any{"name": n, "datatype": "INT32", "shape": []int{-1, -1}})
		}
		return ts
	}
	writeJSON(w, http.StatusOK, marshal(map[string]any{
		"name": s.cfg.TensorModel, "versions": []string{tensorVersion}, "platform": tensorPlatform,
		"inputs": meta("INPUT0", "INPUT1"), "outputs": meta("OUTPUT0", "OUTPUT1"),
	}))
}

func (s *Server) handleV2Ready(w http.ResponseWriter, r *http.Request) {
	if err := s.tensor.lookup(r.PathValue("name"), r.PathValue("version")); err != nil {
		writeV2Error(w, err)
		return
	}
	ready := !s.tensor.closed()
	writeJSON(w, readyStatus(ready), marshal(map[string]any{"name": s.cfg.TensorModel, "ready": ready}))
}

type v2Tensor struct {
	Name       string         `json:"name"`
	Shape      []int64        `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data"` // flat or nested; numbers decode as json.Number
}

type v2InferRequest struct {
	ID         string         `json:"id"`
	Parameters map[string]any `json:"parameters"`
	Inputs     []v2Tensor     `json:"inputs"`
	Outputs    []struct {
		Name       string         `json:"name"`
		Parameters map[string]any `json:"parameters"`
	} `json:"outputs"`
}

type v2InferResponse struct {
	ModelName    string     `json:"model_name"`
	ModelVersion string     `json:"model_version"`
	ID           string     `json:"id"`
	Outputs      []v2Tensor `json:"outputs"`
}

func (s *Server) handleV2Infer(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, 64<<20)
	c, out, err := s.tensor.infer(r.Context(), r.PathValue("name"), r.PathValue("version"), func() (*tensorCall, error) { return decodeV2(body) })
	if err != nil {
		writeV2Error(w, err)
		return
	}
	resp := v2InferResponse{ModelName: s.cfg.TensorModel, ModelVersion: tensorVersion, ID: c.id}
	for _, t := range out {
		resp.Outputs = append(resp.Outputs, v2Tensor{Name: t.name, Datatype: t.dtype, Shape: t.shape, Data: t.data})
	}
	b, err := json.Marshal(resp)
	if err != nil { // an FP result overflowed to ±Inf, which JSON cannot carry
		writeV2Error(w, status.Error(codes.Internal, "result cannot be written as JSON: "+err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// decodeV2 reads a KServe v2 JSON inference request.
func decodeV2(body io.Reader) (*tensorCall, error) {
	var req v2InferRequest
	dec := json.NewDecoder(body)
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	c := &tensorCall{id: req.ID}
	for _, in := range req.Inputs {
		n, err := elements(in.Name, in.Datatype, in.Shape)
		if err != nil {
			return nil, err
		}
		var nums []json.Number
		if !flatten(in.Data, &nums) {
			return nil, fmt.Errorf("input %s: data must be an array, possibly nested, of numbers", in.Name)
		}
		if len(nums) != n {
			return nil, fmt.Errorf("input %s: data holds %d elements, want %d for shape %v", in.Name, len(nums), n, in.Shape)
		}
		t := tensor{name: in.Name, dtype: in.Datatype, shape: in.Shape, data: dtypes[in.Datatype].make(n)}
		if err := parseNumbers(t.data, nums); err != nil {
			return nil, fmt.Errorf("input %s: %v", in.Name, err)
		}
		c.inputs = append(c.inputs, t)
	}
	for _, o := range req.Outputs {
		c.outputs = append(c.outputs, o.Name)
	}
	return c, nil
}

// flatten appends the numbers of a JSON array, nested in row-major order,
// to out; it reports false for anything else.
func flatten(v any, out *[]json.Number) bool {
	switch v := v.(type) {
	case json.Number:
		*out = append(*out, v)
		return true
	case []any:
		for _, e := range v {
			if !flatten(e, out) {
				return false
			}
		}
		return true
	}
	return false
}

// parseNumbers fills data, a new slice of a supported datatype, from nums.
func parseNumbers(data any, nums []json.Number) error {
	for i, n := range nums {
		var err error
		switch d := data.(type) {
		case []int32:
			var v int64
			v, err = strconv.ParseInt(n.String(), 10, 32)
			d[i] = int32(v)
		case []int64:
			d[i], err = strconv.ParseInt(n.String(), 10, 64)
		case []float32:
			var v float64
			v, err = strconv.ParseFloat(n.String(), 32)
			d[i] = float32(v)
		case []float64:
			d[i], err = strconv.ParseFloat(n.String(), 64)
		}
		if err != nil {
			return fmt.Errorf("element %d (%s) does not fit the datatype", i, n)
		}
	}
	return nil
}
