package kserve_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard-ai/switchyard/gen/inference"
	"github.com/switchyard-ai/switchyard/router/kserve"
)

// fuzzMaxElements keeps fuzzed shapes small enough that validation's work stays cheap while
// still crossing the limit often.
const fuzzMaxElements = 1 << 12

// elementBytes is each fixed-size datatype's width in raw_input_contents.
var elementBytes = map[string]int{
	"BOOL": 1, "INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "FP16": 2, "BF16": 2,
	"INT32": 4, "UINT32": 4, "FP32": 4, "INT64": 8, "UINT64": 8, "FP64": 8,
}

// FuzzValidateInferRequest feeds arbitrary protobuf messages, as a gRPC client may send them,
// to ValidateInferRequest. Errors must be *TensorError. A request it accepts must keep its
// element count within the limit, carry raw entries of exactly elements × width bytes, and
// render as REST JSON that decodes back into a request that is valid too.
func FuzzValidateInferRequest(f *testing.F) {
	for _, req := range []*inference.ModelInferRequest{
		{Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "a", Datatype: "INT32", Shape: []int64{1, 2}, Contents: &inference.InferTensorContents{IntContents: []int32{1, 2}}},
			{Name: "b", Datatype: "BYTES", Shape: []int64{1}, Contents: &inference.InferTensorContents{BytesContents: [][]byte{[]byte("x")}}},
		}, Outputs: []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "o"}}},
		{Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "h", Datatype: "FP16", Shape: []int64{2}},
			{Name: "s", Datatype: "BYTES", Shape: []int64{2}},
			{Name: "t", Datatype: "BOOL", Shape: []int64{1}},
		}, RawInputContents: [][]byte{{0, 60, 0, 188}, {1, 0, 0, 0, 'a', 0, 0, 0, 0}, {1}}},
		{Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "big", Datatype: "UINT8", Shape: []int64{1 << 40, 1 << 40}},
		}},
		{Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "neg", Datatype: "FP32", Shape: []int64{-1}},
		}},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		req := &inference.ModelInferRequest{}
		if proto.Unmarshal(msg, req) != nil {
			return
		}
		err := kserve.ValidateInferRequest(req, fuzzMaxElements)
		if err != nil {
			var te *kserve.TensorError
			if !errors.As(err, &te) {
				t.Fatalf("error %v is a %T, not a *TensorError", err, err)
			}
			return
		}
		elements, size := kserve.InputSize(req)
		if elements > fuzzMaxElements {
			t.Fatalf("accepted %d elements over the limit of %d", elements, fuzzMaxElements)
		}
		var rawTotal int64
		for i, raw := range req.GetRawInputContents() {
			in := req.GetInputs()[i]
			n := int64(1)
			for _, d := range in.GetShape() {
				n *= d
			}
			if w, ok := elementBytes[in.GetDatatype()]; ok && int64(len(raw)) != n*int64(w) {
				t.Fatalf("raw_input_contents[%d] has %d bytes for %d %s elements", i, len(raw), n, in.GetDatatype())
			}
			rawTotal += int64(len(raw))
		}
		if len(req.GetRawInputContents()) > 0 && rawTotal != size {
			t.Fatalf("InputSize bytes %d, raw entries hold %d", size, rawTotal)
		}
		body, err := kserve.EncodeInferRequest(req)
		if err != nil {
			var te *kserve.TensorError
			if !errors.As(err, &te) {
				t.Fatalf("encode error %v is a %T, not a *TensorError", err, err)
			}
			return // NaN, infinities and non-UTF-8 BYTES have no JSON form
		}
		again, err := kserve.DecodeInferRequest(req.GetModelName(), req.GetModelVersion(), body, nil)
		if err != nil {
			t.Fatalf("rendered body %s does not decode: %v", body, err)
		}
		if err := kserve.ValidateInferRequest(again, fuzzMaxElements); err != nil {
			t.Fatalf("round trip through %s made the request invalid: %v", body, err)
		}
		if e2, _ := kserve.InputSize(again); e2 != elements {
			t.Fatalf("round trip changed the element count from %d to %d", elements, e2)
		}
	})
}

// FuzzDecodeInferResponse feeds arbitrary bodies, as a KServe v2 REST model server may answer,
// to DecodeInferResponse. Errors must be *TensorError, and whatever decodes without binary data
// must render as JSON that decodes to the same message.
func FuzzDecodeInferResponse(f *testing.F) {
	for _, s := range []string{
		`{"model_name":"m","model_version":"1","id":"x","outputs":[{"name":"o","datatype":"FP32","shape":[2],"data":[1.5,-2]}]}`,
		`{"model_name":"m","outputs":[{"name":"s","datatype":"BYTES","shape":[1],"data":["hi"]}],"parameters":{"k":true}}`,
		`{"outputs":[{"name":"b","datatype":"INT8","shape":[2],"parameters":{"binary_data_size":2}}]}` + "\x01\x02",
		`{"outputs":[{"name":"o","datatype":"UINT64","shape":[1],"data":[18446744073709551615]}]}`,
		`{"outputs":[]}`, `{}`, `[]`, `{"outputs":[{"name":"o","datatype":"BOOL","shape":[1,1],"data":[[true]]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := kserve.DecodeInferResponse(body)
		if err != nil {
			var te *kserve.TensorError
			if !errors.As(err, &te) {
				t.Fatalf("error %v is a %T, not a *TensorError", err, err)
			}
			return
		}
		if len(resp.GetRawOutputContents()) > 0 {
			return // binary outputs render as JSON data, a different message
		}
		out, err := kserve.EncodeInferResponse(resp)
		if err != nil {
			t.Fatalf("decoded response does not render: %v", err)
		}
		again, err := kserve.DecodeInferResponse(out)
		if err != nil || !proto.Equal(again, resp) {
			t.Fatalf("round trip through %s changed the response:\n%v\n%v (%v)", out, resp, again, err)
		}
	})
}
