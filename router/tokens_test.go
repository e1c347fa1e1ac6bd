package router_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/tiktoken-go/tokenizer"

	"github.com/switchyard-ai/switchyard/router"
)

func TestEstimateTokensSmall(t *testing.T) {
	tests := []struct {
		text     string
		min, max int
	}{
		{"", 0, 0},
		{"hello", 1, 1},
		{" hello world", 2, 2},
		{"123456", 2, 2},
		{"a, b.", 4, 4},
		{"你好", 2, 2},
		{"\n\n\n", 1, 1},
		{"internationalization", 2, 4},
	}
	for _, tt := range tests {
		got := router.EstimateTokens([]byte(tt.text))
		if got < tt.min || got > tt.max {
			t.Errorf("EstimateTokens(%q) = %d, want in [%d, %d]", tt.text, got, tt.min, tt.max)
		}
	}
}

// TestEstimateTokensAccuracy measures the estimator against real BPE tokenizers on a varied
// sample (prose, technical text, code, JSON, chat, German, Chinese) and bounds its error.
func TestEstimateTokensAccuracy(t *testing.T) {
	files, err := filepath.Glob("testdata/tokens/*")
	if err != nil || len(files) < 5 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	for _, enc := range []tokenizer.Encoding{tokenizer.Cl100kBase, tokenizer.O200kBase} {
		codec, err := tokenizer.Get(enc)
		if err != nil {
			t.Fatal(err)
		}
		var sumAbs float64
		var totalEst, totalReal int
		for _, f := range files {
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			real, err := codec.Count(string(text))
			if err != nil {
				t.Fatal(err)
			}
			est := router.EstimateTokens(text)
			rel := float64(est-real) / float64(real)
			sumAbs += math.Abs(rel)
			totalEst += est
			totalReal += real
			t.Logf("%-12s %-16s real %4d  estimate %4d  error %+5.1f%%", enc, filepath.Base(f), real, est, 100*rel)
			if math.Abs(rel) > 0.25 {
				t.Errorf("%s %s: error %+.1f%% exceeds 25%%", enc, filepath.Base(f), 100*rel)
			}
		}
		mape := sumAbs / float64(len(files))
		total := float64(totalEst-totalReal) / float64(totalReal)
		t.Logf("%-12s mean absolute error %.1f%%, error on the whole corpus %+.1f%%", enc, 100*mape, 100*total)
		if mape > 0.12 {
			t.Errorf("%s: mean absolute error %.1f%% exceeds 12%%", enc, 100*mape)
		}
	}
}

// TestEstimateTokensSampled bounds what sampling adds to the error on texts long enough to be
// sampled: the estimate of each text is compared with the sum of the estimates of its parts,
// each short enough to be read whole, for corpus samples repeated, interleaved, and laid end
// to end in long runs of one kind; and the sampled estimate of the whole corpus in long runs
// is held to the accuracy bound against the real tokenizers.
func TestEstimateTokensSampled(t *testing.T) {
	files, err := filepath.Glob("testdata/tokens/*")
	if err != nil || len(files) < 5 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	var samples [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, append(bytes.TrimSpace(b), '\n'))
	}
	repeat := func(b []byte, n int) []byte {
		var out []byte
		for len(out) < n {
			out = append(out, b...)
		}
		return out
	}
	texts := map[string][]byte{}
	for i, s := range samples {
		texts[filepath.Base(files[i])+" repeated"] = repeat(s, 256<<10)
	}
	texts["all interleaved"] = repeat(bytes.Join(samples, nil), 256<<10)
	var runs []byte
	for _, s := range samples {
		runs = append(runs, repeat(s, 40<<10)...)
	}
	texts["all in runs"] = runs
	for name, text := range texts {
		whole := 0
		for rest := text; len(rest) > 0; {
			n := min(len(rest), 32<<10)
			for n < len(rest) && rest[n-1] != '\n' && rest[n-1] != ' ' {
				n++
			}
			whole += router.EstimateTokens(rest[:n])
			rest = rest[n:]
		}
		sampled := router.EstimateTokens(text)
		rel := float64(sampled-whole) / float64(whole)
		t.Logf("%-24s %7d bytes: whole %6d, sampled %6d, %+5.2f%%", name, len(text), whole, sampled, 100*rel)
		if math.Abs(rel) > 0.03 {
			t.Errorf("%s: sampling changes the estimate by %+.2f%%, more than 3%%", name, 100*rel)
		}
	}
	for _, enc := range []tokenizer.Encoding{tokenizer.Cl100kBase, tokenizer.O200kBase} {
		codec, err := tokenizer.Get(enc)
		if err != nil {
			t.Fatal(err)
		}
		real, err := codec.Count(string(runs))
		if err != nil {
			t.Fatal(err)
		}
		rel := float64(router.EstimateTokens(runs)-real) / float64(real)
		t.Logf("%-12s all in runs: real %d, error %+5.1f%%", enc, real, 100*rel)
		if math.Abs(rel) > 0.25 {
			t.Errorf("%s all in runs: error %+.1f%% exceeds 25%%", enc, 100*rel)
		}
	}
}

func BenchmarkEstimateTokens(b *testing.B) {
	text, err := os.ReadFile("testdata/tokens/technical.txt")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		router.EstimateTokens(text)
	}
}

func BenchmarkEstimateTokensLong(b *testing.B) {
	text := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog. "), (256<<10)/45)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		router.EstimateTokens(text)
	}
}
