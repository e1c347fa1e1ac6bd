package kserve

import (
	"net/http"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/gen/inference"
	"github.com/switchyard-ai/switchyard/router"
)

func param(v any) *inference.InferParameter {
	switch x := v.(type) {
	case int64:
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: x}}
	case uint64:
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_Uint64Param{Uint64Param: x}}
	case string:
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_StringParam{StringParam: x}}
	case bool:
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: x}}
	}
	panic(v)
}

func TestClassify(t *testing.T) {
	h := NewHandler(router.New())
	in := &inference.ModelInferRequest_InferInputTensor{Name: "x", Datatype: "FP32", Shape: []int64{2, 3},
		Contents: &inference.InferTensorContents{Fp32Contents: make([]float32, 6)}}
	tests := []struct {
		name     string
		params   map[string]*inference.InferParameter
		header   http.Header
		priority string
		session  string
		timeout  time.Duration
		err      bool
	}{
		// An empty class means the caller's default, settled at admission.
		{name: "defaults", priority: ""},
		{name: "priority 1 is the most urgent class", params: map[string]*inference.InferParameter{"priority": param(uint64(1))}, priority: "critical"},
		{name: "priority as int64", params: map[string]*inference.InferParameter{"priority": param(int64(2))}, priority: "standard"},
		{name: "priority beyond the classes is the last", params: map[string]*inference.InferParameter{"priority": param(uint64(9))}, priority: "sheddable"},
		{name: "priority 0 is the default", params: map[string]*inference.InferParameter{"priority": param(uint64(0))}, priority: ""},
		{name: "header wins", params: map[string]*inference.InferParameter{"priority": param(uint64(3))}, header: http.Header{"X-Priority": {"critical"}}, priority: "critical"},
		{name: "unknown header class", header: http.Header{"X-Priority": {"urgent"}}, err: true},
		{name: "negative priority", params: map[string]*inference.InferParameter{"priority": param(int64(-1))}, err: true},
		{name: "string priority", params: map[string]*inference.InferParameter{"priority": param("high")}, err: true},
		{name: "sequence id int", params: map[string]*inference.InferParameter{"sequence_id": param(int64(42))}, priority: "", session: "seq:42"},
		{name: "sequence id string", params: map[string]*inference.InferParameter{"sequence_id": param("conv-7")}, priority: "", session: "seq:conv-7"},
		{name: "sequence id 0 falls back to the header", params: map[string]*inference.InferParameter{"sequence_id": param(int64(0))}, header: http.Header{"X-Session-Id": {"s1"}}, priority: "", session: "s1"},
		{name: "sequence id bool", params: map[string]*inference.InferParameter{"sequence_id": param(true)}, err: true},
		{name: "timeout in microseconds", params: map[string]*inference.InferParameter{"timeout": param(int64(1500))}, priority: "", timeout: 1500 * time.Microsecond},
		{name: "timeout must be int64", params: map[string]*inference.InferParameter{"timeout": param(uint64(5))}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &inference.ModelInferRequest{ModelName: "m", ModelVersion: "2", Parameters: tt.params,
				Inputs: []*inference.ModelInferRequest_InferInputTensor{in}}
			hdr := tt.header
			if hdr == nil {
				hdr = http.Header{}
			}
			req, timeout, err := h.classify(m, hdr)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				return
			}
			if req.Priority != tt.priority || req.SessionKey != tt.session || timeout != tt.timeout {
				t.Errorf("priority %q session %q timeout %v", req.Priority, req.SessionKey, timeout)
			}
			if req.Model != "m" || req.Version != "2" || req.PromptTokens != 6 || req.InputBytes != 24 || req.Protocol != router.ProtocolKServe {
				t.Errorf("request %+v", req)
			}
		})
	}
}
