package kserve_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-ai/switchyard/gen/inference"
	"github.com/switchyard-ai/switchyard/router/kserve"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// oneInput is a request body with a single input "x".
func oneInput(datatype, shape, data string) []byte {
	return fmt.Appendf(nil, `{"inputs":[{"name":"x","datatype":%q,"shape":%s,"data":%s}]}`, datatype, shape, data)
}

func le16(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return b
}

func le32(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

func le64(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// bytesRaw serializes BYTES elements: a 4-byte little-endian length before each.
func bytesRaw(es ...string) []byte {
	var b []byte
	for _, e := range es {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

func mustDecode(t *testing.T, body []byte, h http.Header) *inference.ModelInferRequest {
	t.Helper()
	req, err := kserve.DecodeInferRequest("m", "1", body, h)
	if err != nil {
		t.Fatalf("DecodeInferRequest(%s): %v", body, err)
	}
	return req
}

// wantTensorError checks that err is a *TensorError whose message contains each of parts.
func wantTensorError(t *testing.T, err error, parts ...string) {
	t.Helper()
	var te *kserve.TensorError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *TensorError", err, err)
	}
	for _, p := range parts {
		if !strings.Contains(te.Error(), p) {
			t.Errorf("error %q does not contain %q", te.Error(), p)
		}
	}
}

// TestDatatypeRoundTrip decodes one input of each datatype from REST JSON, checks where the
// elements land, renders the request back as JSON, and decodes that again.
func TestDatatypeRoundTrip(t *testing.T) {
	tests := []struct {
		datatype, shape, data string
		contents              *inference.InferTensorContents // typed result, or nil
		raw                   []byte                         // raw result when contents is nil
		want                  string                         // re-encoded data
	}{
		{"BOOL", "[3]", "[true,false,true]", &inference.InferTensorContents{BoolContents: []bool{true, false, true}}, nil, "[true,false,true]"},
		{"UINT8", "[2,2]", "[[0,1],[254,255]]", &inference.InferTensorContents{UintContents: []uint32{0, 1, 254, 255}}, nil, "[0,1,254,255]"},
		{"UINT16", "[2]", "[0,65535]", &inference.InferTensorContents{UintContents: []uint32{0, 65535}}, nil, "[0,65535]"},
		{"UINT32", "[2]", "[-0,4294967295]", &inference.InferTensorContents{UintContents: []uint32{0, 4294967295}}, nil, "[0,4294967295]"},
		{"UINT64", "[2]", "[0,18446744073709551615]", &inference.InferTensorContents{Uint64Contents: []uint64{0, math.MaxUint64}}, nil, "[0,18446744073709551615]"},
		{"INT8", "[2]", "[-128,127]", &inference.InferTensorContents{IntContents: []int32{-128, 127}}, nil, "[-128,127]"},
		{"INT16", "[2]", "[-32768,32767]", &inference.InferTensorContents{IntContents: []int32{-32768, 32767}}, nil, "[-32768,32767]"},
		{"INT32", "[2]", "[-2147483648,2147483647]", &inference.InferTensorContents{IntContents: []int32{math.MinInt32, math.MaxInt32}}, nil, "[-2147483648,2147483647]"},
		{"INT64", "[3]", "[-9223372036854775808,9007199254740993,9223372036854775807]",
			&inference.InferTensorContents{Int64Contents: []int64{math.MinInt64, 1<<53 + 1, math.MaxInt64}}, nil,
			"[-9223372036854775808,9007199254740993,9223372036854775807]"},
		{"FP32", "[5]", "[1.5,-0.1,1e-7,3.4028235e38,16777217]",
			&inference.InferTensorContents{Fp32Contents: []float32{1.5, -0.1, 1e-7, math.MaxFloat32, 16777216}}, nil,
			"[1.5,-0.1,1e-7,3.4028235e+38,16777216]"},
		{"FP64", "[4]", "[0.1,-2,1e300,5e-324]", &inference.InferTensorContents{Fp64Contents: []float64{0.1, -2, 1e300, 5e-324}}, nil,
			"[0.1,-2,1e+300,5e-324]"},
		{"BYTES", "[3]", `["hello","","h\u00e9\n\"x\""]`,
			&inference.InferTensorContents{BytesContents: [][]byte{[]byte("hello"), {}, []byte("hé\n\"x\"")}}, nil,
			`["hello","","hé\n\"x\""]`},
		{"FP16", "[2]", "[1,-2.5]", nil, le16(0x3C00, 0xC100), "[1,-2.5]"},
		{"BF16", "[2]", "[1,-2.5]", nil, le16(0x3F80, 0xC020), "[1,-2.5]"},
		{"FP32", "[0]", "[]", &inference.InferTensorContents{}, nil, "[]"},
		{"INT32", "[]", "[7]", &inference.InferTensorContents{IntContents: []int32{7}}, nil, "[7]"},
	}
	for _, tt := range tests {
		t.Run(tt.datatype+tt.shape, func(t *testing.T) {
			req := mustDecode(t, oneInput(tt.datatype, tt.shape, tt.data), nil)
			if req.GetModelName() != "m" || req.GetModelVersion() != "1" {
				t.Errorf("model %q version %q", req.GetModelName(), req.GetModelVersion())
			}
			in := req.GetInputs()[0]
			if tt.contents != nil {
				if len(req.GetRawInputContents()) != 0 {
					t.Fatalf("raw_input_contents used for %s", tt.datatype)
				}
				if !proto.Equal(in.GetContents(), tt.contents) {
					t.Errorf("contents = %v, want %v", in.GetContents(), tt.contents)
				}
			} else if raw := req.GetRawInputContents(); len(raw) != 1 || !bytes.Equal(raw[0], tt.raw) || in.GetContents() != nil {
				t.Errorf("raw = %x (contents %v), want %x", raw, in.GetContents(), tt.raw)
			}
			out, err := kserve.EncodeInferRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			want := string(oneInput(tt.datatype, tt.shape, tt.want))
			if string(out) != want {
				t.Errorf("encoded\n got %s\nwant %s", out, want)
			}
			again := mustDecode(t, out, nil)
			if !proto.Equal(again, req) {
				t.Errorf("decoded again: %v, want %v", again, req)
			}
		})
	}
}

// TestRawWhenAnyInputIsRaw checks that one FP16 input sends every input raw, as the protocol
// forbids mixing, and that each datatype's raw layout is little-endian row-major.
func TestRawWhenAnyInputIsRaw(t *testing.T) {
	body := []byte(`{"inputs":[
		{"name":"h","datatype":"FP16","shape":[1],"data":[0.5]},
		{"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]},
		{"name":"u8","datatype":"UINT8","shape":[2],"data":[1,255]},
		{"name":"u16","datatype":"UINT16","shape":[1],"data":[258]},
		{"name":"u32","datatype":"UINT32","shape":[1],"data":[16909060]},
		{"name":"u64","datatype":"UINT64","shape":[1],"data":[18446744073709551615]},
		{"name":"i8","datatype":"INT8","shape":[2],"data":[-1,2]},
		{"name":"i16","datatype":"INT16","shape":[1],"data":[-2]},
		{"name":"i32","datatype":"INT32","shape":[1],"data":[-3]},
		{"name":"i64","datatype":"INT64","shape":[1],"data":[-4]},
		{"name":"f32","datatype":"FP32","shape":[1],"data":[1.5]},
		{"name":"f64","datatype":"FP64","shape":[1],"data":[-0.25]},
		{"name":"s","datatype":"BYTES","shape":[2],"data":["ab",""]}]}`)
	req := mustDecode(t, body, nil)
	want := [][]byte{
		le16(0x3800),
		{1, 0},
		{1, 255},
		le16(258),
		le32(16909060),
		le64(math.MaxUint64),
		{0xFF, 2},
		le16(0xFFFE),
		le32(0xFFFFFFFD),
		le64(0xFFFFFFFFFFFFFFFC),
		le32(math.Float32bits(1.5)),
		le64(math.Float64bits(-0.25)),
		bytesRaw("ab", ""),
	}
	raw := req.GetRawInputContents()
	if len(raw) != len(want) {
		t.Fatalf("%d raw entries, want %d", len(raw), len(want))
	}
	for i := range want {
		if !bytes.Equal(raw[i], want[i]) {
			t.Errorf("raw[%d] (%s) = %x, want %x", i, req.GetInputs()[i].GetName(), raw[i], want[i])
		}
		if req.GetInputs()[i].GetContents() != nil {
			t.Errorf("inputs[%d] has typed contents besides raw", i)
		}
	}
	out, err := kserve.EncodeInferRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(mustDecode(t, out, nil), req) {
		t.Errorf("re-encoded request decodes differently: %s", out)
	}
}

// TestHalfConversions checks FP16 and BF16 rounding against known bit patterns.
func TestHalfConversions(t *testing.T) {
	tests := []struct {
		in         string
		fp16, bf16 uint16
	}{
		{"1", 0x3C00, 0x3F80},
		{"-2.5", 0xC100, 0xC020},
		{"0", 0x0000, 0x0000},
		{"-0", 0x8000, 0x8000},
		{"0.1", 0x2E66, 0x3DCD},
		{"65504", 0x7BFF, 0x4780},                  // FP16 max; BF16 rounds up to 65536
		{"65519.99", 0x7BFF, 0x4780},               // just under FP16's overflow threshold
		{"6.103515625e-05", 0x0400, 0x3880},        // 2^-14: smallest FP16 normal
		{"6.097555160522461e-05", 0x03FF, 0x3880},  // largest FP16 subnormal; BF16 rounds up to 2^-14
		{"5.960464477539063e-08", 0x0001, 0x3380},  // 2^-24: smallest FP16 subnormal
		{"2.9802322387695312e-08", 0x0000, 0x3300}, // 2^-25: FP16 tie between 0 and 2^-24, to even
		{"4.470348358154297e-08", 0x0001, 0x3340},  // 1.5 × 2^-25 rounds up
		{"1.00048828125", 0x3C00, 0x3F80},          // 1 + 2^-11: FP16 tie, to even (down)
		{"1.00146484375", 0x3C02, 0x3F80},          // 1 + 3×2^-11: FP16 tie, to even (up)
		{"1.00390625", 0x3C04, 0x3F80},             // 1 + 2^-8: BF16 tie, to even (down)
		{"1.01171875", 0x3C0C, 0x3F82},             // 1 + 3×2^-8: BF16 tie, to even (up)
		{"1e-30", 0x0000, 0x0DA2},
		{"9.183549615799121e-41", 0x0000, 0x0001}, // 2^-133: smallest BF16 subnormal
		{"1e-400", 0x0000, 0x0000},                // below float64 itself
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			for _, c := range []struct {
				datatype string
				want     uint16
			}{{"FP16", tt.fp16}, {"BF16", tt.bf16}} {
				req, err := kserve.DecodeInferRequest("m", "", oneInput(c.datatype, "[1]", "["+tt.in+"]"), nil)
				if err != nil {
					t.Errorf("%s: %v", c.datatype, err)
					continue
				}
				if got := req.GetRawInputContents()[0]; !bytes.Equal(got, le16(c.want)) {
					t.Errorf("%s(%s) = %x, want %x", c.datatype, tt.in, got, le16(c.want))
				}
			}
		})
	}
	for _, tt := range []struct{ datatype, in string }{
		{"FP16", "65520"}, {"FP16", "-1e6"}, {"BF16", "3.4e38"}, {"BF16", "1e39"},
	} {
		_, err := kserve.DecodeInferRequest("m", "", oneInput(tt.datatype, "[1]", "["+tt.in+"]"), nil)
		wantTensorError(t, err, "inputs[0].data", "out of range for "+tt.datatype)
	}
}

// TestHalfExhaustive renders every finite FP16 and BF16 bit pattern as a JSON number and
// parses it back to the same bits.
func TestHalfExhaustive(t *testing.T) {
	for _, c := range []struct {
		datatype string
		inf      uint16
	}{{"FP16", 0x7C00}, {"BF16", 0x7F80}} {
		var raw []byte
		var n int64
		for v := range 1 << 16 {
			if uint16(v)&0x7FFF >= c.inf {
				continue // Inf and NaN: JSON has no numbers for them
			}
			raw = binary.LittleEndian.AppendUint16(raw, uint16(v))
			n++
		}
		resp := &inference.ModelInferResponse{
			ModelName:         "m",
			Outputs:           []*inference.ModelInferResponse_InferOutputTensor{{Name: "y", Datatype: c.datatype, Shape: []int64{n}}},
			RawOutputContents: [][]byte{raw},
		}
		body, err := kserve.EncodeInferResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		back, err := kserve.DecodeInferResponse(body)
		if err != nil {
			t.Fatal(err)
		}
		if got := back.GetRawOutputContents()[0]; !bytes.Equal(got, raw) {
			for i := 0; i < len(raw); i += 2 {
				if got[i] != raw[i] || got[i+1] != raw[i+1] {
					t.Fatalf("%s %#04x came back as %#04x", c.datatype,
						binary.LittleEndian.Uint16(raw[i:]), binary.LittleEndian.Uint16(got[i:]))
				}
			}
		}
	}
}

// TestBF16MatchesFloat32Rounding compares BF16 rounding of random values with the known
// shortcut for float32 inputs: round the top 16 bits to nearest even.
func TestBF16MatchesFloat32Rounding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	var data []byte
	var want []byte
	data = append(data, '[')
	for i := range n {
		bits := r.Uint32()
		if i%4 == 0 {
			bits = bits&^0xFFFF | 0x8000 // an exact tie
		}
		f := math.Float32frombits(bits)
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) || math.Abs(float64(f)) > 3.38e38 {
			f = 1
			bits = math.Float32bits(f)
		}
		if i > 0 {
			data = append(data, ',')
		}
		data = strconv.AppendFloat(data, float64(f), 'g', -1, 64) // exact: no second rounding
		rounded := (bits + 0x7FFF + (bits>>16)&1) >> 16
		want = binary.LittleEndian.AppendUint16(want, uint16(rounded))
	}
	data = append(data, ']')
	req := mustDecode(t, oneInput("BF16", fmt.Sprintf("[%d]", n), string(data)), nil)
	got := req.GetRawInputContents()[0]
	for i := 0; i < len(want); i += 2 {
		if got[i] != want[i] || got[i+1] != want[i+1] {
			t.Fatalf("element %d: got %#04x, want %#04x", i/2, binary.LittleEndian.Uint16(got[i:]), binary.LittleEndian.Uint16(want[i:]))
		}
	}
}

// TestElementErrors checks range, type and shape errors and that each names its field.
func TestElementErrors(t *testing.T) {
	tests := []struct {
		datatype, shape, data string
		want                  []string
	}{
		{"INT8", "[1]", "[128]", []string{"inputs[0].data", "element 0", "128 is out of range for INT8 [-128, 127]"}},
		{"INT8", "[2]", "[0,-129]", []string{"element 1", "-129 is out of range for INT8"}},
		{"INT16", "[1]", "[32768]", []string{"out of range for INT16"}},
		{"INT32", "[1]", "[2147483648]", []string{"out of range for INT32"}},
		{"INT64", "[1]", "[9223372036854775808]", []string{"out of range for INT64"}},
		{"UINT8", "[1]", "[256]", []string{"256 is out of range for UINT8 [0, 255]"}},
		{"UINT8", "[1]", "[-1]", []string{"-1 is out of range for UINT8"}},
		{"UINT16", "[1]", "[65536]", []string{"out of range for UINT16"}},
		{"UINT32", "[1]", "[4294967296]", []string{"out of range for UINT32"}},
		{"UINT64", "[1]", "[18446744073709551616]", []string{"out of range for UINT64"}},
		{"INT32", "[1]", "[1.5]", []string{"expected an integer, got 1.5"}},
		{"INT64", "[1]", "[1e3]", []string{"expected an integer, got 1e3"}},
		{"UINT64", "[1]", "[1.0]", []string{"expected an integer, got 1.0"}},
		{"INT32", "[1]", `["1"]`, []string{"expected an integer, got a string"}},
		{"BOOL", "[1]", "[1]", []string{"expected a boolean, got a number"}},
		{"BYTES", "[1]", "[5]", []string{"expected a string, got a number"}},
		{"FP32", "[2]", `[1,"a"]`, []string{"element 1", "expected a number, got a string"}},
		{"FP32", "[1]", "[true]", []string{"expected a number, got a boolean"}},
		{"FP32", "[1]", "[null]", []string{"expected a number, got null"}},
		{"FP32", "[1]", "[1e39]", []string{"1e39 is out of range for FP32"}},
		{"FP64", "[1]", "[1e309]", []string{"out of range for FP64"}},
		{"FP32", "[1]", `[{"a":1}]`, []string{"objects are not allowed"}},
		{"FP32", "[1]", `{"a":1}`, []string{"expected an array"}},
		{"FP32", "[1]", "1", []string{"expected an array"}},
		{"FP16", "[1]", `["x"]`, []string{"expected a number"}},
		{"FP8", "[1]", "[1]", []string{"inputs[0].datatype", `unknown datatype "FP8"`}},
		{"fp32", "[1]", "[1]", []string{`unknown datatype "fp32"`}},
		{"", "[1]", "[1]", []string{"inputs[0].datatype: missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.datatype+tt.data, func(t *testing.T) {
			_, err := kserve.DecodeInferRequest("m", "", oneInput(tt.datatype, tt.shape, tt.data), nil)
			wantTensorError(t, err, tt.want...)
		})
	}
}

func TestShapeErrors(t *testing.T) {
	twoInputs := func(shape, data string) []byte {
		return fmt.Appendf(nil, `{"inputs":[{"name":"a","datatype":"INT32","shape":[1],"data":[1]},
			{"name":"b","datatype":"INT32","shape":%s,"data":%s}]}`, shape, data)
	}
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"too few", twoInputs("[2,3]", "[[1,2,3],[4,5]]"), "inputs[1].data: expected 6 elements for shape [2,3], got 5"},
		{"too many", twoInputs("[2,3]", "[1,2,3,4,5,6,7]"), "inputs[1].data: expected 6 elements for shape [2,3], got 7"},
		{"empty data", twoInputs("[1]", "[]"), "expected 1 elements for shape [1], got 0"},
		{"zero dim", twoInputs("[0,5]", "[1]"), "expected 0 elements for shape [0,5], got 1"},
		{"variable dim", twoInputs("[-1]", "[1]"), "inputs[1].shape: dimension 0: -1 is not a size >= 0"},
		{"fraction", twoInputs("[1.5]", "[1]"), "inputs[1].shape: dimension 0: expected an integer, got 1.5"},
		{"nested shape", twoInputs("[[1]]", "[1]"), "inputs[1].shape: expected a flat array"},
		{"string dim", twoInputs(`["1"]`, "[1]"), "inputs[1].shape: dimension 0: expected an integer"},
		{"no shape", []byte(`{"inputs":[{"name":"a","datatype":"INT32","data":[1]}]}`), "inputs[0].shape: missing"},
		{"no data", []byte(`{"inputs":[{"name":"a","datatype":"INT32","shape":[1]}]}`), "inputs[0].data: missing"},
		{"null data", []byte(`{"inputs":[{"name":"a","datatype":"INT32","shape":[1],"data":null}]}`), "inputs[0].data: missing"},
		{"too large", twoInputs("[67108865]", "[1]"), "inputs[1].shape: shape [67108865] has more than 67108864 elements"},
		{"overflow", twoInputs("[4294967296,4294967296,4294967296]", "[1]"), "has more than 67108864 elements"},
		{"too large in all", []byte(`{"inputs":[{"name":"a","datatype":"INT8","shape":[67108864],"data":[]},
			{"name":"b","datatype":"INT8","shape":[1],"data":[1]}]}`), "inputs[1].shape: inputs have more than 67108864 elements in all"},
		{"duplicate", []byte(`{"inputs":[{"name":"a","datatype":"INT32","shape":[1],"data":[1]},
			{"name":"a","datatype":"INT32","shape":[1],"data":[2]}]}`), `inputs[1].name: duplicate input name "a"`},
		{"unnamed", []byte(`{"inputs":[{"datatype":"INT32","shape":[1],"data":[1]}]}`), "inputs[0].name: missing input name"},
		{"no inputs", []byte(`{"id":"1"}`), "inputs: missing"},
		{"inputs not array", []byte(`{"inputs":{}}`), "inputs: expected an array"},
		{"id not string", []byte(`{"id":5,"inputs":[]}`), "id: expected a string"},
		{"bad json", []byte(`{"inputs":[`), "body: invalid JSON"},
		{"output unnamed", []byte(`{"inputs":[],"outputs":[{}]}`), "outputs[0].name: missing output name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kserve.DecodeInferRequest("m", "", tt.body, nil)
			wantTensorError(t, err, tt.want)
		})
	}
}

func TestNesting(t *testing.T) {
	nested := func(depth int) string {
		return strings.Repeat("[", depth) + "7" + strings.Repeat("]", depth)
	}
	req := mustDecode(t, oneInput("INT32", "[2,2,2]", "[[[1,2],[3,4]],[[5,6],[7,8]]]"), nil)
	if got := req.GetInputs()[0].GetContents().GetIntContents(); fmt.Sprint(got) != "[1 2 3 4 5 6 7 8]" {
		t.Errorf("flattened = %v", got)
	}
	mustDecode(t, oneInput("INT32", "[1]", nested(32)), nil)
	_, err := kserve.DecodeInferRequest("m", "", oneInput("INT32", "[1]", nested(33)), nil)
	wantTensorError(t, err, "inputs[0].data", "nest deeper than 32")
	_, err = kserve.DecodeInferRequest("m", "", oneInput("INT32", "[1]", nested(5000)), nil)
	wantTensorError(t, err, "nest deeper than 32")
	_, err = kserve.DecodeInferRequest("m", "", oneInput("INT32", "[1]", nested(100000)), nil)
	wantTensorError(t, err, "body: invalid JSON") // encoding/json's own depth limit
}

// binaryBody is a request body with binary tensor data appended after the JSON.
func binaryBody(jsonPart string, bin ...[]byte) ([]byte, http.Header) {
	body := []byte(jsonPart)
	for _, b := range bin {
		body = append(body, b...)
	}
	h := http.Header{}
	h.Set("Inference-Header-Content-Length", strconv.Itoa(len(jsonPart)))
	return body, h
}

func TestBinaryExtension(t *testing.T) {
	body, h := binaryBody(`{"id":"b1","inputs":[
		{"name":"ids","datatype":"INT32","shape":[2,2],"parameters":{"binary_data_size":16,"note":"kept"}},
		{"name":"scale","datatype":"FP32","shape":[1],"data":[0.5]},
		{"name":"text","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":13}}],
		"outputs":[{"name":"y","parameters":{"binary_data":true}}]}`,
		le32(1, 2, 3, 0xFFFFFFFF), bytesRaw("hello", ""))
	req := mustDecode(t, body, h)
	want := &inference.ModelInferRequest{
		ModelName: "m", ModelVersion: "1", Id: "b1",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "ids", Datatype: "INT32", Shape: []int64{2, 2}, Parameters: map[string]*inference.InferParameter{
				"note": {ParameterChoice: &inference.InferParameter_StringParam{StringParam: "kept"}}}},
			{Name: "scale", Datatype: "FP32", Shape: []int64{1}},
			{Name: "text", Datatype: "BYTES", Shape: []int64{2}},
		},
		Outputs: []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "y", Parameters: map[string]*inference.InferParameter{
			"binary_data": {ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: true}}}}},
		RawInputContents: [][]byte{le32(1, 2, 3, 0xFFFFFFFF), le32(math.Float32bits(0.5)), bytesRaw("hello", "")},
	}
	if !proto.Equal(req, want) {
		t.Fatalf("decoded %v\nwant %v", req, want)
	}
	out, err := kserve.EncodeInferRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"id":"b1","inputs":[{"name":"ids","datatype":"INT32","shape":[2,2],"parameters":{"note":"kept"},"data":[1,2,3,-1]},` +
		`{"name":"scale","datatype":"FP32","shape":[1],"data":[0.5]},{"name":"text","datatype":"BYTES","shape":[2],"data":["hello",""]}],` +
		`"outputs":[{"name":"y","parameters":{"binary_data":true}}]}`
	if string(out) != wantJSON {
		t.Errorf("encoded\n got %s\nwant %s", out, wantJSON)
	}

	// A header that covers the whole body leaves an empty binary part: all typed.
	plain := []byte(`{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"data":[1]}]}`)
	h2 := http.Header{}
	h2.Set("Inference-Header-Content-Length", strconv.Itoa(len(plain)))
	if req := mustDecode(t, plain, h2); len(req.GetRawInputContents()) != 0 {
		t.Errorf("no binary input, yet raw contents: %v", req)
	}

	errs := []struct {
		name string
		json string
		bin  []byte
		hdr  string // overrides the header when set
		want []string
	}{
		{"short", `{"inputs":[{"name":"a","datatype":"INT32","shape":[2],"parameters":{"binary_data_size":8}}]}`, le32(1),
			"", []string{"inputs[0].parameters.binary_data_size", "is 8 but only 4 bytes of binary data remain"}},
		{"left over", `{"inputs":[{"name":"a","datatype":"INT32","shape":[1],"parameters":{"binary_data_size":4}}]}`, le32(1, 2),
			"", []string{"body: 4 bytes of binary data are not claimed"}},
		{"size vs shape", `{"inputs":[{"name":"a","datatype":"INT32","shape":[3],"parameters":{"binary_data_size":8}}]}`, le32(1, 2),
			"", []string{"inputs[0] binary data", "expected 12 bytes (3 elements of INT32) for shape [3], got 8"}},
		{"bytes count", `{"inputs":[{"name":"a","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":6}}]}`, bytesRaw("ab"),
			"", []string{"inputs[0] binary data", "expected 2 BYTES elements for shape [2], got 1"}},
		{"bytes truncated", `{"inputs":[{"name":"a","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":6}}]}`, []byte{9, 0, 0, 0, 'a', 'b'},
			"", []string{"BYTES element 0: length 9 runs past the end"}},
		{"size is string", `{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"parameters":{"binary_data_size":"1"}}]}`, []byte{1},
			"", []string{"inputs[0].parameters.binary_data_size: must be an integer >= 0"}},
		{"negative size", `{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"parameters":{"binary_data_size":-1}}]}`, []byte{1},
			"", []string{"must be an integer >= 0"}},
		{"data too", `{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"data":[1],"parameters":{"binary_data_size":1}}]}`, []byte{1},
			"", []string{"inputs[0].data: must be absent when binary_data_size is set"}},
		{"bool byte", `{"inputs":[{"name":"a","datatype":"BOOL","shape":[1],"parameters":{"binary_data_size":1}}]}`, []byte{2},
			"", []string{"BOOL element 0 is byte 2, not 0 or 1"}},
		{"header too long", `{"inputs":[]}`, nil, "100", []string{"Inference-Header-Content-Length: 100 exceeds the body's 13 bytes"}},
		{"header not a number", `{"inputs":[]}`, nil, "abc", []string{`Inference-Header-Content-Length: "abc" is not a length`}},
		{"header cuts json", `{"inputs":[]}`, nil, "5", []string{"body: invalid JSON"}},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			body, h := binaryBody(tt.json, tt.bin)
			if tt.hdr != "" {
				h.Set("Inference-Header-Content-Length", tt.hdr)
			}
			_, err := kserve.DecodeInferRequest("m", "", body, h)
			wantTensorError(t, err, tt.want...)
		})
	}

	// binary_data_size without the header: the body has no binary part.
	_, err = kserve.DecodeInferRequest("m", "", []byte(`{"inputs":[{"name":"a","datatype":"INT8","shape":[0],"parameters":{"binary_data_size":0}}]}`), nil)
	wantTensorError(t, err, "inputs[0].parameters.binary_data_size", "no Inference-Header-Content-Length header")
}

func TestParameters(t *testing.T) {
	body := []byte(`{"id":"p","parameters":{"s":"v","t":true,"f":false,"i":-42,"big":9223372036854775808,
		"max":18446744073709551615,"d":0.25,"e":1e3,"two":2.0,"huge":1e400000000000000000000000000000000000000000000000000000000},
		"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[1],"parameters":{"priority":1,"tag":"α"}}],
		"outputs":[{"name":"y","parameters":{"classification":3,"binary_data":false}}]}`)
	_, err := kserve.DecodeInferRequest("m", "", body, nil)
	wantTensorError(t, err, "parameters.huge", "out of range for a double")

	body = bytes.Replace(body, []byte(`1e400000000000000000000000000000000000000000000000000000000`), []byte(`184467440737095516160`), 1)
	req := mustDecode(t, body, nil)
	b := func(v bool) *inference.InferParameter {
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: v}}
	}
	i := func(v int64) *inference.InferParameter {
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: v}}
	}
	u := func(v uint64) *inference.InferParameter {
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_Uint64Param{Uint64Param: v}}
	}
	d := func(v float64) *inference.InferParameter {
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_DoubleParam{DoubleParam: v}}
	}
	s := func(v string) *inference.InferParameter {
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_StringParam{StringParam: v}}
	}
	wantReq := map[string]*inference.InferParameter{
		"s": s("v"), "t": b(true), "f": b(false), "i": i(-42), "big": u(1 << 63), "max": u(math.MaxUint64),
		"d": d(0.25), "e": d(1000), "two": d(2), "huge": d(184467440737095516160),
	}
	for k, want := range wantReq {
		if got := req.GetParameters()[k]; !proto.Equal(got, want) {
			t.Errorf("parameters[%s] = %v, want %v", k, got, want)
		}
	}
	if len(req.GetParameters()) != len(wantReq) {
		t.Errorf("%d parameters, want %d", len(req.GetParameters()), len(wantReq))
	}
	if got := req.GetInputs()[0].GetParameters(); !proto.Equal(got["priority"], i(1)) || !proto.Equal(got["tag"], s("α")) {
		t.Errorf("input parameters = %v", got)
	}
	if got := req.GetOutputs()[0].GetParameters(); !proto.Equal(got["classification"], i(3)) || !proto.Equal(got["binary_data"], b(false)) {
		t.Errorf("output parameters = %v", got)
	}
	out, err := kserve.EncodeInferRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	const wantParams = `"parameters":{"big":9223372036854775808,"d":0.25,"e":1000.0,"f":false,"huge":184467440737095500000.0,` +
		`"i":-42,"max":18446744073709551615,"s":"v","t":true,"two":2.0}`
	if !bytes.Contains(out, []byte(wantParams)) {
		t.Errorf("encoded %s\nwant it to contain %s", out, wantParams)
	}
	if again := mustDecode(t, out, nil); !proto.Equal(again, req) {
		t.Errorf("decoded again: %v\nwant %v", again, req)
	}

	for _, bad := range []struct{ value, want string }{
		{"null", "null is not a parameter value"},
		{"[1]", "must be a string, number or boolean"},
		{`{"a":1}`, "must be a string, number or boolean"},
	} {
		_, err := kserve.DecodeInferRequest("m", "", fmt.Appendf(nil, `{"parameters":{"k":%s},"inputs":[]}`, bad.value), nil)
		wantTensorError(t, err, "parameters.k", bad.want)
		_, err = kserve.DecodeInferRequest("m", "", fmt.Appendf(nil,
			`{"inputs":[{"name":"x","datatype":"INT8","shape":[0],"data":[],"parameters":{"k":%s}}]}`, bad.value), nil)
		wantTensorError(t, err, "inputs[0].parameters.k", bad.want)
		_, err = kserve.DecodeInferRequest("m", "", fmt.Appendf(nil, `{"inputs":[],"outputs":[{"name":"y","parameters":{"k":%s}}]}`, bad.value), nil)
		wantTensorError(t, err, "outputs[0].parameters.k", bad.want)
	}

	// Values JSON cannot carry fail encoding, naming the parameter.
	nan := &inference.ModelInferRequest{Parameters: map[string]*inference.InferParameter{"x": d(math.NaN())}}
	_, err = kserve.EncodeInferRequest(nan)
	wantTensorError(t, err, "parameters.x", "cannot be written as JSON")
	empty := &inference.ModelInferRequest{Parameters: map[string]*inference.InferParameter{"x": {}}}
	_, err = kserve.EncodeInferRequest(empty)
	wantTensorError(t, err, "parameters.x: parameter has no value")
}

func TestUint64Exact(t *testing.T) {
	const data = "[9007199254740993,18446744073709551615,18446744073709551614]"
	req := mustDecode(t, oneInput("UINT64", "[3]", data), nil)
	want := []uint64{1<<53 + 1, math.MaxUint64, math.MaxUint64 - 1}
	if got := req.GetInputs()[0].GetContents().GetUint64Contents(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("uint64_contents = %v, want %v", got, want)
	}
	// Through raw, too.
	body := []byte(`{"inputs":[{"name":"x","datatype":"UINT64","shape":[3],"data":` + data + `},
		{"name":"h","datatype":"FP16","shape":[0],"data":[]}]}`)
	req = mustDecode(t, body, nil)
	if got := req.GetRawInputContents()[0]; !bytes.Equal(got, le64(want...)) {
		t.Errorf("raw = %x", got)
	}
	out, err := kserve.EncodeInferRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(data)) {
		t.Errorf("encoded %s lost precision", out)
	}
}

func TestValidateInferRequest(t *testing.T) {
	type in = inference.ModelInferRequest_InferInputTensor
	type tc = inference.InferTensorContents
	ok := func() *inference.ModelInferRequest {
		return &inference.ModelInferRequest{Inputs: []*in{
			{Name: "a", Datatype: "INT8", Shape: []int64{2}, Contents: &tc{IntContents: []int32{-128, 127}}},
			{Name: "b", Datatype: "BYTES", Shape: []int64{1, 1}, Contents: &tc{BytesContents: [][]byte{[]byte("x")}}},
		}}
	}
	raw := func() *inference.ModelInferRequest {
		return &inference.ModelInferRequest{
			Inputs: []*in{
				{Name: "a", Datatype: "FP16", Shape: []int64{2}},
				{Name: "b", Datatype: "BYTES", Shape: []int64{2}},
				{Name: "c", Datatype: "BOOL", Shape: []int64{1}},
			},
			RawInputContents: [][]byte{le16(1, 2), bytesRaw("x", "yz"), {1}},
		}
	}
	tests := []struct {
		name   string
		mutate func(r *inference.ModelInferRequest) *inference.ModelInferRequest
		max    int64
		want   string // "" = valid
	}{
		{"typed ok", func(r *inference.ModelInferRequest) *inference.ModelInferRequest { return ok() }, 10, ""},
		{"raw ok", func(r *inference.ModelInferRequest) *inference.ModelInferRequest { return raw() }, 10, ""},
		{"nil", func(r *inference.ModelInferRequest) *inference.ModelInferRequest { return nil }, 10, "missing request"},
		{"unknown datatype", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = ok()
			r.Inputs[1].Datatype = "STRING"
			return r
		}, 10, `inputs[1].datatype: unknown datatype "STRING"`},
		{"variable dim", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = ok()
			r.Inputs[0].Shape = []int64{-1}
			return r
		}, 10, "inputs[0].shape: dimension 0 is -1; a tensor needs concrete sizes >= 0"},
		{"overflow", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = ok()
			r.Inputs[0].Shape = []int64{math.MaxInt64, math.MaxInt64, 2}
			return r
		}, math.MaxInt64, "inputs[0].shape: shape [9223372036854775807,9223372036854775807,2] has more than"},
		{"over max", func(r *inference.ModelInferRequest) *inference.ModelInferRequest { return ok() }, 2, "inputs[1].shape: inputs have more than 2 elements in all"},
		{"count", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = ok()
			r.Inputs[0].Shape = []int64{3}
			return r
		}, 10, "inputs[0].contents.int_contents: expected 3 elements for shape [3], got 2"},
		{"wrong field", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = ok()
			r.Inputs[0].Contents = &tc{Int64Contents: []int64{1, 2}}
			return r
		}, 10, "inputs[0].contents: INT8 data belongs in int_contents; 2 elements are in other fields"},
		{"range", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = ok()
			r.Inputs[0].Contents.IntContents[1] = 128
			return r
		}, 10, "inputs[0].contents.int_contents: element 1: 128 is out of range for INT8 [-128, 127]"},
		{"uint range", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			return &inference.ModelInferRequest{Inputs: []*in{{Name: "a", Datatype: "UINT16", Shape: []int64{1}, Contents: &tc{UintContents: []uint32{65536}}}}}
		}, 10, "out of range for UINT16 [0, 65535]"},
		{"fp16 typed", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			return &inference.ModelInferRequest{Inputs: []*in{{Name: "a", Datatype: "FP16", Shape: []int64{1}, Contents: &tc{Fp32Contents: []float32{1}}}}}
		}, 10, "inputs[0].contents: FP16 data must be sent in raw form"},
		{"duplicate", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = ok()
			r.Inputs[1].Name = "a"
			return r
		}, 10, `inputs[1].name: duplicate input name "a"`},
		{"unnamed", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = ok()
			r.Inputs[0].Name = ""
			return r
		}, 10, "inputs[0].name: missing input name"},
		{"output duplicate", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = ok()
			r.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "y"}, {Name: "y"}}
			return r
		}, 10, `outputs[1].name: duplicate output name "y"`},
		{"mixed", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = raw()
			r.Inputs[2].Contents = &tc{BoolContents: []bool{true}}
			return r
		}, 10, "inputs[2].contents: must be unset when raw_input_contents is used"},
		{"raw entries", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = raw()
			r.RawInputContents = r.RawInputContents[:2]
			return r
		}, 10, "raw_input_contents: has 2 entries for 3 inputs"},
		{"raw length", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = raw()
			r.RawInputContents[0] = []byte{1, 2, 3}
			return r
		}, 10, "raw_input_contents[0]: expected 4 bytes (2 elements of FP16) for shape [2], got 3"},
		{"raw bytes prefix", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = raw()
			r.RawInputContents[1] = append(bytesRaw("x"), 1, 0)
			return r
		}, 10, "raw_input_contents[1]: BYTES element 1: truncated length prefix"},
		{"raw bytes past end", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = raw()
			r.RawInputContents[1] = append(bytesRaw("x"), 0xFF, 0xFF, 0xFF, 0xFF, 'a')
			return r
		}, 10, "raw_input_contents[1]: BYTES element 1: length 4294967295 runs past the end of the data"},
		{"raw bytes count", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = raw()
			r.RawInputContents[1] = bytesRaw("x", "y", "z")
			return r
		}, 10, "raw_input_contents[1]: expected 2 BYTES elements for shape [2], got 3"},
		{"raw bool", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = raw()
			r.RawInputContents[2] = []byte{7}
			return r
		}, 10, "raw_input_contents[2]: BOOL element 0 is byte 7, not 0 or 1"},
		{"raw huge shape", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			r = raw()
			r.Inputs[0].Shape = []int64{math.MaxInt64/2 + 1}
			return r
		}, math.MaxInt64, "raw_input_contents[0]: expected 4611686018427387904 elements of 2 bytes for shape"},
		{"empty raw entries", func(r *inference.ModelInferRequest) *inference.ModelInferRequest {
			return &inference.ModelInferRequest{
				Inputs:           []*in{{Name: "a", Datatype: "FP32", Shape: []int64{0}}, {Name: "b", Datatype: "BYTES", Shape: []int64{3, 0}}},
				RawInputContents: [][]byte{{}, nil},
			}
		}, 10, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := kserve.ValidateInferRequest(tt.mutate(nil), tt.max)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			wantTensorError(t, err, tt.want)
		})
	}
}

func TestInputSize(t *testing.T) {
	typed := &inference.ModelInferRequest{Inputs: []*inference.ModelInferRequest_InferInputTensor{
		{Name: "a", Datatype: "INT64", Shape: []int64{2, 3}, Contents: &inference.InferTensorContents{Int64Contents: make([]int64, 6)}},
		{Name: "b", Datatype: "BYTES", Shape: []int64{2}, Contents: &inference.InferTensorContents{BytesContents: [][]byte{[]byte("hi"), []byte("there")}}},
		{Name: "c", Datatype: "INT8", Shape: []int64{4}, Contents: &inference.InferTensorContents{IntContents: make([]int32, 4)}},
	}}
	if e, b := kserve.InputSize(typed); e != 12 || b != 48+(4+2+4+5)+4 {
		t.Errorf("typed: InputSize = %d, %d; want 12, 67", e, b)
	}
	raw := &inference.ModelInferRequest{
		Inputs: []*inference.ModelInferRequest_InferInputTensor{
			{Name: "a", Datatype: "FP16", Shape: []int64{1, 8}},
			{Name: "b", Datatype: "BYTES", Shape: []int64{2}},
		},
		RawInputContents: [][]byte{make([]byte, 16), bytesRaw("hi", "there")},
	}
	if e, b := kserve.InputSize(raw); e != 10 || b != 16+15 {
		t.Errorf("raw: InputSize = %d, %d; want 10, 31", e, b)
	}
	huge := &inference.ModelInferRequest{Inputs: []*inference.ModelInferRequest_InferInputTensor{
		{Name: "a", Datatype: "FP32", Shape: []int64{math.MaxInt64, 4}}, {Name: "b", Datatype: "FP32", Shape: []int64{math.MaxInt64}},
	}}
	if e, _ := kserve.InputSize(huge); e != math.MaxInt64 {
		t.Errorf("huge: elements = %d, want saturated", e)
	}
	if e, b := kserve.InputSize(nil); e != 0 || b != 0 {
		t.Errorf("nil: InputSize = %d, %d", e, b)
	}
}

func TestResponse(t *testing.T) {
	resp := &inference.ModelInferResponse{
		ModelName: "resnet", Id: "r1",
		Parameters: map[string]*inference.InferParameter{"triton_final_response": {ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: true}}},
		Outputs: []*inference.ModelInferResponse_InferOutputTensor{
			{Name: "probs", Datatype: "FP16", Shape: []int64{1, 2}},
			{Name: "class", Datatype: "INT64", Shape: []int64{1}},
			{Name: "label", Datatype: "BYTES", Shape: []int64{1}},
			{Name: "mask", Datatype: "BOOL", Shape: []int64{2}},
			{Name: "u16", Datatype: "UINT16", Shape: []int64{1}},
			{Name: "i16", Datatype: "INT16", Shape: []int64{1}},
			{Name: "bf", Datatype: "BF16", Shape: []int64{1}},
		},
		RawOutputContents: [][]byte{le16(0x3800, 0x3400), le64(281), bytesRaw("tabby"), {0, 1}, le16(65535), le16(0x8000), le16(0x3F80)},
	}
	body, err := kserve.EncodeInferResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"model_name":"resnet","id":"r1","parameters":{"triton_final_response":true},"outputs":[` +
		`{"name":"probs","datatype":"FP16","shape":[1,2],"data":[0.5,0.25]},{"name":"class","datatype":"INT64","shape":[1],"data":[281]},` +
		`{"name":"label","datatype":"BYTES","shape":[1],"data":["tabby"]},{"name":"mask","datatype":"BOOL","shape":[2],"data":[false,true]},` +
		`{"name":"u16","datatype":"UINT16","shape":[1],"data":[65535]},{"name":"i16","datatype":"INT16","shape":[1],"data":[-32768]},` +
		`{"name":"bf","datatype":"BF16","shape":[1],"data":[1]}]}`
	if string(body) != want {
		t.Errorf("encoded\n got %s\nwant %s", body, want)
	}
	back, err := kserve.DecodeInferResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, resp) {
		t.Errorf("decoded %v\nwant %v", back, resp)
	}

	// model_version is written when set; typed contents render too.
	typed := &inference.ModelInferResponse{ModelName: "m", ModelVersion: "2", Outputs: []*inference.ModelInferResponse_InferOutputTensor{
		{Name: "y", Datatype: "FP32", Shape: []int64{2}, Contents: &inference.InferTensorContents{Fp32Contents: []float32{0.1, 1e21}}},
	}}
	body, err = kserve.EncodeInferResponse(typed)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"model_name":"m","model_version":"2","outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":[0.1,1e+21]}]}`; string(body) != want {
		t.Errorf("encoded\n got %s\nwant %s", body, want)
	}

	// Binary output data follows the JSON object, no header needed.
	bin := append([]byte(`{"model_name":"m","outputs":[{"name":"y","datatype":"INT32","shape":[2],"parameters":{"binary_data_size":8}},`+
		`{"name":"z","datatype":"FP32","shape":[1],"data":[2]}]}`), le32(7, 8)...)
	back, err = kserve.DecodeInferResponse(bin)
	if err != nil {
		t.Fatal(err)
	}
	if raw := back.GetRawOutputContents(); len(raw) != 2 || !bytes.Equal(raw[0], le32(7, 8)) || !bytes.Equal(raw[1], le32(math.Float32bits(2))) {
		t.Errorf("raw_output_contents = %x", raw)
	}
	if len(back.GetOutputs()[0].GetParameters()) != 0 {
		t.Errorf("binary_data_size forwarded: %v", back.GetOutputs()[0].GetParameters())
	}

	bad := []struct {
		name string
		resp *inference.ModelInferResponse
		want string
	}{
		{"nil", nil, "missing response"},
		{"raw entries", &inference.ModelInferResponse{Outputs: resp.Outputs[:1], RawOutputContents: [][]byte{{}, {}}}, "raw_output_contents: has 2 entries for 1 outputs"},
		{"raw length", &inference.ModelInferResponse{Outputs: resp.Outputs[:1], RawOutputContents: [][]byte{{1}}}, "raw_output_contents[0]: expected 4 bytes"},
		{"nan", &inference.ModelInferResponse{Outputs: resp.Outputs[:1], RawOutputContents: [][]byte{le16(0x7E00, 0)}}, "outputs[0].data: element 0 is NaN, which JSON cannot carry"},
		{"inf", &inference.ModelInferResponse{Outputs: []*inference.ModelInferResponse_InferOutputTensor{
			{Name: "y", Datatype: "FP64", Shape: []int64{1}, Contents: &inference.InferTensorContents{Fp64Contents: []float64{math.Inf(-1)}}}}}, "element 0 is -Inf"},
		{"utf8", &inference.ModelInferResponse{Outputs: []*inference.ModelInferResponse_InferOutputTensor{{Name: "y", Datatype: "BYTES", Shape: []int64{1}}},
			RawOutputContents: [][]byte{bytesRaw("\xff")}}, "outputs[0].data: BYTES element 0 is not valid UTF-8"},
		{"count", &inference.ModelInferResponse{Outputs: []*inference.ModelInferResponse_InferOutputTensor{
			{Name: "y", Datatype: "INT32", Shape: []int64{3}, Contents: &inference.InferTensorContents{IntContents: []int32{1}}}}},
			"outputs[0].contents.int_contents: expected 3 elements for shape [3], got 1"},
		{"datatype", &inference.ModelInferResponse{Outputs: []*inference.ModelInferResponse_InferOutputTensor{{Name: "y", Datatype: "X"}}}, `outputs[0].datatype: unknown datatype "X"`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kserve.EncodeInferResponse(tt.resp)
			wantTensorError(t, err, tt.want)
		})
	}
	for _, tt := range []struct{ body, want string }{
		{`{"outputs":[{"name":"y","datatype":"INT8","shape":[1],"data":[300]}]}`, "outputs[0].data: element 0: 300 is out of range for INT8"},
		{`{"outputs":[{"name":"y","datatype":"INT8","shape":[1],"data":[1]},{"name":"y","datatype":"INT8","shape":[1],"data":[1]}]}`, `outputs[1].name: duplicate output name "y"`},
		{`{"outputs":[]} x`, "body: unexpected data after the JSON object"},
		{`{"outputs":[{"name":"y","datatype":"INT8","shape":[2],"parameters":{"binary_data_size":2}}]}` + "\x01", "only 1 bytes of binary data remain"},
		{`[]`, "body: expected an object"},
	} {
		_, err := kserve.DecodeInferResponse([]byte(tt.body))
		wantTensorError(t, err, tt.want)
	}
}

func TestModelMetadata(t *testing.T) {
	body := []byte(`{"name":"bert","versions":["1","2"],"platform":"onnxruntime_onnx",` +
		`"inputs":[{"name":"input_ids","datatype":"INT64","shape":[-1,128]}],` +
		`"outputs":[{"name":"logits","datatype":"FP32","shape":[-1,2]},{"name":"scalar","datatype":"FP32","shape":[]}],` +
		`"properties":{"a":"b"}}`)
	m, err := kserve.DecodeModelMetadata(body)
	if err != nil {
		t.Fatal(err)
	}
	want := &inference.ModelMetadataResponse{
		Name: "bert", Versions: []string{"1", "2"}, Platform: "onnxruntime_onnx",
		Inputs: []*inference.ModelMetadataResponse_TensorMetadata{{Name: "input_ids", Datatype: "INT64", Shape: []int64{-1, 128}}},
		Outputs: []*inference.ModelMetadataResponse_TensorMetadata{
			{Name: "logits", Datatype: "FP32", Shape: []int64{-1, 2}}, {Name: "scalar", Datatype: "FP32"},
		},
		Properties: map[string]string{"a": "b"},
	}
	if !proto.Equal(m, want) {
		t.Fatalf("decoded %v\nwant %v", m, want)
	}
	out, err := kserve.EncodeModelMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(body) {
		t.Errorf("encoded\n got %s\nwant %s", out, body)
	}
	minimal, err := kserve.EncodeModelMetadata(&inference.ModelMetadataResponse{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"x","platform":"","inputs":[],"outputs":[]}`; string(minimal) != want {
		t.Errorf("minimal = %s, want %s", minimal, want)
	}
	_, err = kserve.DecodeModelMetadata([]byte(`{"name":"x","inputs":[{"name":"a","datatype":"FP32","shape":[-2]}]}`))
	wantTensorError(t, err, "inputs[0].shape: dimension 0: -2 is not a size >= 0 or -1")
	_, err = kserve.DecodeModelMetadata([]byte(`{"name":"x","versions":"1"}`))
	wantTensorError(t, err, "versions: expected an array")
	_, err = kserve.EncodeModelMetadata(&inference.ModelMetadataResponse{Outputs: []*inference.ModelMetadataResponse_TensorMetadata{{Shape: []int64{-3}}}})
	wantTensorError(t, err, "outputs[0].shape: dimension 0 is -3")
}

// TestGolden decodes realistic REST bodies under testdata, records the protobuf message they
// become (as indented protojson) and the REST JSON they render back to. Run with -update to
// rewrite the .golden files.
func TestGolden(t *testing.T) {
	for _, name := range []string{"text_classification", "multimodal_generate"} {
		t.Run(name, func(t *testing.T) {
			reqBody := readFile(t, name+".request.json")
			req, err := kserve.DecodeInferRequest("model", "", reqBody, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, name+".request.pb.golden", protoJSON(t, req))
			out, err := kserve.EncodeInferRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, name+".request.golden.json", indent(t, out))
			if again, err := kserve.DecodeInferRequest("model", "", out, nil); err != nil || !proto.Equal(again, req) {
				t.Errorf("re-encoded request decodes to %v, %v", again, err)
			}

			respBody := readFile(t, name+".response.json")
			resp, err := kserve.DecodeInferResponse(respBody)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, name+".response.pb.golden", protoJSON(t, resp))
			out, err = kserve.EncodeInferResponse(resp)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, name+".response.golden.json", indent(t, out))
			if again, err := kserve.DecodeInferResponse(out); err != nil || !proto.Equal(again, resp) {
				t.Errorf("re-encoded response decodes to %v, %v", again, err)
			}
		})
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// protoJSON renders m as indented protojson; indenting it again removes the whitespace
// protojson varies on purpose.
func protoJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return indent(t, b)
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n got %s\nwant %s", name, got, want)
	}
}

// FuzzDecodeInferRequest feeds arbitrary bodies (and, when hdr >= 0, an
// Inference-Header-Content-Length of hdr) to DecodeInferRequest. Whatever decodes must be
// valid, and must render as JSON that decodes to the same message; requests with binary data
// (whose raw form JSON does not keep) must at least render to a fixed point.
func FuzzDecodeInferRequest(f *testing.F) {
	for _, name := range []string{"text_classification", "multimodal_generate"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name+".request.json")); err == nil {
			f.Add(b, -1)
		}
	}
	f.Add(oneInput("FP16", "[2,2]", "[[1,-2.5],[65504,6e-8]]"), -1)
	f.Add(oneInput("BYTES", "[2]", `["a\u0000","\ud800"]`), -1)
	f.Add(oneInput("UINT64", "[1]", "[18446744073709551615]"), -1)
	f.Add([]byte(`{"id":"x","parameters":{"a":1.5,"b":"s","c":true,"d":18446744073709551615},"inputs":[],"outputs":[{"name":"o","parameters":{"k":1}}]}`), -1)
	body, h := binaryBody(`{"inputs":[{"name":"a","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":6}},{"name":"b","datatype":"INT8","shape":[1],"data":[3]}]}`, bytesRaw("hi"))
	hdr, _ := strconv.Atoi(h.Get("Inference-Header-Content-Length"))
	f.Add(body, hdr)

	f.Fuzz(func(t *testing.T, body []byte, hdr int) {
		var h http.Header
		if hdr >= 0 {
			h = http.Header{}
			h.Set("Inference-Header-Content-Length", strconv.Itoa(hdr))
		}
		req, err := kserve.DecodeInferRequest("m", "v", body, h)
		if err != nil {
			var te *kserve.TensorError
			if !errors.As(err, &te) {
				t.Fatalf("error %v is a %T, not a *TensorError", err, err)
			}
			return
		}
		if err := kserve.ValidateInferRequest(req, kserve.DefaultMaxElements); err != nil {
			t.Fatalf("decoded request is invalid: %v", err)
		}
		out, err := kserve.EncodeInferRequest(req)
		if h != nil && err != nil {
			return // binary data may hold NaN, infinities or non-UTF-8 BYTES, which JSON cannot carry
		}
		if err != nil {
			t.Fatalf("EncodeInferRequest: %v", err)
		}
		again, err := kserve.DecodeInferRequest("m", "v", out, nil)
		if err != nil {
			t.Fatalf("re-encoded body %s does not decode: %v", out, err)
		}
		if h == nil {
			if !proto.Equal(again, req) {
				t.Fatalf("round trip changed the request:\n%v\n%v\nvia %s", req, again, out)
			}
			return
		}
		out2, err := kserve.EncodeInferRequest(again)
		if err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("rendering is not a fixed point:\n%s\n%s (%v)", out, out2, err)
		}
	})
}
