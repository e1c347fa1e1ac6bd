package integration_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchyard-ai/switchyard/backends/backendstest"
)

// TestVirtualModelEndToEnd: `auto` sends short prompts to the small model and long or
// critical ones to the large one; the client sees which in x-switchyard-model, the upstream
// receives its own model name, and /v1/models lists auto.
func TestVirtualModelEndToEnd(t *testing.T) {
	small, large := backendstest.New(t, "small"), backendstest.New(t, "large")
	yaml := `
pools:
  - {name: s, metrics: none, endpoints: [` + small.URL + `]}
  - {name: l, metrics: none, endpoints: [` + large.URL + `]}
models:
  - {name: small, pool: s, target_model: llama-8b}
  - {name: large, pool: l, target_model: llama-70b}
  - name: auto
    routes:
      - when: {priorities: [critical]}
        to: [{model: large}]
      - when: {max_prompt_tokens: 200}
        to: [{model: small}]
      - to: [{model: large}]
`
	s, base := startRouter(t, yaml)
	c := newOpenAI(base)
	ask := func(prompt string, opts ...option.RequestOption) string {
		var resp *http.Response
		p := openai.ChatCompletionNewParams{Model: "auto", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}}
		if _, err := c.Chat.Completions.New(context.Background(), p, append(opts, option.WithResponseInto(&resp))...); err != nil {
			t.Fatal(err)
		}
		return resp.Header.Get("x-switchyard-model")
	}
	if got := ask("Hi there."); got != "llama-8b" {
		t.Errorf("short prompt went to %q", got)
	}
	if !strings.Contains(string(small.LastBody()), `"model":"llama-8b"`) {
		t.Errorf("small upstream got %s", small.LastBody())
	}
	if got := ask(strings.Repeat("Please summarise this long document. ", 100)); got != "llama-70b" {
		t.Errorf("long prompt went to %q", got)
	}
	if got := ask("Hi there.", option.WithHeader("x-priority", "critical")); got != "llama-70b" {
		t.Errorf("critical prompt went to %q", got)
	}
	models, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "auto,large,small" {
		t.Errorf("models = %v", ids)
	}
	_, m := httpGet(t, "http://"+s.AdminAddr()+"/metrics")
	for _, want := range []string{`switchyard_route_decisions_total{model="small",route="auto"} 1`, `switchyard_route_decisions_total{model="large",route="auto"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestSessionStickiness: turns of one conversation, by x-session-id or (when configured) by the
// OpenAI user field, all go to the endpoint that served the first.
func TestSessionStickiness(t *testing.T) {
	a, b, c := backendstest.New(t, "a"), backendstest.New(t, "b"), backendstest.New(t, "c")
	_, base := startRouter(t, poolYAML("m", "", a.URL, b.URL, c.URL)+"routing: {session_from_user: true}\n")
	for _, tt := range []struct{ name, header, body string }{
		{"header", "conv-1", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"user field", "", `{"model":"m","user":"alice","messages":[{"role":"user","content":"hi"}]}`},
	} {
		seen := map[string]int{}
		for range 12 {
			req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(tt.body))
			if tt.header != "" {
				req.Header.Set("x-session-id", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			seen[resp.Header.Get("x-switchyard-endpoint")]++
		}
		if len(seen) != 1 {
			t.Errorf("%s: one conversation went to %d endpoints: %v", tt.name, len(seen), seen)
		}
	}
	// Without a session key, sequential requests spread over the idle endpoints.
	seen := map[string]int{}
	for range 30 {
		resp := post(t, base+"/v1/chat/completions", "", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
		resp.Body.Close()
		seen[resp.Header.Get("x-switchyard-endpoint")]++
	}
	if len(seen) < 2 {
		t.Errorf("requests without a session all went to one endpoint: %v", seen)
	}
}
