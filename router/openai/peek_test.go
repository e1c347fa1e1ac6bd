package openai

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestPeek(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		want      peeked
		minPrompt int
		maxPrompt int
		wantErr   string
		wantParam string
	}{
		{name: "chat", body: `{"model":"m","messages":[{"role":"user","content":"Hello there, how are you?"}]}`,
			want: peeked{model: "m", n: 1}, minPrompt: 8, maxPrompt: 14},
		{name: "stream with usage", body: `{"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true},"model":"m"}`,
			want: peeked{model: "m", n: 1, stream: true, includeUsage: true}},
		{name: "stream null options", body: `{"model":"m","stream":null,"stream_options":null}`, want: peeked{model: "m", n: 1}},
		{name: "max_completion_tokens wins", body: `{"max_completion_tokens":50,"model":"m","max_tokens":10}`,
			want: peeked{model: "m", n: 1, maxTokens: 50}},
		{name: "max_tokens alone", body: `{"model":"m","max_tokens":10,"n":3}`, want: peeked{model: "m", n: 3, maxTokens: 10}},
		{name: "escaped model and user", body: `{"model":"a\/b\u00e9","user":"u\"1"}`, want: peeked{model: "a/bé", n: 1, user: `u"1`}},
		{name: "token array prompt", body: `{"model":"m","prompt":[1,2,3,4,5]}`, want: peeked{model: "m", n: 1}, minPrompt: 5, maxPrompt: 5},
		{name: "nested token arrays", body: `{"model":"m","input":[[1,2],[3]]}`, want: peeked{model: "m", n: 1}, minPrompt: 3, maxPrompt: 3},
		{name: "image url skipped", body: `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,` + strings.Repeat("QUJD", 1000) + `"}}]}]}`,
			want: peeked{model: "m", n: 1}, minPrompt: 4, maxPrompt: 12},
		{name: "escapes before the model", body: `{"messages":[{"role":"user","content":"say \"hi\" \\"}],"x":"\\\\","model":"m"}`,
			want: peeked{model: "m", n: 1}, minPrompt: 6, maxPrompt: 12},
		{name: "long prompt estimated from samples", body: `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("The quick brown fox jumps over the lazy dog. ", 4000) + `"}]}`,
			want: peeked{model: "m", n: 1}, minPrompt: 38000, maxPrompt: 42000},
		{name: "whitespace everywhere", body: " {\n \"model\" : \"m\" ,\n \"stream\" : true \n}\n", want: peeked{model: "m", n: 1, stream: true}},
		{name: "malformed", body: `{"model":"m"`, wantErr: "not valid JSON"},
		{name: "empty", body: ``, wantErr: "not valid JSON"},
		{name: "array", body: `[{"model":"m"}]`, wantErr: "JSON object"},
		{name: "no model", body: `{"messages":[]}`, wantErr: "model", wantParam: "model"},
		{name: "empty model", body: `{"model":""}`, wantErr: "model", wantParam: "model"},
		{name: "model number", body: `{"model":1}`, wantErr: "string", wantParam: "model"},
		{name: "stream string", body: `{"model":"m","stream":"yes"}`, wantErr: "boolean", wantParam: "stream"},
		{name: "max_tokens float", body: `{"model":"m","max_tokens":1.5}`, wantErr: "integer", wantParam: "max_tokens"},
		{name: "negative max tokens", body: `{"model":"m","max_completion_tokens":-1}`, wantErr: "integer", wantParam: "max_completion_tokens"},
		{name: "n zero", body: `{"model":"m","n":0}`, wantErr: "positive", wantParam: "n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := peek([]byte(tt.body))
			if tt.wantErr != "" {
				pe, ok := err.(*peekError)
				if !ok || !strings.Contains(pe.msg, tt.wantErr) || pe.param != tt.wantParam {
					t.Fatalf("err = %#v, want message with %q and param %q", err, tt.wantErr, tt.wantParam)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.promptTokens < tt.minPrompt || got.promptTokens > tt.maxPrompt {
				t.Errorf("promptTokens = %d, want in [%d, %d]", got.promptTokens, tt.minPrompt, tt.maxPrompt)
			}
			got.promptTokens, got.modelStart, got.modelEnd, got.optsStart, got.optsEnd, got.prompt = 0, 0, 0, 0, 0, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("peek = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRequestMaxTokensTimesN(t *testing.T) {
	p, err := peek([]byte(`{"model":"m","max_tokens":10,"n":3,"stream":false,"stream_options":{"include_usage":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	r := p.request()
	if r.MaxTokens != 30 || r.IncludeUsage {
		t.Errorf("request = %+v; want MaxTokens 30 and no usage without stream", r)
	}
}

func TestRewriteAsksForUsage(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"model":"m","stream":true}`, `{"stream_options":{"include_usage":true},"model":"x","stream":true}`},
		{`{"model":"m","stream_options":null}`, `{"model":"x","stream_options":{"include_usage":true}}`},
		{`{"model":"m","stream_options":{ }}`, `{"model":"x","stream_options":{ "include_usage":true}}`},
		{`{"stream_options":{"include_usage":false,"include_obfuscation":false},"model":"m"}`,
			`{"stream_options":{"include_usage":false,"include_obfuscation":false,"include_usage":true},"model":"x"}`},
	}
	for _, tt := range tests {
		p, err := peek([]byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(p.rewrite([]byte(tt.in), "x", true)); got != tt.want {
			t.Errorf("rewrite(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestRewriteModel(t *testing.T) {
	body := []byte(`{"a":{"model":"x"},"model": "short" ,"b":[1]}`)
	p, err := peek(body)
	if err != nil {
		t.Fatal(err)
	}
	got := p.rewrite(body, `org/"quoted" model`, false)
	want := `{"a":{"model":"x"},"model": "org/\"quoted\" model" ,"b":[1]}`
	if string(got) != want {
		t.Errorf("rewrite = %s, want %s", got, want)
	}
	if string(body) != `{"a":{"model":"x"},"model": "short" ,"b":[1]}` {
		t.Error("rewrite modified its input")
	}
}

// FuzzPeek checks that peek never panics, accepts only valid JSON objects with a string model,
// agrees with encoding/json on the routing fields, and that a rewrite keeps the body valid.
func FuzzPeek(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"a\"b","prompt":[[1,2],[3]],"max_tokens":5,"n":2,"user":"\u00e9"}`,
		`{"model":"m","input":["x","y"],"extra":{"model":"inner","deep":[[[[{}]]]]}}`,
		`{}`, `[]`, `"x"`, `{"model":null}`, `{"model":"m","max_tokens":1e3}`,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"model":"m","x":"\u00e9\ud800\n\"","y":[-0.5e+3,0,1E2,true,false,null]}`))
	f.Add([]byte(`{"model":"m","x":"` + strings.Repeat("abcdefg\\", 5) + `"}`))
	f.Add([]byte("{\"model\":\"m\x01\"}"))
	f.Add([]byte("{\"model\":\"\xf2\"}")) // found by the fuzzer: invalid UTF-8 decodes as U+FFFD
	f.Fuzz(func(t *testing.T, body []byte) {
		// encoding/json refuses nesting past 10000 levels.
		if got, want := validJSON(body, 10000) == nil, json.Valid(body); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", body, got, want)
		}
		p, err := peek(body)
		if err != nil {
			return
		}
		// Model servers match keys exactly (encoding/json's struct decoding would not), and the
		// last of duplicate keys wins: a map decode gives both.
		var ref map[string]json.RawMessage
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("peek accepted %q, which is not a JSON object: %v", body, err)
		}
		var model string
		if err := json.Unmarshal(ref["model"], &model); err != nil || model != p.model {
			t.Fatalf("model %q, encoding/json says %q (%v)", p.model, model, err)
		}
		var stream *bool
		if raw, ok := ref["stream"]; ok && json.Unmarshal(raw, &stream) == nil && stream != nil && *stream != p.stream {
			t.Fatalf("stream %v, encoding/json says %v", p.stream, *stream)
		}
		out := p.rewrite(body, "rewritten", true)
		var after map[string]json.RawMessage
		var opts map[string]json.RawMessage
		if err := json.Unmarshal(out, &after); err != nil || string(after["model"]) != `"rewritten"` ||
			json.Unmarshal(after["stream_options"], &opts) != nil || string(opts["include_usage"]) != "true" {
			t.Fatalf("rewrite of %q gave %q (%v)", body, out, err)
		}
	})
}

func BenchmarkPeek(b *testing.B) {
	for _, size := range []int{1 << 10, 256 << 10} {
		msg := strings.Repeat("The quick brown fox jumps over the lazy dog. ", size/45)
		body := []byte(`{"model":"m","stream":true,"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` + msg + `"}]}`)
		b.Run(byteSize(len(body)), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := peek(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return itoa(n>>20) + "MiB"
	}
	return itoa(n>>10) + "KiB"
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestValidJSONDepth(t *testing.T) {
	nest := func(n int) []byte {
		return []byte(strings.Repeat(`{"a":[`, n) + `1` + strings.Repeat(`]}`, n))
	}
	tests := []struct {
		name  string
		body  []byte
		depth int
		want  error
	}{
		{"flat", []byte(`{"model":"m"}`), 1, nil},
		{"empty containers count", []byte(`{"a":[{}]}`), 3, nil},
		{"one too deep", []byte(`{"a":[{}]}`), 2, errJSONDepth},
		{"at the limit", nest(32), 64, nil},
		{"past the limit", nest(33), 64, errJSONDepth},
		{"deep beyond the small stack", nest(5000), 10000, nil},
		{"invalid inside", []byte(`{"a":[1,]}`), 64, errInvalidJSON},
		{"trailing data", []byte(`{} {}`), 64, errInvalidJSON},
		{"leading zero", []byte(`{"a":01}`), 64, errInvalidJSON},
		{"bad escape", []byte(`{"a":"\x"}`), 64, errInvalidJSON},
		{"control character", []byte("{\"a\":\"\t\"}"), 64, errInvalidJSON},
		{"unterminated long string", []byte(`{"a":"` + strings.Repeat("x", 100)), 64, errInvalidJSON},
		{"escaped quotes in long text", []byte(`{"a":"` + strings.Repeat(`abcdefghijklmnop\"`, 50) + `"}`), 64, nil},
		{"escaped backslash before the quote", []byte(`{"a":"` + strings.Repeat("x", 40) + `\\"}`), 64, nil},
		{"control character deep in text", []byte("{\"a\":\"" + strings.Repeat("x", 40) + "\x1f" + strings.Repeat("x", 40) + "\"}"), 64, errInvalidJSON},
		{"escape at the end", []byte(`{"a":"` + strings.Repeat("x", 40) + `\`), 64, errInvalidJSON},
		{"short unicode escape", []byte(`{"a":"\u12"}`), 64, errInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validJSON(tt.body, tt.depth); got != tt.want {
				t.Errorf("validJSON = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := peekLimit(nest(10), 8); err == nil || !strings.Contains(err.Error(), "8 levels") {
		t.Errorf("peekLimit past the depth: %v", err)
	}
}
