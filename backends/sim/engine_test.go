package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	goopenai "github.com/sashabaranov/go-openai"

	"github.com/switchyard-ai/switchyard/backends/sim"
)

func TestQueueMetricsUnderLoad(t *testing.T) {
	for _, tc := range []struct{ maxRunning, extra int }{{1, 1}, {3, 2}, {4, 0}} {
		t.Run("", func(t *testing.T) {
			h := start(t, sim.Config{MaxRunning: tc.maxRunning, DecodePerToken: 20 * time.Millisecond})
			var hd holder
			for i := range tc.maxRunning + tc.extra {
				h.hold(t, &hd, words(string(rune('a'+i)), 32), 2000)
			}
			gauges := func() (running, waiting float64) {
				fams := h.scrape(t)
				return metric(t, fams, "vllm:num_requests_running", "model_name", modelName, "engine", "0"),
					metric(t, fams, "vllm:num_requests_waiting", "model_name", modelName, "engine", "0")
			}
			eventually(t, "the engine to fill its running slots", func() bool {
				running, waiting := gauges()
				return running == float64(tc.maxRunning) && waiting == float64(tc.extra)
			})
			// Steady state: slow requests keep the slots full and the rest queued.
			if running, waiting := gauges(); running != float64(tc.maxRunning) || waiting != float64(tc.extra) {
				t.Fatalf("running=%v waiting=%v, want %d and %d", running, waiting, tc.maxRunning, tc.extra)
			}
			if st := h.sim.Stats(); st.Running != tc.maxRunning || st.Waiting != tc.extra {
				t.Fatalf("Stats running=%d waiting=%d, want %d and %d", st.Running, st.Waiting, tc.maxRunning, tc.extra)
			}
			hd.release()
			eventually(t, "the engine to drain", func() bool {
				st := h.sim.Stats()
				return st.Running == 0 && st.Waiting == 0 && st.KVUsage == 0
			})
		})
	}
}

func TestQueueBoundRejectsWith429(t *testing.T) {
	h := start(t, sim.Config{MaxRunning: 1, MaxWaiting: 2, DecodePerToken: 20 * time.Millisecond})
	var hd holder
	for _, tag := range []string{"a", "b", "c"} {
		h.hold(t, &hd, words(tag, 8), 2000)
	}
	eventually(t, "1 running and 2 waiting", func() bool {
		st := h.sim.Stats()
		return st.Running == 1 && st.Waiting == 2
	})
	_, err := h.client.CreateCompletion(context.Background(), goopenai.CompletionRequest{Model: modelName, Prompt: "one more", MaxTokens: 1})
	if got := apiStatus(err); got != http.StatusTooManyRequests {
		t.Fatalf("SDK error = %v (status %d), want 429", err, got)
	}
	status, header, body := h.post(t, "/v1/completions", `{"model":"sim-model","prompt":"and another"}`)
	if status != http.StatusTooManyRequests || header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 429 with Retry-After", status, header.Get("Retry-After"))
	}
	checkErrorJSON(t, body, "rate_limit_exceeded")
	if st := h.sim.Stats(); st.Waiting != 2 {
		t.Fatalf("waiting = %d after rejections, want 2", st.Waiting)
	}
}

// streamTiming returns when a completion stream's first and last chunks
// arrived.
func streamTiming(t *testing.T, h *harness, prompt string, maxTokens int) (first, last time.Time) {
	stream, err := h.client.CreateCompletionStream(context.Background(), goopenai.CompletionRequest{
		Model: modelName, Prompt: prompt, MaxTokens: maxTokens,
	})
	if err != nil {
		t.Errorf("stream: %v", err)
		return
	}
	defer stream.Close()
	for {
		if _, err := stream.Recv(); err != nil {
			return
		}
		if first.IsZero() {
			first = time.Now()
		}
		last = time.Now()
	}
}

func TestDecodeSlowsWithRunningSequences(t *testing.T) {
	const tokens = 30
	h := start(t, sim.Config{DecodePerToken: 5 * time.Millisecond, DecodeBatchPenalty: 1})
	decode := func(concurrent int) time.Duration {
		var (
			mu    sync.Mutex
			total time.Duration
			wg    sync.WaitGroup
		)
		for i := range concurrent {
			wg.Go(func() {
				first, last := streamTiming(t, h, words(string(rune('a'+i)), 16), tokens)
				mu.Lock()
				total += last.Sub(first)
				mu.Unlock()
			})
		}
		wg.Wait()
		return total / time.Duration(concurrent)
	}
	alone, shared := decode(1), decode(4)
	// 4 running sequences make each step 1+1×3 = 4 times slower.
	if shared < 2*alone {
		t.Fatalf("decode took %v alone and %v with 4 running; want at least 2x slower", alone, shared)
	}
}

func TestDisconnectFreesSlotAndBlocks(t *testing.T) {
	h := start(t, sim.Config{MaxRunning: 1, DecodePerToken: 20 * time.Millisecond})
	var running, queued holder
	h.hold(t, &running, words("a", 64), 2000)
	eventually(t, "the first request to run", func() bool { return h.sim.Stats().Running == 1 })
	h.hold(t, &queued, words("b", 64), 2000)
	eventually(t, "the second request to wait", func() bool { return h.sim.Stats().Waiting == 1 })
	if st := h.sim.Stats(); st.KVUsage == 0 {
		t.Fatalf("KV usage is 0 with a running request")
	}

	queued.release()
	eventually(t, "the queue to empty", func() bool { return h.sim.Stats().Waiting == 0 })
	if st := h.sim.Stats(); st.Running != 1 {
		t.Fatalf("running = %d after the queued request left, want 1", st.Running)
	}
	running.release()
	eventually(t, "the slot and its blocks to free", func() bool {
		st := h.sim.Stats()
		return st.Running == 0 && st.KVUsage == 0
	})
	if got := metric(t, h.scrape(t), "vllm:request_success_total", "finished_reason", "abort"); got != 2 {
		t.Fatalf("aborted requests = %v, want 2", got)
	}
}

func TestKVPressurePreemptsAndRecomputes(t *testing.T) {
	// Each request ends at 4+20 tokens = 6 blocks of 4, so two cannot finish
	// side by side in 8 blocks: one must be preempted and recomputed.
	cfg := sim.Config{MaxRunning: 2, KVBlocks: 8, BlockSize: 4, DecodePerToken: 5 * time.Millisecond}
	h, roomy := start(t, cfg), start(t, sim.Config{BlockSize: 4})
	prompts := []string{"alpha beta gamma delta", "one two three four"}
	var wg sync.WaitGroup
	got := make([]goopenai.CompletionResponse, len(prompts))
	for i, p := range prompts {
		wg.Go(func() {
			resp, err := h.client.CreateCompletion(context.Background(), goopenai.CompletionRequest{Model: modelName, Prompt: p, MaxTokens: 20})
			if err != nil {
				t.Errorf("completion %d: %v", i, err)
			}
			got[i] = resp
		})
	}
	wg.Wait()
	for i, p := range prompts {
		if want := roomy.complete(t, p, 20).Choices[0].Text; got[i].Usage.CompletionTokens != 20 || got[i].Choices[0].Text != want {
			t.Errorf("request %d: %d tokens %q, want 20 tokens %q", i, got[i].Usage.CompletionTokens, got[i].Choices[0].Text, want)
		}
	}
	// A recompute queries the prefix cache again for prompt plus output.
	if st := h.sim.Stats(); st.PrefixQueries <= st.PromptTokens {
		t.Fatalf("prefix queries %d <= prompt tokens %d: no preemption happened", st.PrefixQueries, st.PromptTokens)
	}
}

func TestCloseEndsInFlightRequests(t *testing.T) {
	h := start(t, sim.Config{MaxRunning: 1, DecodePerToken: 20 * time.Millisecond})
	streamErr := make(chan error, 1)
	stream, err := h.client.CreateCompletionStream(context.Background(), goopenai.CompletionRequest{
		Model: modelName, Prompt: "running", MaxTokens: 2000,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				streamErr <- err
				return
			}
		}
	}()
	queuedErr := make(chan error, 1)
	go func() {
		_, err := h.client.CreateCompletion(context.Background(), goopenai.CompletionRequest{Model: modelName, Prompt: "queued", MaxTokens: 5})
		queuedErr <- err
	}()
	eventually(t, "1 running and 1 waiting", func() bool {
		st := h.sim.Stats()
		return st.Running == 1 && st.Waiting == 1
	})

	h.sim.Close()
	h.sim.Close() // idempotent
	if err := <-streamErr; err == nil || errors.Is(err, io.EOF) {
		t.Errorf("stream ended with %v, want an error", err)
	}
	if err := <-queuedErr; apiStatus(err) != http.StatusServiceUnavailable {
		t.Errorf("queued request got %v, want 503", err)
	}
	if status, _, _ := h.post(t, "/v1/completions", `{"prompt":"late"}`); status != http.StatusServiceUnavailable {
		t.Errorf("request after Close got %d, want 503", status)
	}
	resp, err := h.srv.Client().Get(h.srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/health after Close = %d, want 503", resp.StatusCode)
	}
}

// checkErrorJSON asserts body is an OpenAI error object with the given code
// (empty for null).
func checkErrorJSON(t *testing.T, body []byte, code string) {
	t.Helper()
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("body %s is not an OpenAI error: %v", body, err)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e.Error[k]; !ok {
			t.Errorf("error %s lacks %q", body, k)
		}
	}
	if msg, _ := e.Error["message"].(string); msg == "" {
		t.Errorf("error %s has no message", body)
	}
	if want := any(code); code == "" && e.Error["code"] != nil || code != "" && e.Error["code"] != want {
		t.Errorf("error code = %v, want %q", e.Error["code"], code)
	}
}
