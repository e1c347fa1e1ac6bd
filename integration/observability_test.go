package integration_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/switchyard-ai/switchyard/backends/sim"
	"github.com/switchyard-ai/switchyard/policy"
)

// metricValue returns the value of the sample whose name and labels contain every part, or
// -1 when no sample does.
func metricValue(t *testing.T, exposition, name string, parts ...string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(exposition, -1) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(m[1], p)
		}
		if ok {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return -1
}

// TestGenAIMetrics sends a streaming and a non-streaming chat and a request for an unknown
// model, then reads the GenAI series: token usage by type, time to first token and per
// output token for the successful generations, and the error type of the failure.
func TestGenAIMetrics(t *testing.T) {
	s := startSim(t, sim.Config{Model: "m"})
	srv, base := startRouter(t, simPoolYAML("", s)+`auth:
  api_keys: [{name: a, sha256: `+policy.HashKey("sk-a")+`, tenant: team-a}]
`)
	c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-a"), option.WithMaxRetries(0))
	p := openai.ChatCompletionNewParams{Model: "m", MaxTokens: openai.Int(12),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("count to twelve")}}
	got, err := c.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(context.Background(), p)
	var streamed openai.CompletionUsage
	for stream.Next() {
		if u := stream.Current().Usage; u.TotalTokens > 0 {
			streamed = u
		}
	}
	if stream.Err() != nil || streamed.CompletionTokens == 0 {
		t.Fatalf("stream: %v, usage %+v", stream.Err(), streamed)
	}
	if _, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "nope",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}}); err == nil {
		t.Fatal("unknown model answered")
	}
	_, m := httpGet(t, "http://"+srv.AdminAddr()+"/metrics")
	ep := `server_address="` + s.Host + `"`
	base2 := []string{`gen_ai_operation_name="chat"`, `gen_ai_request_model="m"`, `tenant="team-a"`, ep}
	if n := metricValue(t, m, "gen_ai_client_token_usage_count", append(base2, `gen_ai_token_type="output"`)...); n != 2 {
		t.Errorf("output token observations = %v, want 2", n)
	}
	wantOut := float64(got.Usage.CompletionTokens + streamed.CompletionTokens)
	if sum := metricValue(t, m, "gen_ai_client_token_usage_sum", append(base2, `gen_ai_token_type="output"`)...); sum != wantOut {
		t.Errorf("output tokens sum = %v, want %v", sum, wantOut)
	}
	wantIn := float64(got.Usage.PromptTokens + streamed.PromptTokens)
	if sum := metricValue(t, m, "gen_ai_client_token_usage_sum", append(base2, `gen_ai_token_type="input"`)...); sum != wantIn {
		t.Errorf("input tokens sum = %v, want %v", sum, wantIn)
	}
	if n := metricValue(t, m, "gen_ai_server_time_to_first_token_seconds_count", base2...); n != 2 {
		t.Errorf("time-to-first-token observations = %v, want 2", n)
	}
	if n := metricValue(t, m, "gen_ai_server_time_per_output_token_seconds_count", base2...); n != 2 {
		t.Errorf("time-per-output-token observations = %v, want 2", n)
	}
	if n := metricValue(t, m, "gen_ai_server_request_duration_seconds_count", append(base2, `error_type=""`)...); n != 2 {
		t.Errorf("successful request durations = %v, want 2", n)
	}
	if n := metricValue(t, m, "gen_ai_server_request_duration_seconds_count", `gen_ai_request_model="unknown"`, `error_type="404"`); n != 1 {
		t.Errorf("404 request durations = %v, want 1", n)
	}
	if n := metricValue(t, m, "switchyard_endpoint_healthy", `endpoint="`+s.Host+`"`); n != 1 {
		t.Errorf("endpoint health gauge = %v", n)
	}
}
