package openai

import (
	"bytes"
	"strconv"
)

// maxDecodeDepth is the nesting encoding/json accepts; usage scanning accepts the same
// documents it would.
const maxDecodeDepth = 10000

// topUsage reads the top-level "usage" object of the JSON document doc as encoding/json would
// decode it into a struct holding a tokenUsage, without decoding anything else: ok is false
// when doc is not one valid JSON object, or when usage or one of its token counts has a type
// that would not decode (a count must be an integer or null). Keys match as encoding/json
// matches field names, case-insensitively; a repeated key decodes again over the earlier one.
// It allocates nothing for documents without escaped keys.
func topUsage(doc []byte) (t tokenUsage, ok bool) {
	if validJSON(doc, maxDecodeDepth) != nil {
		return t, false
	}
	doc = doc[skipSpace(doc, 0):]
	if doc[0] != '{' {
		return t, false
	}
	ok = true
	eachMember(doc, func(key, val []byte) bool {
		if bytes.EqualFold(key, []byte("usage")) {
			ok = t.decode(val)
		}
		return ok
	})
	return t, ok
}

// decode reads the token counts of a usage object into t, keeping the fields it does not
// name, as encoding/json does; it reports false when val is neither an object nor null or a
// count is not an integer that fits in int64 or null.
func (t *tokenUsage) decode(val []byte) bool {
	if string(val) == "null" {
		return true
	}
	if val[0] != '{' {
		return false
	}
	ok := true
	eachMember(val, func(key, v []byte) bool {
		var field *int64
		switch {
		case bytes.EqualFold(key, []byte("total_tokens")):
			field = &t.Total
		case bytes.EqualFold(key, []byte("prompt_tokens")):
			field = &t.Prompt
		case bytes.EqualFold(key, []byte("completion_tokens")):
			field = &t.Completion
		case bytes.EqualFold(key, []byte("input_tokens")):
			field = &t.Input
		case bytes.EqualFold(key, []byte("output_tokens")):
			field = &t.Output
		default:
			return true
		}
		if string(v) == "null" {
			return true
		}
		if c := v[0]; c != '-' && (c < '0' || c > '9') || bytes.ContainsAny(v, ".eE") {
			ok = false
			return false
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			ok = false
			return false
		}
		*field = n
		return true
	})
	return ok
}

// eachMember calls f with every key (decoded) and raw value of the JSON object obj, which
// must be valid, in order, until f returns false.
func eachMember(obj []byte, f func(key, val []byte) bool) {
	s := scanner{b: obj, i: 1}
	for {
		s.ws()
		if s.b[s.i] == '}' {
			return
		}
		ks, ke := s.str()
		key := obj[ks:ke]
		if bytes.IndexByte(key, '\\') >= 0 {
			k, _ := jsonString(obj[ks-1 : ke+1])
			key = []byte(k)
		}
		s.ws()
		s.i++ // ':'
		s.ws()
		vs := s.i
		s.skip()
		if !f(key, obj[vs:s.i]) {
			return
		}
		s.ws()
		if s.b[s.i] == ',' {
			s.i++
		}
	}
}
