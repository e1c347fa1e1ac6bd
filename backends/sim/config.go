package sim

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config describes a simulated model server. A zero field selects its
// default, so Config{} is a usable small server; negative values and rates
// outside [0, 1] are rejected by New.
type Config struct {
	Model              string        // served model name; requests naming another get 404, an empty name means this one; default "sim-model"
	MaxRunning         int           // sequences decoded at once (vLLM max_num_seqs); default 8
	MaxWaiting         int           // FIFO waiting-queue bound; a request beyond it gets 429; default 128
	PrefillPerToken    time.Duration // prefill time per uncached prompt token; default 100µs
	PrefillBase        time.Duration // fixed prefill overhead; default 2ms
	DecodePerToken     time.Duration // time per output token with one running sequence; default 5ms
	DecodeBatchPenalty float64       // each extra running sequence slows every decode step by this fraction; default 0.1
	KVBlocks           int           // KV-cache capacity in blocks; default 4096
	BlockSize          int           // tokens per block; default 16
	DefaultMaxTokens   int           // output tokens when the request gives none; default 64
	EmbeddingDim       int           // embedding vector length; default 64
	Seed               int64         // makes generated text and fault draws deterministic; default 1
	ErrorRate          float64       // fraction of requests answered 500; default 0
	SpikeRate          float64       // fraction of requests delayed by SpikeLatency before prefill; default 0
	SpikeLatency       time.Duration // default 0
	DropRate           float64       // fraction of streams whose connection is cut mid-stream; default 0

	// The KServe v2 tensor model (see RegisterKServe and the package doc).
	TensorModel       string        // name of the tensor model served over KServe v2; default "sim-tensor"
	TensorLatency     time.Duration // compute time per tensor request; default 2ms
	TensorPerElement  time.Duration // extra compute time per input element (both inputs counted); default 0
	TensorConcurrency int           // tensor requests computed at once, the rest wait FIFO up to MaxWaiting; default 4
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Model == "" {
		c.Model = "sim-model"
	}
	if c.TensorModel == "" {
		c.TensorModel = "sim-tensor"
	}
	defDur(&c.TensorLatency, 2*time.Millisecond)
	def(&c.TensorConcurrency, 4)
	def(&c.MaxRunning, 8)
	def(&c.MaxWaiting, 128)
	defDur(&c.PrefillPerToken, 100*time.Microsecond)
	defDur(&c.PrefillBase, 2*time.Millisecond)
	defDur(&c.DecodePerToken, 5*time.Millisecond)
	if c.DecodeBatchPenalty == 0 {
		c.DecodeBatchPenalty = 0.1
	}
	def(&c.KVBlocks, 4096)
	def(&c.BlockSize, 16)
	def(&c.DefaultMaxTokens, 64)
	def(&c.EmbeddingDim, 64)
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// validate reports every field of a defaulted Config that is out of range.
func (c Config) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max-running", c.MaxRunning}, {"max-waiting", c.MaxWaiting}, {"kv-blocks", c.KVBlocks},
		{"block-size", c.BlockSize}, {"default-max-tokens", c.DefaultMaxTokens}, {"embedding-dim", c.EmbeddingDim},
		{"tensor-concurrency", c.TensorConcurrency},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", f.name, f.v))
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"prefill-per-token", c.PrefillPerToken}, {"prefill-base", c.PrefillBase},
		{"decode-per-token", c.DecodePerToken}, {"spike-latency", c.SpikeLatency},
		{"tensor-latency", c.TensorLatency}, {"tensor-per-element", c.TensorPerElement},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %v", f.name, f.v))
		}
	}
	if c.DecodeBatchPenalty < 0 {
		errs = append(errs, fmt.Errorf("decode-batch-penalty must not be negative, got %v", c.DecodeBatchPenalty))
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"error-rate", c.ErrorRate}, {"spike-rate", c.SpikeRate}, {"drop-rate", c.DropRate}} {
		if !(f.v >= 0 && f.v <= 1) {
			errs = append(errs, fmt.Errorf("%s must be in [0, 1], got %v", f.name, f.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sim: invalid config: %w", err)
	}
	return nil
}

// BindFlags registers one flag per Config field on fs, each defaulting to the
// field's current value or, when that is zero, the package default.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	d := c.withDefaults()
	fs.StringVar(&c.Model, "model", d.Model, "served model name; requests naming another model get 404")
	fs.IntVar(&c.MaxRunning, "max-running", d.MaxRunning, "sequences decoded at once (vLLM max_num_seqs)")
	fs.IntVar(&c.MaxWaiting, "max-waiting", d.MaxWaiting, "waiting-queue bound; requests beyond running slots plus this get 429")
	fs.DurationVar(&c.PrefillPerToken, "prefill-per-token", d.PrefillPerToken, "prefill time per prompt token not served from the prefix cache")
	fs.DurationVar(&c.PrefillBase, "prefill-base", d.PrefillBase, "fixed prefill time per admitted sequence")
	fs.DurationVar(&c.DecodePerToken, "decode-per-token", d.DecodePerToken, "decode step time with one running sequence")
	fs.Float64Var(&c.DecodeBatchPenalty, "decode-batch-penalty", d.DecodeBatchPenalty, "fraction by which each extra running sequence slows every decode step")
	fs.IntVar(&c.KVBlocks, "kv-blocks", d.KVBlocks, "KV-cache capacity in blocks")
	fs.IntVar(&c.BlockSize, "block-size", d.BlockSize, "tokens per KV-cache block")
	fs.IntVar(&c.DefaultMaxTokens, "default-max-tokens", d.DefaultMaxTokens, "output tokens when a request sets no max_tokens")
	fs.IntVar(&c.EmbeddingDim, "embedding-dim", d.EmbeddingDim, "length of embedding vectors")
	fs.Int64Var(&c.Seed, "seed", d.Seed, "seed for generated text and fault draws")
	fs.Float64Var(&c.ErrorRate, "error-rate", d.ErrorRate, "fraction of requests answered with an injected 500")
	fs.Float64Var(&c.SpikeRate, "spike-rate", d.SpikeRate, "fraction of requests delayed by --spike-latency before prefill")
	fs.DurationVar(&c.SpikeLatency, "spike-latency", d.SpikeLatency, "extra delay for spiked requests")
	fs.Float64Var(&c.DropRate, "drop-rate", d.DropRate, "fraction of streams whose connection is cut mid-stream")
	fs.StringVar(&c.TensorModel, "tensor-model", d.TensorModel, "name of the add/sub tensor model served over KServe v2")
	fs.DurationVar(&c.TensorLatency, "tensor-latency", d.TensorLatency, "compute time per tensor inference request")
	fs.DurationVar(&c.TensorPerElement, "tensor-per-element", d.TensorPerElement, "extra tensor compute time per input element")
	fs.IntVar(&c.TensorConcurrency, "tensor-concurrency", d.TensorConcurrency, "tensor requests computed at once; the rest wait FIFO up to --max-waiting")
}
