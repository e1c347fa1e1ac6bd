package sim_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	goopenai "github.com/sashabaranov/go-openai"

	"github.com/switchyard-ai/switchyard/backends/sim"
)

func TestErrorRateInjects500(t *testing.T) {
	h := start(t, sim.Config{ErrorRate: 1})
	_, err := h.client.CreateCompletion(context.Background(), goopenai.CompletionRequest{Model: modelName, Prompt: "hi", MaxTokens: 2})
	if got := apiStatus(err); got != http.StatusInternalServerError {
		t.Fatalf("got %v (status %d), want 500", err, got)
	}
	status, _, body := h.post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
	if status != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", status)
	}
	checkErrorJSON(t, body, "")
	if st := h.sim.Stats(); st.Requests != 2 || st.PromptTokens != 0 {
		t.Fatalf("stats %+v: want 2 requests and no work done", st)
	}
}

func TestErrorRateIsSeeded(t *testing.T) {
	outcomes := func(seed int64) string {
		h := start(t, sim.Config{ErrorRate: 0.5, Seed: seed})
		var b strings.Builder
		for range 24 {
			status, _, _ := h.post(t, "/v1/completions", `{"prompt":"hi","max_tokens":1}`)
			b.WriteString(map[int]string{200: "ok ", 500: "err "}[status])
		}
		return b.String()
	}
	a, b := outcomes(3), outcomes(3)
	if a != b || !strings.Contains(a, "ok") || !strings.Contains(a, "err") {
		t.Fatalf("outcomes %q and %q: want equal and mixed", a, b)
	}
}

func TestSpikeDelaysRequests(t *testing.T) {
	const spike = 150 * time.Millisecond
	for _, tc := range []struct {
		rate    float64
		delayed bool
	}{{1, true}, {0, false}} {
		h := start(t, sim.Config{SpikeRate: tc.rate, SpikeLatency: spike})
		begin := time.Now()
		h.complete(t, "hi", 1)
		if took := time.Since(begin); (took >= spike) != tc.delayed {
			t.Errorf("spike rate %v: request took %v, want delayed=%v", tc.rate, took, tc.delayed)
		}
	}
}

func TestDropRateCutsStreams(t *testing.T) {
	h := start(t, sim.Config{DropRate: 1})
	stream, err := h.client.CreateChatCompletionStream(context.Background(), goopenai.ChatCompletionRequest{
		Model: modelName, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}, MaxTokens: 20,
	})
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	defer stream.Close()
	chunks := 0
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
		chunks++
	}
	if errors.Is(err, io.EOF) || chunks == 0 || chunks >= 20 {
		t.Fatalf("stream ended with %v after %d chunks; want a mid-stream error", err, chunks)
	}

	status, _, body := h.post(t, "/v1/completions", `{"prompt":"hi","stream":true,"max_tokens":20}`)
	if status != http.StatusOK || !strings.HasPrefix(string(body), "data: ") || strings.Contains(string(body), "[DONE]") {
		t.Fatalf("status %d body %q: want a truncated stream without [DONE]", status, body)
	}
	eventually(t, "dropped streams to free their slots", func() bool { return h.sim.Stats().Running == 0 })
	// Non-streaming requests are never dropped.
	if got := h.complete(t, "hi", 3).Usage.CompletionTokens; got != 3 {
		t.Fatalf("non-streaming request got %d tokens, want 3", got)
	}
}
