package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/switchyard-ai/switchyard/router"
)

// peeked is what classification needs from an OpenAI request body, found in one pass without
// decoding the body into structs.
type peeked struct {
	model                string
	modelStart, modelEnd int // byte span of the model's JSON string, quotes included
	optsStart, optsEnd   int // byte span of the stream_options value; 0, 0 when absent
	stream               bool
	includeUsage         bool
	maxTokens            int // max_completion_tokens, else max_tokens; 0 when unset
	n                    int // choices requested; 1 when unset
	user                 string
	previous             string // the Responses API's previous_response_id
	promptTokens         int
	prompt               []byte // raw JSON of messages or prompt, for prefix hashing
}

// perMessageTokens approximates what chat templates add around each message (role markers
// and separators).
const perMessageTokens = 4

var errNotObject = errors.New("request body must be a JSON object")

// peekError is a classification failure naming the offending field.
type peekError struct {
	param, msg string
}

func (e *peekError) Error() string { return e.msg }

// DefaultMaxJSONDepth is how deeply objects and arrays may nest in a request body unless
// configured otherwise. Chat requests nest a handful of levels; tool schemas a few dozen.
const DefaultMaxJSONDepth = 64

// peek is peekLimit with DefaultMaxJSONDepth.
func peek(body []byte) (peeked, error) { return peekLimit(body, DefaultMaxJSONDepth) }

// peekLimit reads the fields routing needs from body. It fails on malformed JSON, on nesting
// deeper than maxDepth, on a body that is not an object, on a missing model, and on routing
// fields of the wrong type.
func peekLimit(body []byte, maxDepth int) (peeked, error) {
	p := peeked{n: 1}
	switch validJSON(body, maxDepth) {
	case nil:
	case errJSONDepth:
		return p, &peekError{msg: "The JSON body of your request nests objects and arrays more than " +
			strconv.Itoa(maxDepth) + " levels deep."}
	default:
		return p, &peekError{msg: "We could not parse the JSON body of your request: it is not valid JSON."}
	}
	s := scanner{b: body}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return p, &peekError{msg: errNotObject.Error()}
	}
	s.i++
	for {
		s.ws()
		if s.b[s.i] == '}' {
			break
		}
		ks, ke := s.str()
		key := string(body[ks:ke])
		s.ws()
		s.i++ // ':'
		s.ws()
		vs := s.i
		tokens := 0
		switch key {
		case "messages":
			tokens = s.count(true)
		case "prompt", "input", "instructions", "tools", "functions":
			tokens = s.count(false)
		default:
			s.skip()
		}
		if err := p.field(key, body[vs:s.i], vs, tokens); err != nil {
			return p, err
		}
		s.ws()
		if s.b[s.i] == ',' {
			s.i++
		}
	}
	if p.model == "" {
		return p, &peekError{param: "model", msg: "you must provide a model parameter"}
	}
	return p, nil
}

// field reads one top-level member: key, its raw value val starting at offset at of the body,
// and the estimated tokens of the values whose text is counted (messages, prompt, input,
// instructions, tools and functions).
func (p *peeked) field(key string, val []byte, at, tokens int) error {
	null := string(val) == "null"
	switch key {
	case "model":
		m, ok := jsonString(val)
		if !ok {
			return &peekError{param: "model", msg: "model must be a string"}
		}
		p.model, p.modelStart, p.modelEnd = m, at, at+len(val)
	case "stream":
		if !null && string(val) != "true" && string(val) != "false" {
			return &peekError{param: "stream", msg: "stream must be a boolean"}
		}
		p.stream = string(val) == "true"
	case "stream_options":
		p.optsStart, p.optsEnd = at, at+len(val)
		if null {
			return nil
		}
		if val[0] != '{' {
			return &peekError{param: "stream_options", msg: "stream_options must be an object"}
		}
		p.includeUsage = objectBool(val, "include_usage")
	case "max_tokens", "max_completion_tokens", "max_output_tokens":
		if null {
			return nil
		}
		v, err := strconv.Atoi(string(val))
		if err != nil || v < 0 {
			return &peekError{param: key, msg: key + " must be a non-negative integer"}
		}
		if key != "max_tokens" || p.maxTokens == 0 {
			p.maxTokens = v
		}
	case "n":
		if null {
			return nil
		}
		v, err := strconv.Atoi(string(val))
		if err != nil || v < 1 {
			return &peekError{param: "n", msg: "n must be a positive integer"}
		}
		p.n = v
	case "user":
		if null {
			return nil
		}
		u, ok := jsonString(val)
		if !ok {
			return &peekError{param: "user", msg: "user must be a string"}
		}
		p.user = u
	case "messages", "prompt", "input":
		p.promptTokens += tokens
		p.prompt = val
	case "previous_response_id":
		p.previous, _ = jsonString(val)
	case "instructions", "tools", "functions": // instructions: the Responses API's system prompt
		p.promptTokens += tokens
	}
	return nil
}

// request fills a router.Request from the peeked fields.
func (p *peeked) request() router.Request {
	return router.Request{
		Model: p.model, PromptTokens: p.promptTokens, MaxTokens: p.maxTokens * p.n,
		Stream: p.stream, IncludeUsage: p.stream && p.includeUsage, User: p.user,
		// Raw JSON of the messages: a conversation that grows by appending messages keeps its
		// earlier blocks, and the same system prompt gives the same first blocks.
		PrefixHashes: router.PrefixHashes(p.prompt, router.DefaultPrefixBlockBytes, router.DefaultPrefixMaxBlocks),
	}
}

// forTarget returns the body to send to target t, as slices to send one after another: the
// model renamed when the route maps it onto another upstream name, and usage asked for when
// askUsage is set; body itself when neither applies. Nothing is copied.
func (p *peeked) forTarget(body []byte, model string, t router.Target, askUsage bool) [][]byte {
	rename := t.Route.TargetModel != model
	if !rename && !askUsage {
		return [][]byte{body}
	}
	if !rename {
		return p.edit(body, "", askUsage)
	}
	return p.edit(body, t.Route.TargetModel, askUsage)
}

// rewrite returns body with the model value replaced by model (when model is not empty) and,
// when askUsage is set, stream_options.include_usage turned on so that a stream reports its
// usage. It copies; body is kept. Other bytes pass through unchanged.
func (p *peeked) rewrite(body []byte, model string, askUsage bool) []byte {
	return bytes.Join(p.edit(body, model, askUsage), nil)
}

// edit is rewrite as slices to send one after another: the runs of body between the edits,
// which are not copied, and the edits' new bytes.
func (p *peeked) edit(body []byte, model string, askUsage bool) [][]byte {
	type edit struct {
		start, end int
		with       []byte
	}
	var edits []edit
	if model != "" {
		q, _ := json.Marshal(model)
		edits = append(edits, edit{p.modelStart, p.modelEnd, q})
	}
	if askUsage {
		switch {
		case p.optsEnd == 0: // absent: add it first in the object
			open := bytes.IndexByte(body, '{') + 1
			edits = append(edits, edit{open, open, []byte(`"stream_options":{"include_usage":true},`)})
		case body[p.optsStart] != '{': // null
			edits = append(edits, edit{p.optsStart, p.optsEnd, []byte(`{"include_usage":true}`)})
		default: // an object: add the key last, so it wins over an earlier include_usage
			inner := bytes.TrimSpace(body[p.optsStart+1 : p.optsEnd-1])
			with := []byte(`,"include_usage":true}`)
			if len(inner) == 0 {
				with = with[1:]
			}
			edits = append(edits, edit{p.optsEnd - 1, p.optsEnd, with})
		}
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	out := make([][]byte, 0, 2*len(edits)+1)
	at := 0
	for _, e := range edits {
		out = append(out, body[at:e.start], e.with)
		at = e.end
	}
	return append(out, body[at:])
}

// jsonString decodes a JSON string value; ok is false for any other JSON type.
func jsonString(val []byte) (string, bool) {
	if len(val) < 2 || val[0] != '"' {
		return "", false
	}
	inner := val[1 : len(val)-1]
	for _, c := range inner {
		// Escapes and bytes past ASCII (which may be invalid UTF-8, decoded as U+FFFD) take
		// the decoder.
		if c == '\\' || c >= utf8.RuneSelf {
			var s string
			if json.Unmarshal(val, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return string(inner), true
}

// objectBool reports whether the JSON object obj has key set to true.
func objectBool(obj []byte, key string) bool {
	s := scanner{b: obj, i: 1}
	for {
		s.ws()
		if s.b[s.i] == '}' {
			return false
		}
		ks, ke := s.str()
		s.ws()
		s.i++
		s.ws()
		vs := s.i
		s.skip()
		if string(obj[ks:ke]) == key {
			return string(obj[vs:s.i]) == "true"
		}
		s.ws()
		if s.b[s.i] == ',' {
			s.i++
		}
	}
}

// count consumes one value, as skip does, and estimates the tokens in every string inside it
// (object keys excluded), counts each integer in a token array as one token, and, for chat
// messages, adds the per-message template overhead. Values of "url" keys (often base64
// images) are skipped: their cost is not textual. It walks iteratively, so nesting depth costs
// no stack, and reads each byte once.
func (s *scanner) count(messages bool) int {
	tokens := 0
	depth := 0
	skipNext := false
	for {
		switch c := s.b[s.i]; {
		case c == '"':
			st, en := s.str()
			if depth > 0 {
				j := s.i
				for j < len(s.b) && isSpace(s.b[j]) {
					j++
				}
				if j < len(s.b) && s.b[j] == ':' { // a key
					skipNext = string(s.b[st:en]) == "url"
					continue
				}
			}
			if !skipNext {
				tokens += router.EstimateTokens(s.b[st:en])
			}
			skipNext = false
		case c == '{':
			if messages && depth == 1 {
				tokens += perMessageTokens
			}
			depth++
			s.i++
		case c == '[':
			depth++
			s.i++
		case c == '}' || c == ']':
			depth--
			s.i++
		case c == '-' || (c >= '0' && c <= '9'):
			for s.i < len(s.b) && !isDelim(s.b[s.i]) {
				s.i++
			}
			if !messages {
				tokens++
			}
			skipNext = false
		case c == 't' || c == 'f' || c == 'n':
			for s.i < len(s.b) && !isDelim(s.b[s.i]) {
				s.i++
			}
			skipNext = false
		default:
			s.i++
		}
		if depth == 0 {
			return tokens
		}
	}
}

// scanner walks JSON already known to be valid.
type scanner struct {
	b []byte
	i int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDelim(c byte) bool { return c == ',' || c == ']' || c == '}' || isSpace(c) }

func (s *scanner) ws() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// str consumes a string at s.i and returns the span of its contents, without quotes. It jumps
// from quote to quote with bytes.IndexByte, which reads long text many bytes at a time; a
// quote after an odd run of backslashes is escaped and the search goes on.
func (s *scanner) str() (start, end int) {
	b := s.b
	start = s.i + 1
	i := start
	for {
		i += bytes.IndexByte(b[i:], '"') // valid JSON: the string is closed
		k := i
		for b[k-1] == '\\' {
			k--
		}
		if (i-k)%2 == 0 {
			break
		}
		i++
	}
	s.i = i + 1
	return start, i
}

// skip consumes one value of any type, iteratively.
func (s *scanner) skip() {
	depth := 0
	for {
		switch c := s.b[s.i]; c {
		case '"':
			s.str()
		case '{', '[':
			depth++
			s.i++
		case '}', ']':
			depth--
			s.i++
		default:
			if depth == 0 {
				for s.i < len(s.b) && !isDelim(s.b[s.i]) {
					s.i++
				}
				return
			}
			s.i++
		}
		if depth == 0 {
			return
		}
	}
}
