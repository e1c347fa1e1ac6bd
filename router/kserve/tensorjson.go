package kserve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/switchyard-ai/switchyard/gen/inference"
)

// DefaultMaxElements bounds the total element count of all tensors in a message that
// DecodeInferRequest and DecodeInferResponse accept: 1<<26 (about 67 million elements, 256 MiB
// of FP32). Callers of ValidateInferRequest choose their own bound.
const DefaultMaxElements = 1 << 26

// maxDataDepth bounds how deeply a REST `data` array may nest.
const maxDataDepth = 32

const (
	// headerContentLength carries the length of the JSON part of a body that has binary
	// tensor data appended (the binary tensor data extension).
	headerContentLength = "Inference-Header-Content-Length"
	// paramBinaryDataSize, on a tensor, says its data is in the binary part, and how long it is.
	paramBinaryDataSize = "binary_data_size"
)

// TensorError is a malformed or inconsistent tensor message. Field names the offending part
// of the message as a path (`inputs[1].data`, `raw_input_contents[0]`, `parameters.priority`);
// Msg says what is wrong. Front doors answer it with HTTP 400 {"error": …} or gRPC
// INVALID_ARGUMENT.
type TensorError struct {
	Field string
	Msg   string
}

func (e *TensorError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func tensorErrorf(field, format string, args ...any) *TensorError {
	return &TensorError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// elemKind is the typed InferTensorContents field a datatype uses, or how its raw form is read.
type elemKind uint8

const (
	elemBool elemKind = iota + 1
	elemInt
	elemInt64
	elemUint
	elemUint64
	elemFP32
	elemFP64
	elemBytes
	elemHalf // FP16 and BF16: raw only
)

// dtypeInfo describes one KServe v2 datatype.
type dtypeInfo struct {
	name string
	size int64 // bytes per element in raw form; 0 for BYTES (variable)
	kind elemKind
	// lo and hi bound the values of the narrow integer types that share int_contents or
	// uint_contents; both are zero for the others.
	lo, hi int64
	half   *halfFormat
}

var dtypeInfos = map[string]*dtypeInfo{
	"BOOL":   {name: "BOOL", size: 1, kind: elemBool},
	"UINT8":  {name: "UINT8", size: 1, kind: elemUint, hi: math.MaxUint8},
	"UINT16": {name: "UINT16", size: 2, kind: elemUint, hi: math.MaxUint16},
	"UINT32": {name: "UINT32", size: 4, kind: elemUint, hi: math.MaxUint32},
	"UINT64": {name: "UINT64", size: 8, kind: elemUint64},
	"INT8":   {name: "INT8", size: 1, kind: elemInt, lo: math.MinInt8, hi: math.MaxInt8},
	"INT16":  {name: "INT16", size: 2, kind: elemInt, lo: math.MinInt16, hi: math.MaxInt16},
	"INT32":  {name: "INT32", size: 4, kind: elemInt, lo: math.MinInt32, hi: math.MaxInt32},
	"INT64":  {name: "INT64", size: 8, kind: elemInt64},
	"FP16":   {name: "FP16", size: 2, kind: elemHalf, half: &fp16},
	"BF16":   {name: "BF16", size: 2, kind: elemHalf, half: &bf16},
	"FP32":   {name: "FP32", size: 4, kind: elemFP32},
	"FP64":   {name: "FP64", size: 8, kind: elemFP64},
	"BYTES":  {name: "BYTES", kind: elemBytes},
}

func lookupDatatype(field, name string) (*dtypeInfo, error) {
	if dt, ok := dtypeInfos[name]; ok {
		return dt, nil
	}
	if name == "" {
		return nil, tensorErrorf(field, "missing")
	}
	return nil, tensorErrorf(field, "unknown datatype %q", name)
}

// ---------------------------------------------------------------------------------------------
// FP16 and BF16

// halfFormat is a 16-bit binary floating-point format: a sign bit, an exponent field and mant
// fraction bits.
type halfFormat struct {
	mant uint   // fraction bits
	emin int    // exponent of the smallest normal number
	inf  uint16 // bit pattern of +Inf: every exponent bit set
}

var (
	fp16 = halfFormat{mant: 10, emin: -14, inf: 0x7C00}
	bf16 = halfFormat{mant: 7, emin: -126, inf: 0x7F80}
)

// fromFloat64 rounds f to the nearest value of h, ties to even. ok is false when the result is
// not finite (f was too large for h, or was not finite itself).
func (h halfFormat) fromFloat64(f float64) (v uint16, ok bool) {
	b := math.Float64bits(f)
	sign := uint16(b>>48) & 0x8000
	exp := int(b>>52) & 0x7FF
	frac := b & (1<<52 - 1)
	switch exp {
	case 0x7FF:
		if frac != 0 {
			return sign | h.inf | 1<<(h.mant-1), false // quiet NaN
		}
		return sign | h.inf, false
	case 0:
		return sign, true // zero, or a float64 subnormal: far below h's smallest subnormal
	}
	e := exp - 1023
	sig := frac | 1<<52
	// The result's bits are the exponent field above its lowest value, shifted into place,
	// plus the rounded significand. Because the significand carries its leading bit, a
	// round-up that overflows the fraction, or a subnormal that rounds up to the smallest
	// normal, carries into the exponent field by itself.
	shift := 52 - h.mant
	var base uint64
	if e < h.emin {
		shift += uint(h.emin - e)
	} else {
		base = uint64(e-h.emin) << h.mant
	}
	r := base + roundShift(sig, shift)
	if r >= uint64(h.inf) {
		return sign | h.inf, false
	}
	return sign | uint16(r), true
}

// roundShift returns x / 2^shift rounded to nearest, ties to even; x < 2^53.
func roundShift(x uint64, shift uint) uint64 {
	if shift == 0 {
		return x
	}
	if shift > 54 {
		return 0
	}
	q := x >> shift
	rem := x & (1<<shift - 1)
	half := uint64(1) << (shift - 1)
	if rem > half || rem == half && q&1 == 1 {
		q++
	}
	return q
}

// toFloat64 returns the value of bits v in format h, exactly.
func (h halfFormat) toFloat64(v uint16) float64 {
	expField := int(v&0x7FFF) >> h.mant
	frac := uint64(v) & (1<<h.mant - 1)
	var f float64
	switch expField {
	case int(h.inf >> h.mant):
		if frac != 0 {
			f = math.NaN()
		} else {
			f = math.Inf(1)
		}
	case 0:
		f = math.Ldexp(float64(frac), h.emin-int(h.mant))
	default:
		f = math.Ldexp(float64(frac|1<<h.mant), expField-1+h.emin-int(h.mant))
	}
	if v&0x8000 != 0 {
		f = -f
	}
	return f
}

// ---------------------------------------------------------------------------------------------
// Shapes and element counts

// elementCount returns the product of shape, failing on a negative dimension or when the
// product exceeds limit. A dimension of 0 makes the count 0 whatever the others are.
func elementCount(field string, shape []int64, limit int64) (int64, error) {
	for i, d := range shape {
		if d < 0 {
			return 0, tensorErrorf(field, "dimension %d is %d; a tensor needs concrete sizes >= 0", i, d)
		}
	}
	if slices.Contains(shape, 0) {
		return 0, nil
	}
	n := int64(1)
	for _, d := range shape {
		if n > limit/d {
			return 0, tensorErrorf(field, "shape %s has more than %d elements", formatShape(shape), limit)
		}
		n *= d
	}
	if n > limit {
		return 0, tensorErrorf(field, "shape %s has more than %d elements", formatShape(shape), limit)
	}
	return n, nil
}

// saturatingCount is elementCount for callers that cannot fail: negative dimensions count as
// 0 and overflow saturates.
func saturatingCount(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		switch {
		case d <= 0:
			return 0
		case n > math.MaxInt64/d:
			n = math.MaxInt64
		default:
			n *= d
		}
	}
	return n
}

func formatShape(shape []int64) string {
	b := []byte{'['}
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return string(append(b, ']'))
}

// ---------------------------------------------------------------------------------------------
// Validation

// ValidateInferRequest checks that req's tensors are consistent, for requests from any front
// door. Every input needs a unique non-empty name, a known datatype and a shape of dimensions
// >= 0 (-1 is for metadata, not requests); the total element count of all inputs must not
// exceed maxElements. Either raw_input_contents holds exactly one entry per input, in order,
// of elements × datatype size bytes (BYTES: 4-byte little-endian length + bytes per element;
// BOOL: one byte, 0 or 1) and no input has typed contents; or every input has its elements in
// the typed field matching its datatype, with no other field used and narrow integers in
// range. FP16 and BF16 inputs are valid only in raw form. Requested outputs need unique
// non-empty names. The error is a *TensorError.
func ValidateInferRequest(req *inference.ModelInferRequest, maxElements int64) error {
	if req == nil {
		return tensorErrorf("", "missing request")
	}
	inputs, raw := req.GetInputs(), req.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(inputs) {
		return tensorErrorf("raw_input_contents", "has %d entries for %d inputs", len(raw), len(inputs))
	}
	names := make(map[string]struct{}, len(inputs))
	budget := maxElements
	for i, in := range inputs {
		field := fmt.Sprintf("inputs[%d]", i)
		if err := uniqueName(field+".name", in.GetName(), names, "input"); err != nil {
			return err
		}
		dt, err := lookupDatatype(field+".datatype", in.GetDatatype())
		if err != nil {
			return err
		}
		n, err := countWithin(field+".shape", in.GetShape(), budget, maxElements, "inputs")
		if err != nil {
			return err
		}
		budget -= n
		if len(raw) > 0 {
			if typedCount(in.GetContents()) > 0 {
				return tensorErrorf(field+".contents", "must be unset when raw_input_contents is used")
			}
			if err := checkRaw(fmt.Sprintf("raw_input_contents[%d]", i), dt, in.GetShape(), n, raw[i]); err != nil {
				return err
			}
			continue
		}
		if err := checkTyped(field+".contents", dt, in.GetShape(), n, in.GetContents()); err != nil {
			return err
		}
	}
	outNames := make(map[string]struct{}, len(req.GetOutputs()))
	for i, out := range req.GetOutputs() {
		if err := uniqueName(fmt.Sprintf("outputs[%d].name", i), out.GetName(), outNames, "output"); err != nil {
			return err
		}
	}
	return nil
}

// countWithin is elementCount for one tensor of a message, where limit bounds each tensor
// and budget is what the earlier tensors (what) left of it.
func countWithin(field string, shape []int64, budget, limit int64, what string) (int64, error) {
	n, err := elementCount(field, shape, limit)
	if err != nil {
		return 0, err
	}
	if n > budget {
		return 0, tensorErrorf(field, "%s have more than %d elements in all", what, limit)
	}
	return n, nil
}

func uniqueName(field, name string, seen map[string]struct{}, what string) error {
	if name == "" {
		return tensorErrorf(field, "missing %s name", what)
	}
	if _, dup := seen[name]; dup {
		return tensorErrorf(field, "duplicate %s name %q", what, name)
	}
	seen[name] = struct{}{}
	return nil
}

// typedCount is the number of elements in all fields of c.
func typedCount(c *inference.InferTensorContents) int {
	if c == nil {
		return 0
	}
	return len(c.BoolContents) + len(c.IntContents) + len(c.Int64Contents) + len(c.UintContents) +
		len(c.Uint64Contents) + len(c.Fp32Contents) + len(c.Fp64Contents) + len(c.BytesContents)
}

// typedLen is the number of elements in the field of c that dt uses.
func typedLen(dt *dtypeInfo, c *inference.InferTensorContents) int {
	switch dt.kind {
	case elemBool:
		return len(c.GetBoolContents())
	case elemInt:
		return len(c.GetIntContents())
	case elemInt64:
		return len(c.GetInt64Contents())
	case elemUint:
		return len(c.GetUintContents())
	case elemUint64:
		return len(c.GetUint64Contents())
	case elemFP32:
		return len(c.GetFp32Contents())
	case elemFP64:
		return len(c.GetFp64Contents())
	case elemBytes:
		return len(c.GetBytesContents())
	}
	return 0
}

var typedFieldNames = map[elemKind]string{
	elemBool: "bool_contents", elemInt: "int_contents", elemInt64: "int64_contents",
	elemUint: "uint_contents", elemUint64: "uint64_contents", elemFP32: "fp32_contents",
	elemFP64: "fp64_contents", elemBytes: "bytes_contents",
}

// checkTyped checks that c holds n elements of dt in the matching field and nothing else.
func checkTyped(field string, dt *dtypeInfo, shape []int64, n int64, c *inference.InferTensorContents) error {
	if dt.kind == elemHalf {
		return tensorErrorf(field, "%s data must be sent in raw form, not typed contents", dt.name)
	}
	got := typedLen(dt, c)
	if other := typedCount(c) - got; other > 0 {
		return tensorErrorf(field, "%s data belongs in %s; %d elements are in other fields",
			dt.name, typedFieldNames[dt.kind], other)
	}
	if int64(got) != n {
		return tensorErrorf(field+"."+typedFieldNames[dt.kind], "expected %d elements for shape %s, got %d",
			n, formatShape(shape), got)
	}
	switch dt.kind {
	case elemInt:
		for j, v := range c.GetIntContents() {
			if int64(v) < dt.lo || int64(v) > dt.hi {
				return tensorErrorf(field+".int_contents", "element %d: %d is out of range for %s [%d, %d]",
					j, v, dt.name, dt.lo, dt.hi)
			}
		}
	case elemUint:
		for j, v := range c.GetUintContents() {
			if int64(v) > dt.hi {
				return tensorErrorf(field+".uint_contents", "element %d: %d is out of range for %s [0, %d]",
					j, v, dt.name, dt.hi)
			}
		}
	}
	return nil
}

// checkRaw checks that raw holds n elements of dt in raw form.
func checkRaw(field string, dt *dtypeInfo, shape []int64, n int64, raw []byte) error {
	if dt.kind == elemBytes {
		var count int64
		for off := 0; off < len(raw); count++ {
			if len(raw)-off < 4 {
				return tensorErrorf(field, "BYTES element %d: truncated length prefix", count)
			}
			l := binary.LittleEndian.Uint32(raw[off:])
			off += 4
			if uint64(len(raw)-off) < uint64(l) {
				return tensorErrorf(field, "BYTES element %d: length %d runs past the end of the data", count, l)
			}
			off += int(l)
		}
		if count != n {
			return tensorErrorf(field, "expected %d BYTES elements for shape %s, got %d", n, formatShape(shape), count)
		}
		return nil
	}
	size := dt.size
	if int64(len(raw))%size != 0 || int64(len(raw))/size != n {
		if n > math.MaxInt64/size {
			return tensorErrorf(field, "expected %d elements of %d bytes for shape %s, got %d bytes",
				n, size, formatShape(shape), len(raw))
		}
		return tensorErrorf(field, "expected %d bytes (%d elements of %s) for shape %s, got %d",
			n*size, n, dt.name, formatShape(shape), len(raw))
	}
	if dt.kind == elemBool {
		for j, b := range raw {
			if b > 1 {
				return tensorErrorf(field, "BOOL element %d is byte %d, not 0 or 1", j, b)
			}
		}
	}
	return nil
}

// InputSize reports the total element count (from the shapes) and byte size of req's inputs,
// the routing signal for a tensor request's length. Bytes count raw entries as sent; typed
// contents count as their raw size would be (BYTES: 4 + length per element). It never fails:
// call it on a validated request for meaningful numbers.
func InputSize(req *inference.ModelInferRequest) (elements, bytes int64) {
	raw := req.GetRawInputContents()
	for i, in := range req.GetInputs() {
		elements = satAdd(elements, saturatingCount(in.GetShape()))
		if len(raw) > 0 {
			if i < len(raw) {
				bytes = satAdd(bytes, int64(len(raw[i])))
			}
			continue
		}
		c := in.GetContents()
		dt := dtypeInfos[in.GetDatatype()]
		if dt == nil {
			continue
		}
		if dt.kind == elemBytes {
			for _, e := range c.GetBytesContents() {
				bytes = satAdd(bytes, 4+int64(len(e)))
			}
			continue
		}
		bytes = satAdd(bytes, int64(typedLen(dt, c))*dt.size)
	}
	return elements, bytes
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// ---------------------------------------------------------------------------------------------
// Typed contents to raw

// appendRawTyped appends c's elements of dt in raw little-endian form.
func appendRawTyped(b []byte, dt *dtypeInfo, c *inference.InferTensorContents) []byte {
	le := binary.LittleEndian
	switch dt.kind {
	case elemBool:
		for _, v := range c.GetBoolContents() {
			if v {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	case elemInt:
		for _, v := range c.GetIntContents() {
			switch dt.size {
			case 1:
				b = append(b, byte(v))
			case 2:
				b = le.AppendUint16(b, uint16(v))
			default:
				b = le.AppendUint32(b, uint32(v))
			}
		}
	case elemUint:
		for _, v := range c.GetUintContents() {
			switch dt.size {
			case 1:
				b = append(b, byte(v))
			case 2:
				b = le.AppendUint16(b, uint16(v))
			default:
				b = le.AppendUint32(b, v)
			}
		}
	case elemInt64:
		for _, v := range c.GetInt64Contents() {
			b = le.AppendUint64(b, uint64(v))
		}
	case elemUint64:
		for _, v := range c.GetUint64Contents() {
			b = le.AppendUint64(b, v)
		}
	case elemFP32:
		for _, v := range c.GetFp32Contents() {
			b = le.AppendUint32(b, math.Float32bits(v))
		}
	case elemFP64:
		for _, v := range c.GetFp64Contents() {
			b = le.AppendUint64(b, math.Float64bits(v))
		}
	case elemBytes:
		for _, v := range c.GetBytesContents() {
			b = le.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

// ---------------------------------------------------------------------------------------------
// Walking REST `data`

// walkArray calls fn with the index and JSON text of each scalar in the array raw, flattened
// row-major, and returns how many there were. raw must be syntactically valid JSON (as
// encoding/json leaves a RawMessage); arrays may nest maxDepth deep.
func walkArray(raw []byte, maxDepth int, fn func(i int64, tok []byte) error) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return 0, errors.New("expected an array")
	}
	var n int64
	depth := 0
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case ' ', '\t', '\n', '\r', ',':
			i++
		case '[':
			depth++
			if depth > maxDepth {
				if maxDepth == 1 {
					return n, errors.New("expected a flat array")
				}
				return n, fmt.Errorf("arrays nest deeper than %d levels", maxDepth)
			}
			i++
		case ']':
			depth--
			i++
		case '{':
			return n, fmt.Errorf("element %d: objects are not allowed", n)
		case '"':
			j := i + 1
			for raw[j] != '"' {
				if raw[j] == '\\' {
					j++
				}
				j++
			}
			if err := fn(n, raw[i:j+1]); err != nil {
				return n, err
			}
			n++
			i = j + 1
		default:
			j := i + 1
			for j < len(raw) && !isDelim(raw[j]) {
				j++
			}
			if err := fn(n, raw[i:j]); err != nil {
				return n, err
			}
			n++
			i = j
		}
	}
	return n, nil
}

func isDelim(c byte) bool {
	return c == ',' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// tokenKind names a scalar's JSON type for error messages.
func tokenKind(tok []byte) string {
	switch tok[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func isNumber(tok []byte) bool { return tok[0] == '-' || tok[0] >= '0' && tok[0] <= '9' }

// isIntegerSyntax reports whether the JSON number tok has no fraction or exponent.
func isIntegerSyntax(tok []byte) bool { return bytes.IndexAny(tok, ".eE") < 0 }

// decodeString decodes the JSON string tok as encoding/json does (invalid UTF-8 becomes
// U+FFFD), taking a shortcut for plain ASCII.
func decodeString(tok []byte) []byte {
	inner := tok[1 : len(tok)-1]
	plain := true
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return slices.Clone(inner)
	}
	var s string
	_ = json.Unmarshal(tok, &s) // tok is a valid JSON string
	return []byte(s)
}

func parseInt(dt *dtypeInfo, tok []byte) (int64, error) {
	if !isNumber(tok) {
		return 0, fmt.Errorf("expected an integer, got %s", tokenKind(tok))
	}
	if !isIntegerSyntax(tok) {
		return 0, fmt.Errorf("expected an integer, got %s", tok)
	}
	v, err := strconv.ParseInt(string(tok), 10, 64)
	if err != nil || dt.kind != elemInt64 && (v < dt.lo || v > dt.hi) {
		lo, hi := dt.lo, dt.hi
		if dt.kind == elemInt64 {
			lo, hi = math.MinInt64, math.MaxInt64
		}
		return 0, fmt.Errorf("%s is out of range for %s [%d, %d]", tok, dt.name, lo, hi)
	}
	return v, nil
}

func parseUint(dt *dtypeInfo, tok []byte) (uint64, error) {
	if !isNumber(tok) {
		return 0, fmt.Errorf("expected an integer, got %s", tokenKind(tok))
	}
	if !isIntegerSyntax(tok) {
		return 0, fmt.Errorf("expected an integer, got %s", tok)
	}
	hi := uint64(dt.hi)
	if dt.kind == elemUint64 {
		hi = math.MaxUint64
	}
	s := string(tok)
	if s == "-0" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > hi {
		return 0, fmt.Errorf("%s is out of range for %s [0, %d]", tok, dt.name, hi)
	}
	return v, nil
}

func parseFloat(dt *dtypeInfo, tok []byte, bits int) (float64, error) {
	if !isNumber(tok) {
		return 0, fmt.Errorf("expected a number, got %s", tokenKind(tok))
	}
	v, err := strconv.ParseFloat(string(tok), bits)
	if err != nil || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s is out of range for %s", tok, dt.name)
	}
	return v, nil
}

// tensorData is a decoded tensor's elements: typed contents, or raw bytes.
type tensorData struct {
	contents *inference.InferTensorContents
	raw      []byte
	isRaw    bool
}

// decodeData converts the REST `data` array raw into n elements of dt. FP16 and BF16 come back
// raw, everything else typed.
func decodeData(field string, dt *dtypeInfo, shape []int64, n int64, raw []byte) (tensorData, error) {
	// Each element takes at least one byte plus a separator, so the body bounds the
	// allocation even when the shape claims more than the data holds.
	capacity := min(n, int64(len(raw)/2)+1)
	c := &inference.InferTensorContents{}
	var half []byte
	switch dt.kind {
	case elemBool:
		c.BoolContents = make([]bool, 0, capacity)
	case elemInt:
		c.IntContents = make([]int32, 0, capacity)
	case elemInt64:
		c.Int64Contents = make([]int64, 0, capacity)
	case elemUint:
		c.UintContents = make([]uint32, 0, capacity)
	case elemUint64:
		c.Uint64Contents = make([]uint64, 0, capacity)
	case elemFP32:
		c.Fp32Contents = make([]float32, 0, capacity)
	case elemFP64:
		c.Fp64Contents = make([]float64, 0, capacity)
	case elemBytes:
		c.BytesContents = make([][]byte, 0, capacity)
	case elemHalf:
		half = make([]byte, 0, 2*capacity)
	}
	got, err := walkArray(raw, maxDataDepth, func(i int64, tok []byte) error {
		if i >= n {
			return nil // only counted: the count check below reports it
		}
		var err error
		switch dt.kind {
		case elemBool:
			switch tok[0] {
			case 't':
				c.BoolContents = append(c.BoolContents, true)
			case 'f':
				c.BoolContents = append(c.BoolContents, false)
			default:
				err = fmt.Errorf("expected a boolean, got %s", tokenKind(tok))
			}
		case elemInt:
			var v int64
			v, err = parseInt(dt, tok)
			c.IntContents = append(c.IntContents, int32(v))
		case elemInt64:
			var v int64
			v, err = parseInt(dt, tok)
			c.Int64Contents = append(c.Int64Contents, v)
		case elemUint:
			var v uint64
			v, err = parseUint(dt, tok)
			c.UintContents = append(c.UintContents, uint32(v))
		case elemUint64:
			var v uint64
			v, err = parseUint(dt, tok)
			c.Uint64Contents = append(c.Uint64Contents, v)
		case elemFP32:
			var v float64
			v, err = parseFloat(dt, tok, 32)
			c.Fp32Contents = append(c.Fp32Contents, float32(v))
		case elemFP64:
			var v float64
			v, err = parseFloat(dt, tok, 64)
			c.Fp64Contents = append(c.Fp64Contents, v)
		case elemBytes:
			if tok[0] != '"' {
				err = fmt.Errorf("expected a string, got %s", tokenKind(tok))
				break
			}
			c.BytesContents = append(c.BytesContents, decodeString(tok))
		case elemHalf:
			var v float64
			v, err = parseFloat(dt, tok, 64)
			if err == nil {
				h, ok := dt.half.fromFloat64(v)
				if !ok {
					err = fmt.Errorf("%s is out of range for %s", tok, dt.name)
				}
				half = binary.LittleEndian.AppendUint16(half, h)
			}
		}
		if err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		return tensorData{}, tensorErrorf(field, "%v", err)
	}
	if got != n {
		return tensorData{}, tensorErrorf(field, "expected %d elements for shape %s, got %d", n, formatShape(shape), got)
	}
	if dt.kind == elemHalf {
		return tensorData{raw: half, isRaw: true}, nil
	}
	return tensorData{contents: c}, nil
}

// ---------------------------------------------------------------------------------------------
// Parameters

// decodeParams converts a REST parameters object: strings, booleans, integers (int64, or
// uint64 above MaxInt64) and other numbers (double). Integers beyond uint64 become doubles.
func decodeParams(field string, m map[string]json.RawMessage) (map[string]*inference.InferParameter, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]*inference.InferParameter, len(m))
	for k, raw := range m {
		p, err := decodeParam(raw)
		if err != nil {
			return nil, tensorErrorf(field+"."+k, "%v", err)
		}
		out[k] = p
	}
	return out, nil
}

func decodeParam(raw json.RawMessage) (*inference.InferParameter, error) {
	tok := bytes.TrimSpace(raw)
	if len(tok) == 0 {
		return nil, errors.New("missing value")
	}
	switch tok[0] {
	case '"':
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_StringParam{
			StringParam: string(decodeString(tok))}}, nil
	case 't', 'f':
		return &inference.InferParameter{ParameterChoice: &inference.InferParameter_BoolParam{
			BoolParam: tok[0] == 't'}}, nil
	case 'n':
		return nil, errors.New("null is not a parameter value; use a string, number or boolean")
	case '[', '{':
		return nil, errors.New("a parameter value must be a string, number or boolean")
	}
	s := string(tok)
	if isIntegerSyntax(tok) {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return &inference.InferParameter{ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: v}}, nil
		}
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			return &inference.InferParameter{ParameterChoice: &inference.InferParameter_Uint64Param{Uint64Param: v}}, nil
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) {
		return nil, fmt.Errorf("%s is out of range for a double", s)
	}
	return &inference.InferParameter{ParameterChoice: &inference.InferParameter_DoubleParam{DoubleParam: v}}, nil
}

// appendParams appends m as a JSON object with sorted keys.
func appendParams(b []byte, field string, m map[string]*inference.InferParameter) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		switch v := m[k].GetParameterChoice().(type) {
		case *inference.InferParameter_BoolParam:
			b = strconv.AppendBool(b, v.BoolParam)
		case *inference.InferParameter_Int64Param:
			b = strconv.AppendInt(b, v.Int64Param, 10)
		case *inference.InferParameter_Uint64Param:
			b = strconv.AppendUint(b, v.Uint64Param, 10)
		case *inference.InferParameter_StringParam:
			b = appendJSONString(b, v.StringParam)
		case *inference.InferParameter_DoubleParam:
			if math.IsNaN(v.DoubleParam) || math.IsInf(v.DoubleParam, 0) {
				return nil, tensorErrorf(field+"."+k, "%v cannot be written as JSON", v.DoubleParam)
			}
			start := len(b)
			b = appendFloat(b, v.DoubleParam, 64)
			// Keep a fraction or exponent so the value reads back as a double, not an integer.
			if !bytes.ContainsAny(b[start:], ".eE") {
				b = append(b, '.', '0')
			}
		default:
			return nil, tensorErrorf(field+"."+k, "parameter has no value")
		}
	}
	return append(b, '}'), nil
}

// ---------------------------------------------------------------------------------------------
// JSON writing

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// appendFloat writes f as a JSON number in the shortest form that reads back as the same
// float of the given bit size, switching to exponent form for very small and large magnitudes.
func appendFloat(b []byte, f float64, bits int) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 32 {
			if a := float32(abs); a < 1e-6 || a >= 1e21 {
				format = 'e'
			}
		} else if abs < 1e-6 || abs >= 1e21 {
			format = 'e'
		}
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// Drop the exponent's leading zero: 1e-07 → 1e-7.
		if n := len(b); n-start >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

func appendShape(b []byte, shape []int64) []byte {
	b = append(b, '[')
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return append(b, ']')
}

// appendTypedData writes c's elements of dt as a flat JSON array.
func appendTypedData(b []byte, field string, dt *dtypeInfo, c *inference.InferTensorContents) ([]byte, error) {
	b = append(b, '[')
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	switch dt.kind {
	case elemBool:
		for _, v := range c.GetBoolContents() {
			sep()
			b = strconv.AppendBool(b, v)
		}
	case elemInt:
		for _, v := range c.GetIntContents() {
			sep()
			b = strconv.AppendInt(b, int64(v), 10)
		}
	case elemInt64:
		for _, v := range c.GetInt64Contents() {
			sep()
			b = strconv.AppendInt(b, v, 10)
		}
	case elemUint:
		for _, v := range c.GetUintContents() {
			sep()
			b = strconv.AppendUint(b, uint64(v), 10)
		}
	case elemUint64:
		for _, v := range c.GetUint64Contents() {
			sep()
			b = strconv.AppendUint(b, v, 10)
		}
	case elemFP32:
		for j, v := range c.GetFp32Contents() {
			if err := checkFinite(field, j, float64(v)); err != nil {
				return nil, err
			}
			sep()
			b = appendFloat(b, float64(v), 32)
		}
	case elemFP64:
		for j, v := range c.GetFp64Contents() {
			if err := checkFinite(field, j, v); err != nil {
				return nil, err
			}
			sep()
			b = appendFloat(b, v, 64)
		}
	case elemBytes:
		for j, v := range c.GetBytesContents() {
			if !utf8.Valid(v) {
				return nil, notUTF8(field, j)
			}
			sep()
			b = appendJSONString(b, string(v))
		}
	}
	return append(b, ']'), nil
}

// appendRawData writes the raw little-endian elements of dt in raw as a flat JSON array; raw
// has been checked by checkRaw.
func appendRawData(b []byte, field string, dt *dtypeInfo, raw []byte) ([]byte, error) {
	le := binary.LittleEndian
	b = append(b, '[')
	if dt.kind == elemBytes {
		for off, j := 0, 0; off < len(raw); j++ {
			l := int(le.Uint32(raw[off:]))
			v := raw[off+4 : off+4+l]
			off += 4 + l
			if !utf8.Valid(v) {
				return nil, notUTF8(field, j)
			}
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, string(v))
		}
		return append(b, ']'), nil
	}
	var elem func(b, e []byte) []byte
	var float func(e []byte) float64
	switch dt.name {
	case "BOOL":
		elem = func(b, e []byte) []byte { return strconv.AppendBool(b, e[0] != 0) }
	case "UINT8":
		elem = func(b, e []byte) []byte { return strconv.AppendUint(b, uint64(e[0]), 10) }
	case "UINT16":
		elem = func(b, e []byte) []byte { return strconv.AppendUint(b, uint64(le.Uint16(e)), 10) }
	case "UINT32":
		elem = func(b, e []byte) []byte { return strconv.AppendUint(b, uint64(le.Uint32(e)), 10) }
	case "UINT64":
		elem = func(b, e []byte) []byte { return strconv.AppendUint(b, le.Uint64(e), 10) }
	case "INT8":
		elem = func(b, e []byte) []byte { return strconv.AppendInt(b, int64(int8(e[0])), 10) }
	case "INT16":
		elem = func(b, e []byte) []byte { return strconv.AppendInt(b, int64(int16(le.Uint16(e))), 10) }
	case "INT32":
		elem = func(b, e []byte) []byte { return strconv.AppendInt(b, int64(int32(le.Uint32(e))), 10) }
	case "INT64":
		elem = func(b, e []byte) []byte { return strconv.AppendInt(b, int64(le.Uint64(e)), 10) }
	case "FP16", "BF16":
		float = func(e []byte) float64 { return dt.half.toFloat64(le.Uint16(e)) }
	case "FP32":
		float = func(e []byte) float64 { return float64(math.Float32frombits(le.Uint32(e))) }
	case "FP64":
		float = func(e []byte) float64 { return math.Float64frombits(le.Uint64(e)) }
	}
	// FP16 and BF16 values are exact in float32, so they print in float32's shortest form.
	bits := 32
	if dt.name == "FP64" {
		bits = 64
	}
	size := int(dt.size)
	for j, off := 0, 0; off < len(raw); j, off = j+1, off+size {
		if j > 0 {
			b = append(b, ',')
		}
		e := raw[off : off+size]
		if elem != nil {
			b = elem(b, e)
			continue
		}
		v := float(e)
		if err := checkFinite(field, j, v); err != nil {
			return nil, err
		}
		b = appendFloat(b, v, bits)
	}
	return append(b, ']'), nil
}

func checkFinite(field string, j int, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return tensorErrorf(field, "element %d is %v, which JSON cannot carry", j, v)
	}
	return nil
}

func notUTF8(field string, j int) error {
	return tensorErrorf(field, "BYTES element %d is not valid UTF-8, which JSON cannot carry", j)
}

// ---------------------------------------------------------------------------------------------
// REST bodies

// jsonTensor is an input or output tensor in a REST body. Shape and data stay raw so that
// numbers keep their exact text and errors can name the tensor.
type jsonTensor struct {
	Name       string                     `json:"name"`
	Shape      json.RawMessage            `json:"shape"`
	Datatype   string                     `json:"datatype"`
	Parameters map[string]json.RawMessage `json:"parameters"`
	Data       json.RawMessage            `json:"data"`
}

type jsonInferRequest struct {
	ID         string                     `json:"id"`
	Parameters map[string]json.RawMessage `json:"parameters"`
	Inputs     *[]jsonTensor              `json:"inputs"`
	Outputs    []struct {
		Name       string                     `json:"name"`
		Parameters map[string]json.RawMessage `json:"parameters"`
	} `json:"outputs"`
}

type jsonInferResponse struct {
	ModelName    string                     `json:"model_name"`
	ModelVersion string                     `json:"model_version"`
	ID           string                     `json:"id"`
	Parameters   map[string]json.RawMessage `json:"parameters"`
	Outputs      []jsonTensor               `json:"outputs"`
}

// tensorJSONError turns an encoding/json error into a *TensorError.
func tensorJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "body"
		}
		return tensorErrorf(field, "expected %s, got JSON %s", jsonTypeName(te.Type.Kind().String()), te.Value)
	}
	return tensorErrorf("body", "invalid JSON: %v", err)
}

func jsonTypeName(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "ptr":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return goKind
}

// parseShape reads a REST shape: a flat array of integers, -1 allowed only if variable.
func parseShape(field string, raw json.RawMessage, variable bool) ([]int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, tensorErrorf(field, "missing")
	}
	shape := []int64{}
	_, err := walkArray(raw, 1, func(i int64, tok []byte) error {
		if !isNumber(tok) || !isIntegerSyntax(tok) {
			return fmt.Errorf("dimension %d: expected an integer, got %s", i, tok)
		}
		d, err := strconv.ParseInt(string(tok), 10, 64)
		if err != nil || d < 0 && !(variable && d == -1) {
			if variable {
				return fmt.Errorf("dimension %d: %s is not a size >= 0 or -1", i, tok)
			}
			return fmt.Errorf("dimension %d: %s is not a size >= 0", i, tok)
		}
		shape = append(shape, d)
		return nil
	})
	if err != nil {
		return nil, tensorErrorf(field, "%v", err)
	}
	return shape, nil
}

// decodedTensor is one REST tensor converted to proto pieces.
type decodedTensor struct {
	name, datatype string
	shape          []int64
	params         map[string]*inference.InferParameter
	data           tensorData
}

// decodeTensors converts REST tensors (inputs or outputs, named by what), taking the data of
// tensors with binary_data_size from binary in order. If any tensor ends up raw, every tensor
// is converted to raw, since the protocol does not let a message mix the two.
func decodeTensors(what string, ts []jsonTensor, binary []byte, haveBinary bool) ([]decodedTensor, bool, error) {
	out := make([]decodedTensor, len(ts))
	dts := make([]*dtypeInfo, len(ts))
	counts := make([]int64, len(ts))
	budget := int64(DefaultMaxElements)
	// Check every header before parsing any data, so an oversized message costs little.
	for i, t := range ts {
		field := fmt.Sprintf("%s[%d]", what, i)
		dt, err := lookupDatatype(field+".datatype", t.Datatype)
		if err != nil {
			return nil, false, err
		}
		shape, err := parseShape(field+".shape", t.Shape, false)
		if err != nil {
			return nil, false, err
		}
		n, err := countWithin(field+".shape", shape, budget, DefaultMaxElements, what)
		if err != nil {
			return nil, false, err
		}
		budget -= n
		params, err := decodeParams(field+".parameters", t.Parameters)
		if err != nil {
			return nil, false, err
		}
		dts[i], counts[i] = dt, n
		out[i] = decodedTensor{name: t.Name, datatype: t.Datatype, shape: shape, params: params}
	}
	anyRaw := false
	for i, t := range ts {
		field := fmt.Sprintf("%s[%d]", what, i)
		d, dt, n := &out[i], dts[i], counts[i]
		hasData := len(t.Data) > 0 && string(t.Data) != "null"
		if p, ok := d.params[paramBinaryDataSize]; ok {
			pf := field + ".parameters." + paramBinaryDataSize
			if !haveBinary {
				return nil, false, tensorErrorf(pf, "is set but the body has no binary part (no %s header)", headerContentLength)
			}
			if hasData {
				return nil, false, tensorErrorf(field+".data", "must be absent when %s is set", paramBinaryDataSize)
			}
			size, ok := binarySize(p)
			if !ok {
				return nil, false, tensorErrorf(pf, "must be an integer >= 0")
			}
			if size > uint64(len(binary)) {
				return nil, false, tensorErrorf(pf, "is %d but only %d bytes of binary data remain", size, len(binary))
			}
			chunk := binary[:size:size]
			binary = binary[size:]
			if err := checkRaw(field+" binary data", dt, d.shape, n, chunk); err != nil {
				return nil, false, err
			}
			delete(d.params, paramBinaryDataSize)
			if len(d.params) == 0 {
				d.params = nil
			}
			d.data = tensorData{raw: chunk, isRaw: true}
		} else {
			if !hasData {
				return nil, false, tensorErrorf(field+".data", "missing")
			}
			var err error
			if d.data, err = decodeData(field+".data", dt, d.shape, n, t.Data); err != nil {
				return nil, false, err
			}
		}
		anyRaw = anyRaw || d.data.isRaw
	}
	if len(binary) > 0 {
		return nil, false, tensorErrorf("body", "%d bytes of binary data are not claimed by any %s's %s",
			len(binary), strings.TrimSuffix(what, "s"), paramBinaryDataSize)
	}
	if anyRaw {
		for i := range out {
			if d := &out[i]; !d.data.isRaw {
				d.data = tensorData{raw: appendRawTyped(nil, dtypeInfos[d.datatype], d.data.contents), isRaw: true}
			}
		}
	}
	return out, anyRaw, nil
}

func binarySize(p *inference.InferParameter) (uint64, bool) {
	switch v := p.GetParameterChoice().(type) {
	case *inference.InferParameter_Int64Param:
		return uint64(v.Int64Param), v.Int64Param >= 0
	case *inference.InferParameter_Uint64Param:
		return v.Uint64Param, true
	}
	return 0, false
}

// DecodeInferRequest parses a KServe v2 REST inference request body for model and version
// (taken from the URL) into a ModelInferRequest.
//
// Each input's `data` (flat, or nested row-major up to 32 levels) goes into the typed
// InferTensorContents field matching its datatype, with integers range-checked and exact up to
// 64 bits. FP16 and BF16 numbers are rounded (to nearest, ties to even) into little-endian
// raw_input_contents; because a message may not mix raw and typed data, every other input then
// goes raw too.
//
// The binary tensor data extension is honoured: when header has Inference-Header-Content-Length
// N, the JSON is the first N bytes of body and the rest is consumed, in input order, by inputs
// whose parameters carry binary_data_size; those inputs go raw (so all do), and
// binary_data_size is dropped from the forwarded parameters. header may be nil.
//
// The request is checked with ValidateInferRequest against DefaultMaxElements. Errors are
// *TensorError.
func DecodeInferRequest(model, version string, body []byte, header http.Header) (*inference.ModelInferRequest, error) {
	jsonPart, binaryPart, haveBinary, err := splitBinary(body, header)
	if err != nil {
		return nil, err
	}
	var r jsonInferRequest
	if err := json.Unmarshal(jsonPart, &r); err != nil {
		return nil, tensorJSONError(err)
	}
	if r.Inputs == nil {
		return nil, tensorErrorf("inputs", "missing")
	}
	req := &inference.ModelInferRequest{ModelName: model, ModelVersion: version, Id: r.ID}
	if req.Parameters, err = decodeParams("parameters", r.Parameters); err != nil {
		return nil, err
	}
	ts, anyRaw, err := decodeTensors("inputs", *r.Inputs, binaryPart, haveBinary)
	if err != nil {
		return nil, err
	}
	req.Inputs = make([]*inference.ModelInferRequest_InferInputTensor, len(ts))
	if anyRaw {
		req.RawInputContents = make([][]byte, len(ts))
	}
	for i, t := range ts {
		in := &inference.ModelInferRequest_InferInputTensor{
			Name: t.name, Datatype: t.datatype, Shape: t.shape, Parameters: t.params,
		}
		if anyRaw {
			req.RawInputContents[i] = t.data.raw
		} else {
			in.Contents = t.data.contents
		}
		req.Inputs[i] = in
	}
	for i, o := range r.Outputs {
		params, err := decodeParams(fmt.Sprintf("outputs[%d].parameters", i), o.Parameters)
		if err != nil {
			return nil, err
		}
		req.Outputs = append(req.Outputs, &inference.ModelInferRequest_InferRequestedOutputTensor{
			Name: o.Name, Parameters: params,
		})
	}
	if err := ValidateInferRequest(req, DefaultMaxElements); err != nil {
		return nil, err
	}
	return req, nil
}

// splitBinary separates the JSON part of body from binary tensor data, by the
// Inference-Header-Content-Length header.
func splitBinary(body []byte, header http.Header) (jsonPart, binaryPart []byte, haveBinary bool, err error) {
	v := header.Get(headerContentLength)
	if v == "" {
		return body, nil, false, nil
	}
	n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if perr != nil || n < 0 {
		return nil, nil, false, tensorErrorf(headerContentLength, "%q is not a length", v)
	}
	if n > int64(len(body)) {
		return nil, nil, false, tensorErrorf(headerContentLength, "%d exceeds the body's %d bytes", n, len(body))
	}
	return body[:n], body[n:], true, nil
}

// EncodeInferRequest renders req as a KServe v2 REST request body for a REST upstream: id,
// parameters, inputs with flat `data` (from typed or raw contents; FP16 and BF16 as numbers)
// and outputs. The model name and version belong in the URL and are not written. req must
// pass ValidateInferRequest; NaN, infinities and BYTES that are not UTF-8 cannot be written as
// JSON and fail with a *TensorError.
func EncodeInferRequest(req *inference.ModelInferRequest) ([]byte, error) {
	if err := ValidateInferRequest(req, math.MaxInt64); err != nil {
		return nil, err
	}
	_, size := InputSize(req)
	b := make([]byte, 0, 256+2*min(size, 1<<28))
	b = append(b, '{')
	var err error
	comma := false
	if req.GetId() != "" {
		b = append(b, `"id":`...)
		b = appendJSONString(b, req.GetId())
		comma = true
	}
	if len(req.GetParameters()) > 0 {
		if comma {
			b = append(b, ',')
		}
		b = append(b, `"parameters":`...)
		if b, err = appendParams(b, "parameters", req.GetParameters()); err != nil {
			return nil, err
		}
		comma = true
	}
	if comma {
		b = append(b, ',')
	}
	b = append(b, `"inputs":[`...)
	raw := req.GetRawInputContents()
	for i, in := range req.GetInputs() {
		if i > 0 {
			b = append(b, ',')
		}
		field := fmt.Sprintf("inputs[%d]", i)
		var r []byte
		if len(raw) > 0 {
			r = raw[i]
		}
		b, err = appendTensor(b, field, in.GetName(), in.GetDatatype(), in.GetShape(), in.GetParameters(),
			in.GetContents(), r, len(raw) > 0)
		if err != nil {
			return nil, err
		}
	}
	b = append(b, ']')
	if len(req.GetOutputs()) > 0 {
		b = append(b, `,"outputs":[`...)
		for i, o := range req.GetOutputs() {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendJSONString(b, o.GetName())
			if len(o.GetParameters()) > 0 {
				b = append(b, `,"parameters":`...)
				if b, err = appendParams(b, fmt.Sprintf("outputs[%d].parameters", i), o.GetParameters()); err != nil {
					return nil, err
				}
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendTensor writes one REST tensor object with flat data.
func appendTensor(b []byte, field, name, dtName string, shape []int64, params map[string]*inference.InferParameter,
	c *inference.InferTensorContents, raw []byte, isRaw bool) ([]byte, error) {
	dt := dtypeInfos[dtName]
	var err error
	b = append(b, `{"name":`...)
	b = appendJSONString(b, name)
	b = append(b, `,"datatype":`...)
	b = appendJSONString(b, dtName)
	b = append(b, `,"shape":`...)
	b = appendShape(b, shape)
	if len(params) > 0 {
		b = append(b, `,"parameters":`...)
		if b, err = appendParams(b, field+".parameters", params); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"data":`...)
	if isRaw {
		b, err = appendRawData(b, field+".data", dt, raw)
	} else {
		b, err = appendTypedData(b, field+".data", dt, c)
	}
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// EncodeInferResponse renders resp as a KServe v2 REST response body: model_name,
// model_version (omitted when empty), id (omitted when empty), parameters and outputs whose
// flat `data` comes from typed contents or raw_output_contents (FP16 and BF16 as numbers),
// with datatype and shape. An inconsistent response, and values JSON cannot carry (NaN,
// infinities, BYTES that are not UTF-8), fail with a *TensorError.
func EncodeInferResponse(resp *inference.ModelInferResponse) ([]byte, error) {
	if resp == nil {
		return nil, tensorErrorf("", "missing response")
	}
	outs, raw := resp.GetOutputs(), resp.GetRawOutputContents()
	if len(raw) > 0 && len(raw) != len(outs) {
		return nil, tensorErrorf("raw_output_contents", "has %d entries for %d outputs", len(raw), len(outs))
	}
	size := 256
	for _, r := range raw {
		size += 2 * len(r)
	}
	b := make([]byte, 0, min(size, 1<<28))
	b = append(b, `{"model_name":`...)
	b = appendJSONString(b, resp.GetModelName())
	if resp.GetModelVersion() != "" {
		b = append(b, `,"model_version":`...)
		b = appendJSONString(b, resp.GetModelVersion())
	}
	if resp.GetId() != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, resp.GetId())
	}
	var err error
	if len(resp.GetParameters()) > 0 {
		b = append(b, `,"parameters":`...)
		if b, err = appendParams(b, "parameters", resp.GetParameters()); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"outputs":[`...)
	for i, o := range outs {
		field := fmt.Sprintf("outputs[%d]", i)
		dt, err := lookupDatatype(field+".datatype", o.GetDatatype())
		if err != nil {
			return nil, err
		}
		n, err := elementCount(field+".shape", o.GetShape(), math.MaxInt64)
		if err != nil {
			return nil, err
		}
		var r []byte
		if len(raw) > 0 {
			if typedCount(o.GetContents()) > 0 {
				return nil, tensorErrorf(field+".contents", "must be unset when raw_output_contents is used")
			}
			r = raw[i]
			err = checkRaw(fmt.Sprintf("raw_output_contents[%d]", i), dt, o.GetShape(), n, r)
		} else {
			err = checkTyped(field+".contents", dt, o.GetShape(), n, o.GetContents())
		}
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b = append(b, ',')
		}
		b, err = appendTensor(b, field, o.GetName(), o.GetDatatype(), o.GetShape(), o.GetParameters(),
			o.GetContents(), r, len(raw) > 0)
		if err != nil {
			return nil, err
		}
	}
	return append(b, ']', '}'), nil
}

// DecodeInferResponse parses a KServe v2 REST response body into a ModelInferResponse, the
// reverse of EncodeInferResponse, with the same rules for data (and the DefaultMaxElements
// bound) as DecodeInferRequest. Binary output data needs no header here: outputs whose
// parameters carry binary_data_size take their bytes, in order, from whatever follows the JSON
// object in body. Errors are *TensorError.
func DecodeInferResponse(body []byte) (*inference.ModelInferResponse, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var r jsonInferResponse
	if err := dec.Decode(&r); err != nil {
		return nil, tensorJSONError(err)
	}
	rest := body[dec.InputOffset():]
	haveBinary := false
	for _, o := range r.Outputs {
		if _, ok := o.Parameters[paramBinaryDataSize]; ok {
			haveBinary = true
		}
	}
	if !haveBinary {
		if len(bytes.TrimSpace(rest)) > 0 {
			return nil, tensorErrorf("body", "unexpected data after the JSON object")
		}
		rest = nil
	}
	resp := &inference.ModelInferResponse{ModelName: r.ModelName, ModelVersion: r.ModelVersion, Id: r.ID}
	var err error
	if resp.Parameters, err = decodeParams("parameters", r.Parameters); err != nil {
		return nil, err
	}
	ts, anyRaw, err := decodeTensors("outputs", r.Outputs, rest, haveBinary)
	if err != nil {
		return nil, err
	}
	resp.Outputs = make([]*inference.ModelInferResponse_InferOutputTensor, len(ts))
	if anyRaw {
		resp.RawOutputContents = make([][]byte, len(ts))
	}
	names := make(map[string]struct{}, len(ts))
	for i, t := range ts {
		if err := uniqueName(fmt.Sprintf("outputs[%d].name", i), t.name, names, "output"); err != nil {
			return nil, err
		}
		o := &inference.ModelInferResponse_InferOutputTensor{
			Name: t.name, Datatype: t.datatype, Shape: t.shape, Parameters: t.params,
		}
		if anyRaw {
			resp.RawOutputContents[i] = t.data.raw
		} else {
			o.Contents = t.data.contents
		}
		resp.Outputs[i] = o
	}
	return resp, nil
}

// ---------------------------------------------------------------------------------------------
// Model metadata

type jsonTensorMetadata struct {
	Name     string          `json:"name"`
	Datatype string          `json:"datatype"`
	Shape    json.RawMessage `json:"shape"`
}

type jsonModelMetadata struct {
	Name       string               `json:"name"`
	Versions   []string             `json:"versions"`
	Platform   string               `json:"platform"`
	Inputs     []jsonTensorMetadata `json:"inputs"`
	Outputs    []jsonTensorMetadata `json:"outputs"`
	Properties map[string]string    `json:"properties"`
}

// EncodeModelMetadata renders m as a KServe v2 REST model metadata body: name, versions
// (omitted when empty), platform, inputs and outputs as {name, datatype, shape} with -1 for
// variable dimensions, and properties (OIP's optional string map, omitted when empty).
// Datatypes are passed through as the model server reported them.
func EncodeModelMetadata(m *inference.ModelMetadataResponse) ([]byte, error) {
	if m == nil {
		return nil, tensorErrorf("", "missing model metadata")
	}
	b := []byte(`{"name":`)
	b = appendJSONString(b, m.GetName())
	if len(m.GetVersions()) > 0 {
		b = append(b, `,"versions":[`...)
		for i, v := range m.GetVersions() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, v)
		}
		b = append(b, ']')
	}
	b = append(b, `,"platform":`...)
	b = appendJSONString(b, m.GetPlatform())
	for _, list := range []struct {
		key string
		ts  []*inference.ModelMetadataResponse_TensorMetadata
	}{{"inputs", m.GetInputs()}, {"outputs", m.GetOutputs()}} {
		b = append(b, `,"`...)
		b = append(b, list.key...)
		b = append(b, `":[`...)
		for i, t := range list.ts {
			for j, d := range t.GetShape() {
				if d < -1 {
					return nil, tensorErrorf(fmt.Sprintf("%s[%d].shape", list.key, i),
						"dimension %d is %d; want a size >= 0 or -1", j, d)
				}
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendJSONString(b, t.GetName())
			b = append(b, `,"datatype":`...)
			b = appendJSONString(b, t.GetDatatype())
			b = append(b, `,"shape":`...)
			b = appendShape(b, t.GetShape())
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(m.GetProperties()) > 0 {
		keys := make([]string, 0, len(m.GetProperties()))
		for k := range m.GetProperties() {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"properties":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, m.GetProperties()[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// DecodeModelMetadata parses a KServe v2 REST model metadata body, the reverse of
// EncodeModelMetadata. Shapes must be integers >= 0 or -1. Errors are *TensorError.
func DecodeModelMetadata(body []byte) (*inference.ModelMetadataResponse, error) {
	var r jsonModelMetadata
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, tensorJSONError(err)
	}
	m := &inference.ModelMetadataResponse{
		Name: r.Name, Versions: r.Versions, Platform: r.Platform, Properties: r.Properties,
	}
	var err error
	if m.Inputs, err = decodeTensorMetadata("inputs", r.Inputs); err != nil {
		return nil, err
	}
	if m.Outputs, err = decodeTensorMetadata("outputs", r.Outputs); err != nil {
		return nil, err
	}
	return m, nil
}

func decodeTensorMetadata(what string, ts []jsonTensorMetadata) ([]*inference.ModelMetadataResponse_TensorMetadata, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	out := make([]*inference.ModelMetadataResponse_TensorMetadata, len(ts))
	for i, t := range ts {
		shape, err := parseShape(fmt.Sprintf("%s[%d].shape", what, i), t.Shape, true)
		if err != nil {
			return nil, err
		}
		out[i] = &inference.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: shape}
	}
	return out, nil
}
