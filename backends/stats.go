package backends

import "time"

// Stats is one immutable snapshot of what an endpoint's metrics said at one scrape. It is
// published by the collector through an atomic pointer and never modified afterwards, so the
// request path reads it without locks.
type Stats struct {
	// ScrapedAt is when the scrape that produced this snapshot finished.
	ScrapedAt time.Time
	// Waiting is the number of requests queued at the server (vLLM num_requests_waiting,
	// SGLang num_queue_reqs, TGI queue_size, Triton pending_request_count).
	Waiting int
	// Running is the number of requests being processed (vLLM num_requests_running, SGLang
	// num_running_reqs, TGI batch_current_size); -1 when the server does not export it.
	Running int
	// KVUsage is the fraction of KV-cache in use, 0..1; -1 when the server does not export it
	// (TGI, Triton without TRT-LLM metrics).
	KVUsage float64
	// KVBlocks and BlockSize give the cache capacity (blocks × tokens per block); 0 unknown.
	KVBlocks, BlockSize int
	// GPUMemoryUsed and GPUMemoryTotal are bytes summed over the server's GPUs (Triton DCGM
	// gauges); 0 when not exported.
	GPUMemoryUsed, GPUMemoryTotal float64
	// PrefixHits and PrefixQueries are the server's cumulative prefix-cache counters in tokens
	// (vLLM); 0 when not exported.
	PrefixHits, PrefixQueries float64
	// LoRA lists adapters where exposed (vLLM lora_requests_info); nil otherwise.
	LoRA *LoRAStats
	// InFlightAtScrape is the endpoint's local in-flight count when the scrape started; requests
	// this replica sent since then are not yet reflected in Waiting/Running.
	InFlightAtScrape int64
}

// LoRAStats lists the LoRA adapters a server reports.
type LoRAStats struct {
	Max              int
	Running, Waiting []string
}

// Stats returns the endpoint's latest metrics snapshot, or nil before the first successful
// scrape. Safe for concurrent use.
func (e *Endpoint) Stats() *Stats { return e.stats.Load() }

// SetStats publishes a new snapshot. Only the collector calls it; tests may too.
func (e *Endpoint) SetStats(s *Stats) {
	// Only a server that queues shows its batch capacity: while requests wait, it runs as
	// many as it can. A lightly loaded server's running count says nothing about its limit.
	if s != nil && s.Running > 0 && s.Waiting > 0 {
		e.latency.observeRunning(s.Running)
	}
	e.stats.Store(s)
}

// Age reports how old the snapshot is at now; a nil snapshot is infinitely old.
func (s *Stats) Age(now time.Time) time.Duration {
	if s == nil {
		return time.Duration(1<<63 - 1)
	}
	return now.Sub(s.ScrapedAt)
}
