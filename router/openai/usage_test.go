package openai

import (
	"bytes"
	"encoding/json"
	"testing"
)

// decodedUsage is what encoding/json makes of a document's top-level usage, the behaviour
// topUsage keeps without decoding the rest.
func decodedUsage(doc []byte) (tokenUsage, bool) {
	var v struct {
		Usage tokenUsage `json:"usage"`
	}
	err := json.Unmarshal(doc, &v)
	return v.Usage, err == nil
}

var usageDocs = []string{
	`{"id":"c","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`,
	`{"usage":{"input_tokens":3,"output_tokens":4}}`,
	`{"usage":{"prompt_tokens":9,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":4}}}`,
	`{"usage":null}`,
	`{"usage":{}}`,
	`{"usage":{"total_tokens":null}}`,
	`{"usage":{"total_tokens":1.5}}`,
	`{"usage":{"total_tokens":1e3}}`,
	`{"usage":{"total_tokens":"7"}}`,
	`{"usage":{"total_tokens":99999999999999999999}}`,
	`{"usage":{"total_tokens":-4}}`,
	`{"usage":[1]}`,
	`{"usage":5}`,
	`{"USAGE":{"Total_Tokens":6}}`,
	`{"u\u0073age":{"total_tokens":6}}`,
	`{"usage":{"total_tokens":5},"usage":{"prompt_tokens":1}}`,
	`{"usage":{"total_tokens":5},"usage":null}`,
	`{"usage":{"total_tokens":5}} trailing`,
	`{"usage":{"total_tokens":5}`,
	`[{"usage":{"total_tokens":5}}]`,
	`{"a":"\"usage\":{","usage":{"total_tokens":2}}`,
	`{"nested":{"usage":{"total_tokens":3}}}`,
	` {"usage" : { "total_tokens" : 8 } } `,
}

func TestTopUsageMatchesDecoding(t *testing.T) {
	for _, doc := range usageDocs {
		got, gotOK := topUsage([]byte(doc))
		want, wantOK := decodedUsage([]byte(doc))
		if gotOK != wantOK || (gotOK && got != want) {
			t.Errorf("topUsage(%s) = %+v, %v; encoding/json: %+v, %v", doc, got, gotOK, want, wantOK)
		}
	}
}

func TestUsageScan(t *testing.T) {
	tests := []struct {
		in                   string
		total, input, output int64
	}{
		{`{"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`, 10, 9, 1},
		{"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\n\n", 5, 2, 3},
		{"data: {\"choices\":[],\"usage\":{\"total_tokens\":\"x\"}}\n\n", 0, 0, 0},
		{`{"usage": {"total_tokens":10}}`, 0, 0, 0}, // only the compact form is looked for
		{`{"choices":[]}`, 0, 0, 0},
	}
	for _, tt := range tests {
		var u usage
		u.scan([]byte(tt.in))
		if u.total != tt.total || u.input != tt.input || u.output != tt.output {
			t.Errorf("scan(%q) = total %d, input %d, output %d; want %d, %d, %d", tt.in, u.total, u.input, u.output, tt.total, tt.input, tt.output)
		}
	}
}

// FuzzUsage checks that the usage scanner reads exactly what encoding/json decodes from any
// document.
func FuzzUsage(f *testing.F) {
	for _, doc := range usageDocs {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		doc = bytes.TrimSpace(doc)
		if len(doc) == 0 {
			return
		}
		got, gotOK := topUsage(doc)
		want, wantOK := decodedUsage(doc)
		if gotOK != wantOK || (gotOK && got != want) {
			t.Fatalf("topUsage(%q) = %+v, %v; encoding/json: %+v, %v", doc, got, gotOK, want, wantOK)
		}
	})
}

func BenchmarkUsageScan(b *testing.B) {
	body := []byte(`{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`)
	b.ReportAllocs()
	for b.Loop() {
		var u usage
		u.scan(body)
	}
}
