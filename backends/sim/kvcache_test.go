package sim_test

import (
	"context"
	"testing"
	"time"

	goopenai "github.com/sashabaranov/go-openai"

	"github.com/switchyard-ai/switchyard/backends/sim"
)

// firstChunk streams a chat completion and returns the time to its first
// chunk and the cached prompt tokens from its usage chunk.
func firstChunk(t *testing.T, h *harness, prompt string) (time.Duration, int) {
	t.Helper()
	begin := time.Now()
	stream, err := h.client.CreateChatCompletionStream(context.Background(), goopenai.ChatCompletionRequest{
		Model:         modelName,
		Messages:      []goopenai.ChatCompletionMessage{{Role: goopenai.ChatMessageRoleUser, Content: prompt}},
		MaxTokens:     4,
		StreamOptions: &goopenai.StreamOptions{IncludeUsage: true},
	})
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	defer stream.Close()
	var ttft time.Duration
	cached := -1
	for {
		chunk, err := stream.Recv()
		if err != nil {
			break
		}
		if ttft == 0 {
			ttft = time.Since(begin)
		}
		if chunk.Usage != nil && chunk.Usage.PromptTokensDetails != nil {
			cached = chunk.Usage.PromptTokensDetails.CachedTokens
		}
	}
	if cached < 0 {
		t.Fatalf("stream had no usage chunk with cached_tokens")
	}
	return ttft, cached
}

func TestTTFTFallsWhenPrefixIsCached(t *testing.T) {
	h := start(t, sim.Config{PrefillPerToken: 100 * time.Microsecond})
	prompt := words("p", 3000) // ≈300ms of prefill when uncached
	cold, coldCached := firstChunk(t, h, prompt)
	warm, warmCached := firstChunk(t, h, prompt)
	if cold < 300*time.Millisecond {
		t.Errorf("cold TTFT %v is below the 300ms prefill of 3000 tokens", cold)
	}
	if warm >= cold/2 {
		t.Errorf("warm TTFT %v is not under half the cold %v", warm, cold)
	}
	if coldCached != 0 || warmCached < 2900 {
		t.Errorf("cached tokens cold=%d warm=%d, want 0 and nearly all 3000", coldCached, warmCached)
	}
}

func TestPrefixHitsCountReuse(t *testing.T) {
	for _, tc := range []struct {
		name          string
		first, second string
		wantHits      bool
	}{
		{"repeated prompt", words("a", 100), words("a", 100), true},
		{"grown conversation", words("a", 100), words("a", 100) + " more words", true},
		{"distinct prompts", words("a", 100), words("b", 100), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, sim.Config{})
			h.complete(t, tc.first, 1)
			before := h.scrape(t)
			resp := h.complete(t, tc.second, 1)
			after := h.scrape(t)
			hits := metric(t, after, "vllm:prefix_cache_hits_total") - metric(t, before, "vllm:prefix_cache_hits_total")
			queries := metric(t, after, "vllm:prefix_cache_queries_total") - metric(t, before, "vllm:prefix_cache_queries_total")
			if queries != float64(resp.Usage.PromptTokens) {
				t.Errorf("queries rose by %v, want the %d prompt tokens", queries, resp.Usage.PromptTokens)
			}
			if (hits > 0) != tc.wantHits {
				t.Errorf("hits rose by %v, want hits: %v", hits, tc.wantHits)
			}
			cached := resp.Usage.PromptTokensDetails.CachedTokens
			if float64(cached) != hits {
				t.Errorf("usage cached_tokens %d, metric hits %v; want equal", cached, hits)
			}
		})
	}
}

func TestFullCacheEvictsLeastRecentlyUsed(t *testing.T) {
	// 16 blocks of 16 tokens; each 64-token prompt plus its output holds 5.
	h := start(t, sim.Config{KVBlocks: 16, BlockSize: 16})
	first := words("a", 64)
	cached := func(p string) int { return h.complete(t, p, 1).Usage.PromptTokensDetails.CachedTokens }
	if got := cached(first); got != 0 {
		t.Fatalf("cold prompt had %d cached tokens", got)
	}
	if got := cached(first); got != 48 {
		t.Fatalf("repeated prompt had %d cached tokens, want 48 (3 full blocks; the last is recomputed)", got)
	}
	for _, tag := range []string{"b", "c", "d", "e"} {
		cached(words(tag, 64))
	}
	if got := cached(first); got != 0 {
		t.Fatalf("after filling the cache the first prompt still had %d cached tokens", got)
	}
}

func TestKVUsageRisesWithPromptLength(t *testing.T) {
	h := start(t, sim.Config{MaxRunning: 4, KVBlocks: 1024, DecodePerToken: 20 * time.Millisecond})
	usage := func(promptLen int, tag string) float64 {
		var hd holder
		defer hd.release()
		for i := range 4 {
			h.hold(t, &hd, words(string(rune(tag[0]+byte(i))), promptLen), 2000)
		}
		eventually(t, "4 running", func() bool { return h.sim.Stats().Running == 4 })
		fams := h.scrape(t)
		u := metric(t, fams, "vllm:kv_cache_usage_perc")
		if legacy := metric(t, fams, "vllm:gpu_cache_usage_perc"); legacy != u {
			t.Errorf("gpu_cache_usage_perc %v != kv_cache_usage_perc %v", legacy, u)
		}
		return u
	}
	short := usage(16, "a")
	eventually(t, "the first load to drain", func() bool { return h.sim.Stats().Running == 0 })
	long := usage(400, "k")
	if short <= 0 || long < 5*short || long > 1 {
		t.Fatalf("KV usage %v with 16-token prompts and %v with 400-token prompts; want 0 < 5×short <= long <= 1", short, long)
	}
}
