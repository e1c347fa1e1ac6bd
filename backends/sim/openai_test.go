package sim_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"

	"github.com/switchyard-ai/switchyard/backends/sim"
)

// sseEvents splits a data-only event stream into its payloads, failing on
// any line that is not part of a "data: ...\n\n" event.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	var events []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	expectBlank := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case expectBlank && line != "":
			t.Fatalf("event not followed by a blank line: %q", line)
		case expectBlank:
			expectBlank = false
		case strings.HasPrefix(line, "data: "):
			events = append(events, strings.TrimPrefix(line, "data: "))
			expectBlank = true
		default:
			t.Fatalf("unexpected stream line %q", line)
		}
	}
	return events
}

func TestStreamShape(t *testing.T) {
	const maxTokens = 7
	for _, tc := range []struct {
		name, path, body, object string
		chat, usage              bool
	}{
		{"chat with usage", "/v1/chat/completions", `"messages":[{"role":"user","content":"hi there"}],"stream_options":{"include_usage":true}`, "chat.completion.chunk", true, true},
		{"chat", "/v1/chat/completions", `"messages":[{"role":"user","content":"hi there"}]`, "chat.completion.chunk", true, false},
		{"completion with usage", "/v1/completions", `"prompt":"hi there","stream_options":{"include_usage":true}`, "text_completion", false, true},
		{"completion", "/v1/completions", `"prompt":"hi there"`, "text_completion", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, sim.Config{})
			resp, err := h.srv.Client().Post(h.srv.URL+tc.path, "application/json",
				strings.NewReader(fmt.Sprintf(`{"model":"sim-model","stream":true,"max_tokens":%d,%s}`, maxTokens, tc.body)))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, err = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("Content-Type %q", ct)
			}
			events := sseEvents(t, buf.Bytes())
			if len(events) == 0 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("stream does not end with [DONE]: %q", events)
			}
			type chunk struct {
				ID      string `json:"id"`
				Object  string `json:"object"`
				Created int64  `json:"created"`
				Choices []struct {
					Delta        *struct{ Role, Content *string }
					Text         *string `json:"text"`
					FinishReason *string `json:"finish_reason"`
				} `json:"choices"`
				Usage *struct {
					CompletionTokens int `json:"completion_tokens"`
				} `json:"usage"`
			}
			var chunks []chunk
			for _, e := range events[:len(events)-1] {
				var c chunk
				if err := json.Unmarshal([]byte(e), &c); err != nil {
					t.Fatalf("chunk %q: %v", e, err)
				}
				var raw map[string]json.RawMessage
				json.Unmarshal([]byte(e), &raw)
				if u, ok := raw["usage"]; tc.usage != ok || ok && c.Usage == nil && string(u) != "null" {
					t.Errorf("chunk %s: usage field present=%v, want %v (null until the usage chunk)", e, ok, tc.usage)
				}
				chunks = append(chunks, c)
				if c.ID == "" || c.ID != chunks[0].ID || c.Created != chunks[0].Created || c.Object != tc.object {
					t.Errorf("chunk %s: id/created differ from the first chunk's or object is not %q", e, tc.object)
				}
			}
			if tc.usage {
				last := chunks[len(chunks)-1]
				if len(last.Choices) != 0 || last.Usage == nil || last.Usage.CompletionTokens != maxTokens {
					t.Errorf("usage chunk %+v: want choices [] and %d completion tokens", last, maxTokens)
				}
				chunks = chunks[:len(chunks)-1]
			}
			if tc.chat {
				first := chunks[0].Choices[0].Delta
				if first == nil || first.Role == nil || *first.Role != "assistant" || first.Content == nil || *first.Content != "" {
					t.Errorf("first chat chunk %s: want delta role assistant, content \"\"", events[0])
				}
				chunks = chunks[1:]
			}
			if len(chunks) != maxTokens {
				t.Fatalf("%d content chunks, want one per token (%d)", len(chunks), maxTokens)
			}
			for i, c := range chunks {
				f := c.Choices[0].FinishReason
				if last := i == len(chunks)-1; last != (f != nil) || last && *f != "length" {
					t.Errorf("content chunk %d finish_reason %v; want \"length\" on the last only", i, f)
				}
			}
		})
	}
}

func TestGoOpenAIClientParsesResponses(t *testing.T) {
	h := start(t, sim.Config{EmbeddingDim: 32})
	ctx := context.Background()

	chat, err := h.client.CreateChatCompletion(ctx, goopenai.ChatCompletionRequest{
		Model:               modelName,
		Messages:            []goopenai.ChatCompletionMessage{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hello"}},
		MaxCompletionTokens: 5,
	})
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	if c := chat.Choices[0]; chat.Object != "chat.completion" || c.Message.Role != "assistant" || len(strings.Fields(c.Message.Content)) != 5 ||
		c.FinishReason != goopenai.FinishReasonLength || chat.Usage.CompletionTokens != 5 || chat.Usage.TotalTokens != chat.Usage.PromptTokens+5 {
		t.Errorf("chat response %+v", chat)
	}

	comp := h.complete(t, "once upon a time", 3)
	if comp.Object != "text_completion" || len(strings.Fields(comp.Choices[0].Text)) != 3 || comp.Choices[0].FinishReason != "length" || comp.Usage.PromptTokens != 4 {
		t.Errorf("completion response %+v", comp)
	}

	for _, format := range []goopenai.EmbeddingEncodingFormat{goopenai.EmbeddingEncodingFormatFloat, goopenai.EmbeddingEncodingFormatBase64} {
		emb, err := h.client.CreateEmbeddings(ctx, goopenai.EmbeddingRequest{
			Model: goopenai.EmbeddingModel(modelName), Input: []string{"one", "two", "one"}, EncodingFormat: format,
		})
		if err != nil {
			t.Fatalf("embeddings (%s): %v", format, err)
		}
		if len(emb.Data) != 3 || emb.Usage.PromptTokens != 3 {
			t.Fatalf("embeddings (%s) %+v", format, emb)
		}
		for i, d := range emb.Data {
			var norm float64
			for _, x := range d.Embedding {
				norm += float64(x) * float64(x)
			}
			if d.Index != i || len(d.Embedding) != 32 || math.Abs(norm-1) > 1e-4 {
				t.Errorf("embedding %d (%s): index %d, dim %d, norm² %v", i, format, d.Index, len(d.Embedding), norm)
			}
		}
		if fmt.Sprint(emb.Data[0].Embedding) != fmt.Sprint(emb.Data[2].Embedding) || fmt.Sprint(emb.Data[0].Embedding) == fmt.Sprint(emb.Data[1].Embedding) {
			t.Errorf("embeddings (%s) are not a function of their input", format)
		}
	}

	models, err := h.client.ListModels(ctx)
	if err != nil {
		t.Fatalf("models: %v", err)
	}
	if len(models.Models) != 1 || models.Models[0].ID != modelName || models.Models[0].Object != "model" {
		t.Errorf("models %+v", models)
	}
}

func TestOfficialClientParsesResponses(t *testing.T) {
	h := start(t, sim.Config{})
	client := openai.NewClient(option.WithBaseURL(h.srv.URL+"/v1"), option.WithAPIKey("unused"),
		option.WithHTTPClient(h.srv.Client()), option.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:     modelName,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
		MaxTokens: openai.Int(6),
	}
	chat, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	if chat.Choices[0].FinishReason != "length" || chat.Usage.CompletionTokens != 6 {
		t.Errorf("chat %+v", chat)
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	stream.Close()
	if acc.Choices[0].Message.Content != chat.Choices[0].Message.Content || acc.Usage.CompletionTokens != 6 ||
		acc.Usage.PromptTokensDetails.CachedTokens != chat.Usage.PromptTokensDetails.CachedTokens {
		t.Errorf("streamed %+v, want the non-streamed content and usage", acc.ChatCompletion)
	}

	emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: modelName, Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hi")},
	})
	if err != nil || len(emb.Data) != 1 || len(emb.Data[0].Embedding) != 64 {
		t.Errorf("embeddings %+v, %v", emb, err)
	}
	page, err := client.Models.List(ctx)
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != modelName {
		t.Errorf("models %+v, %v", page, err)
	}

	params.Model = "other-model"
	_, err = client.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v, want a 404 model_not_found API error", err)
	}
}

func TestErrorsAreOpenAIErrors(t *testing.T) {
	h := start(t, sim.Config{KVBlocks: 4, BlockSize: 16})
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"malformed JSON", "/v1/chat/completions", `{"model":`, http.StatusBadRequest, ""},
		{"unknown model", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, http.StatusNotFound, "model_not_found"},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, http.StatusBadRequest, ""},
		{"zero max_tokens", "/v1/completions", `{"prompt":"hi","max_tokens":0}`, http.StatusBadRequest, ""},
		{"batched prompt", "/v1/completions", `{"prompt":["a","b"]}`, http.StatusBadRequest, ""},
		{"context too long", "/v1/completions", `{"prompt":"` + words("a", 60) + `","max_tokens":10}`, http.StatusBadRequest, "context_length_exceeded"},
		{"bad embedding input", "/v1/embeddings", `{"input":42}`, http.StatusBadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, header, body := h.post(t, tc.path, tc.body)
			if status != tc.status || header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d (%s), want %d JSON", status, header.Get("Content-Type"), tc.status)
			}
			checkErrorJSON(t, body, tc.code)
		})
	}

	_, err := h.client.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
		Model: "gpt-9", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}},
	})
	var apiErr *goopenai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model via SDK: %v, want a 404 model_not_found APIError", err)
	}
}

func TestSameSeedAndPromptGiveSameText(t *testing.T) {
	fast := time.Millisecond
	a, b := start(t, sim.Config{Seed: 7, DecodePerToken: fast}), start(t, sim.Config{Seed: 7, DecodePerToken: fast})
	other := start(t, sim.Config{Seed: 8, DecodePerToken: fast})
	text := func(h *harness, prompt string) string { return h.complete(t, prompt, 16).Choices[0].Text }
	for _, tc := range []struct {
		name     string
		x, y     *harness
		px, py   string
		wantSame bool
	}{
		{"same seed and prompt", a, b, "tell me a story", "tell me a story", true},
		{"same server, repeated", a, a, "tell me a story", "tell me a story", true},
		{"different prompt", a, b, "tell me a story", "tell me a joke", false},
		{"different seed", a, other, "tell me a story", "tell me a story", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, y := text(tc.x, tc.px), text(tc.y, tc.py)
			if (x == y) != tc.wantSame {
				t.Errorf("texts %q and %q: same=%v, want %v", x, y, x == y, tc.wantSame)
			}
		})
	}
}
