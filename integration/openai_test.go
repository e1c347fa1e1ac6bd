package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"

	"github.com/switchyard-ai/switchyard/backends/backendstest"
)

func newOpenAI(base string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
	return &c
}

func newGoOpenAI(base string) *goopenai.Client {
	cfg := goopenai.DefaultConfig("test")
	cfg.BaseURL = base + "/v1"
	return goopenai.NewClientWithConfig(cfg)
}

func chatParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")}}
}

func TestChatNonStreamingForwardsBodyUntouched(t *testing.T) {
	up := backendstest.New(t, "a")
	_, base := startRouter(t, poolYAML("m", "", up.URL))
	var resp *http.Response
	got, err := newOpenAI(base).Chat.Completions.New(context.Background(), chatParams("m"),
		option.WithJSONSet("x_vendor_extension", map[string]any{"keep": []int{1, 2}}), option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Choices[0].Message.Content; c != "hello from a" {
		t.Errorf("content = %q", c)
	}
	if got.Usage.TotalTokens != 8 {
		t.Errorf("usage = %+v", got.Usage)
	}
	if !strings.Contains(got.RawJSON(), `"x_unknown_field":true`) {
		t.Errorf("unknown response field lost: %s", got.RawJSON())
	}
	if m, e := resp.Header.Get("x-switchyard-model"), resp.Header.Get("x-switchyard-endpoint"); m != "m" || e != up.Host() {
		t.Errorf("routing headers = %q, %q; want m, %s", m, e, up.Host())
	}
	if resp.Header.Get("x-request-id") == "" || up.LastHeader().Get("X-Request-Id") != resp.Header.Get("x-request-id") {
		t.Errorf("request id not propagated: client %q upstream %q", resp.Header.Get("x-request-id"), up.LastHeader().Get("X-Request-Id"))
	}
	if up.LastHeader().Get("Authorization") != "" {
		t.Error("client credentials leaked upstream")
	}
	if !bytes.Contains(up.LastBody(), []byte(`"x_vendor_extension":{"keep":[1,2]}`)) {
		t.Errorf("unknown request field lost: %s", up.LastBody())
	}
}

func TestModelRewriteChangesOnlyModel(t *testing.T) {
	up := backendstest.New(t, "a")
	_, base := startRouter(t, poolYAML("chat", "meta-llama/Llama-3.1-8B-Instruct", up.URL))
	body := `{"messages":[{"role":"user","content":"hi"}],  "model" : "chat", "temperature":0.5,"extra":{"model":"inner"}}`
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `{"messages":[{"role":"user","content":"hi"}],  "model" : "meta-llama/Llama-3.1-8B-Instruct", "temperature":0.5,"extra":{"model":"inner"}}`
	if got := string(up.LastBody()); got != want {
		t.Errorf("upstream body:\n got %s\nwant %s", got, want)
	}
	if m := resp.Header.Get("x-switchyard-model"); m != "meta-llama/Llama-3.1-8B-Instruct" {
		t.Errorf("x-switchyard-model = %q", m)
	}
}

// TestStreamingRelaysEachChunkAtOnce holds the upstream after its first chunk: the client can
// only receive that chunk if the router relayed it before the upstream finished.
func TestStreamingRelaysEachChunkAtOnce(t *testing.T) {
	up := backendstest.New(t, "a")
	gate := up.Gate()
	_, base := startRouter(t, poolYAML("m", "", up.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := newGoOpenAI(base).CreateChatCompletionStream(ctx, goopenai.ChatCompletionRequest{
		Model: "m", Stream: true, StreamOptions: &goopenai.StreamOptions{IncludeUsage: true},
		Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-up.StreamEnded():
		t.Fatal("upstream finished before the client saw the first chunk")
	default:
	}
	if first.Choices[0].Delta.Content != "Hel" {
		t.Errorf("first chunk = %+v", first)
	}
	close(gate)
	var text strings.Builder
	text.WriteString(first.Choices[0].Delta.Content)
	var usage *goopenai.Usage
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Delta.Content)
		}
		if c.Usage != nil {
			usage = c.Usage
		}
	}
	if text.String() != "Hello" {
		t.Errorf("text = %q", text.String())
	}
	if usage == nil || usage.TotalTokens != 7 {
		t.Errorf("usage chunk = %+v", usage)
	}
}

func TestStreamingWithOpenAIGo(t *testing.T) {
	up := backendstest.New(t, "a")
	_, base := startRouter(t, poolYAML("m", "", up.URL))
	p := chatParams("m")
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := newOpenAI(base).Chat.Completions.NewStreaming(context.Background(), p)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != "Hello" || acc.Usage.TotalTokens != 7 {
		t.Errorf("accumulated %q usage %+v", acc.Choices[0].Message.Content, acc.Usage)
	}
}

func TestEmbeddingsAndModels(t *testing.T) {
	up := backendstest.New(t, "a")
	yaml := poolYAML("embed", "", up.URL) + "  - name: chat\n    pool: p\n"
	_, base := startRouter(t, yaml)
	c := newOpenAI(base)
	emb, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "embed", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 1 || len(emb.Data[0].Embedding) != 2 {
		t.Errorf("embeddings = %+v", emb.Data)
	}
	models, err := newGoOpenAI(base).ListModels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range models.Models {
		ids = append(ids, m.ID)
		if m.Object != "model" || m.OwnedBy == "" || m.CreatedAt == 0 {
			t.Errorf("model entry %+v lacks fields", m)
		}
	}
	if strings.Join(ids, ",") != "chat,embed" {
		t.Errorf("models = %v", ids)
	}
}

// openAIError checks an HTTP response is OpenAI error JSON with status and, if given, code.
func openAIError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, b)
	}
	var body map[string]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("error body is not JSON: %v", err)
	}
	e, ok := body["error"]
	if !ok {
		t.Fatalf("no error object in %v", body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e[k]; !ok {
			t.Errorf("error lacks %q: %v", k, e)
		}
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("empty message: %v", e)
	}
	if code != "" && e["code"] != code {
		t.Errorf("code = %v, want %s", e["code"], code)
	}
}

func TestErrors(t *testing.T) {
	up := backendstest.New(t, "a")
	_, base := startRouter(t, poolYAML("m", "", up.URL)+"server:\n  max_body_bytes: 1024\n")
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed JSON", "POST", "/v1/chat/completions", `{"model":"m",`, 400, "invalid_request"},
		{"not an object", "POST", "/v1/chat/completions", `["m"]`, 400, "invalid_request"},
		{"missing model", "POST", "/v1/chat/completions", `{"messages":[]}`, 400, "invalid_request"},
		{"model not a string", "POST", "/v1/completions", `{"model":7}`, 400, "invalid_request"},
		{"unknown model", "POST", "/v1/chat/completions", `{"model":"nope","messages":[]}`, 404, "model_not_found"},
		{"unknown route", "POST", "/v1/images/generations", `{}`, 404, "unknown_url"},
		{"unknown root path", "GET", "/", ``, 404, "unknown_url"},
		{"wrong method", "GET", "/v1/chat/completions", ``, 405, "method_not_allowed"},
		{"too large", "POST", "/v1/embeddings", `{"model":"m","input":"` + strings.Repeat("x", 2000) + `"}`, 413, "request_too_large"},
		{"bad priority", "POST", "/v1/chat/completions", `{"model":"m","messages":[]}`, 400, "invalid_priority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			if tt.name == "bad priority" {
				req.Header.Set("x-priority", "urgent")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			openAIError(t, resp, tt.status, tt.code)
		})
	}
	if up.Requests.Load() != 0 {
		t.Errorf("invalid requests reached the upstream: %d", up.Requests.Load())
	}
	// Chunked body over the limit (no Content-Length to reject early).
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte(`{"model":"m","input":"` + strings.Repeat("y", 4096) + `"}`)); pw.Close() }()
	resp, err := http.Post(base+"/v1/embeddings", "application/json", pr)
	if err != nil {
		t.Fatal(err)
	}
	openAIError(t, resp, 413, "request_too_large")

	// The SDK sees the right error class.
	_, err = newOpenAI(base).Chat.Completions.New(context.Background(), chatParams("nope"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Errorf("SDK error = %v", err)
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Run("retry before first byte", func(t *testing.T) {
		for _, f := range []backendstest.Fault{backendstest.FaultReset, backendstest.FaultStatus503} {
			bad, good := backendstest.New(t, "bad"), backendstest.New(t, "good")
			bad.SetFault(f)
			s, base := startRouter(t, poolYAML("m", "", bad.URL, good.URL))
			c := newOpenAI(base)
			for i := range 20 { // ties between two idle endpoints are broken at random
				got, err := c.Chat.Completions.New(context.Background(), chatParams("m"))
				if err != nil {
					t.Fatalf("fault %d request %d: %v", f, i, err)
				}
				if got.Choices[0].Message.Content != "hello from good" {
					t.Fatalf("served by %q", got.Choices[0].Message.Content)
				}
			}
			if bad.Requests.Load() == 0 {
				t.Errorf("fault %d: the failing endpoint was never tried", f)
			}
			if _, m := httpGet(t, "http://"+s.AdminAddr()+"/metrics"); !strings.Contains(m, `switchyard_upstream_retries_total{model="m",protocol="openai"}`) {
				t.Errorf("retries not in metrics")
			}
		}
	})
	t.Run("all endpoints down: 502 then 503", func(t *testing.T) {
		a, b := backendstest.New(t, "a"), backendstest.New(t, "b")
		a.SetFault(backendstest.FaultReset)
		b.SetFault(backendstest.FaultReset)
		_, base := startRouter(t, poolYAML("m", "", a.URL, b.URL))
		post := func() *http.Response {
			resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[]}`))
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		openAIError(t, post(), 502, "upstream_unreachable")
		openAIError(t, post(), 503, "no_healthy_endpoint")
	})
	t.Run("first byte timeout gives 504", func(t *testing.T) {
		up := backendstest.New(t, "a")
		up.SetFault(backendstest.FaultHang)
		_, base := startRouter(t, poolYAML("m", "", up.URL)+"upstream:\n  first_byte_timeout: 200ms\n")
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		openAIError(t, resp, 504, "upstream_timeout")
	})
	t.Run("old vLLM error body normalized", func(t *testing.T) {
		up := backendstest.New(t, "a")
		up.SetFault(backendstest.FaultOldError)
		_, base := startRouter(t, poolYAML("m", "", up.URL))
		_, err := newOpenAI(base).Chat.Completions.New(context.Background(), chatParams("m"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Message != "bad temperature" {
			t.Errorf("error = %v", err)
		}
	})
	for _, f := range []struct {
		name  string
		fault backendstest.Fault
		yaml  string
	}{
		{"reset mid-stream", backendstest.FaultMidStream, ""},
		{"stalled stream hits idle timeout", backendstest.FaultStall, "upstream:\n  idle_stream_timeout: 200ms\n"},
	} {
		t.Run(f.name+" ends with an error event", func(t *testing.T) {
			up := backendstest.New(t, "a")
			up.SetFault(f.fault)
			_, base := startRouter(t, poolYAML("m", "", up.URL)+f.yaml)
			stream := newOpenAI(base).Chat.Completions.NewStreaming(context.Background(), chatParams("m"))
			n := 0
			for stream.Next() {
				n++
			}
			if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "upstream stream") {
				t.Errorf("stream error = %v", err)
			}
			if n == 0 {
				t.Error("no chunk arrived before the failure")
			}
		})
	}
}

func TestClientCancelReachesUpstream(t *testing.T) {
	up := backendstest.New(t, "a")
	up.Gate() // hold every stream after its first chunk
	_, base := startRouter(t, poolYAML("m", "", up.URL))
	ctx, cancel := context.WithCancel(context.Background())
	stream := newOpenAI(base).Chat.Completions.NewStreaming(ctx, chatParams("m"))
	if !stream.Next() {
		t.Fatalf("no first chunk: %v", stream.Err())
	}
	cancel()
	stream.Close()
	eventually(t, "upstream to see the cancellation", func() bool { return up.Canceled.Load() == 1 })
}

func TestAdminEndpoints(t *testing.T) {
	up := backendstest.New(t, "a")
	s, base := startRouter(t, poolYAML("m", "", up.URL))
	if _, err := newOpenAI(base).Chat.Completions.New(context.Background(), chatParams("m")); err != nil {
		t.Fatal(err)
	}
	admin := "http://" + s.AdminAddr()
	if code, _ := httpGet(t, admin+"/healthz"); code != 200 {
		t.Errorf("healthz = %d", code)
	}
	if code, _ := httpGet(t, admin+"/readyz"); code != 200 {
		t.Errorf("readyz = %d", code)
	}
	_, m := httpGet(t, admin+"/metrics")
	for _, want := range []string{
		`switchyard_requests_total{endpoint="` + up.Host() + `",model="m",protocol="openai",status="200"} 1`,
		`switchyard_request_duration_seconds_count{model="m",protocol="openai"} 1`,
		`switchyard_time_to_first_byte_seconds_count{model="m",protocol="openai"} 1`,
		`switchyard_requests_in_flight{model="m",protocol="openai"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	s.Shutdown(context.Background())
	if _, err := http.Get(admin + "/readyz"); err == nil {
		t.Error("admin still serving after shutdown")
	}
}

// TestH2CAndHTTP1OnOnePort sends the same request over HTTP/1.1 and cleartext HTTP/2 to the
// one data-plane port.
func TestH2CAndHTTP1OnOnePort(t *testing.T) {
	up := backendstest.New(t, "a")
	_, base := startRouter(t, poolYAML("m", "", up.URL))
	for _, h2 := range []bool{false, true} {
		p := new(http.Protocols)
		if h2 {
			p.SetUnencryptedHTTP2(true)
		} else {
			p.SetHTTP1(true)
		}
		client := &http.Client{Transport: &http.Transport{Protocols: p}}
		resp, err := client.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		client.CloseIdleConnections()
		if wantMajor := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != wantMajor || resp.StatusCode != 200 || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
			t.Errorf("h2=%v: proto %s status %d body %q", h2, resp.Proto, resp.StatusCode, b)
		}
	}
}
