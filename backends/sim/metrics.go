package sim

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics owns the server's private Prometheus registry.
type metrics struct {
	reg                  *prometheus.Registry
	ttft, e2e, queueTime prometheus.Histogram
}

func newMetrics(cfg Config) *metrics {
	// Bucket bounds as vLLM uses them, so dashboards and routers built for
	// vLLM read the simulator's histograms the same way.
	ttftBuckets := []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560}
	latencyBuckets := []float64{0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680}
	labels := prometheus.Labels{"model_name": cfg.Model, "engine": "0"}
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: labels})
	}
	m := &metrics{
		reg:       prometheus.NewRegistry(),
		ttft:      hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", ttftBuckets),
		e2e:       hist("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", latencyBuckets),
		queueTime: hist("vllm:request_queue_time_seconds", "Histogram of time spent in the waiting queue in seconds.", latencyBuckets),
	}
	m.reg.MustRegister(m.ttft, m.e2e, m.queueTime)
	return m
}

// register adds the collector that reads e's gauges and counters at scrape
// time, so a scrape is exact and internally consistent.
func (m *metrics) register(cfg Config, e *engine) {
	labels := prometheus.Labels{"model_name": cfg.Model, "engine": "0"}
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, variable, labels)
	}
	m.reg.MustRegister(&engineCollector{
		e:        e,
		running:  desc("vllm:num_requests_running", "Number of requests in model execution batches."),
		waiting:  desc("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
		kvUsage:  desc("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
		gpuUsage: desc("vllm:gpu_cache_usage_perc", "Deprecated alias of vllm:kv_cache_usage_perc."),
		hits:     desc("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens."),
		queries:  desc("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens."),
		prompt:   desc("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
		gen:      desc("vllm:generation_tokens_total", "Number of generation tokens processed."),
		success:  desc("vllm:request_success_total", "Count of successfully processed requests.", "finished_reason"),
		info: prometheus.MustNewConstMetric(prometheus.NewDesc("vllm:cache_config_info", "Information of the LLMEngine CacheConfig.", nil,
			prometheus.Labels{
				"block_size": strconv.Itoa(cfg.BlockSize), "num_gpu_blocks": strconv.Itoa(cfg.KVBlocks),
				"enable_prefix_caching": "True", "engine": "0",
			}), prometheus.GaugeValue, 1),
	})
}

func (m *metrics) handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// engineCollector exports the engine's state as vLLM-named metrics.
type engineCollector struct {
	e                                                               *engine
	running, waiting, kvUsage, gpuUsage, hits, queries, prompt, gen *prometheus.Desc
	success                                                         *prometheus.Desc
	info                                                            prometheus.Metric
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.running, c.waiting, c.kvUsage, c.gpuUsage, c.hits, c.queries, c.prompt, c.gen, c.success, c.info.Desc()} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.e.snapshot()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v int64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	gauge(c.running, float64(st.running))
	gauge(c.waiting, float64(st.waiting))
	gauge(c.kvUsage, st.kvUsage)
	gauge(c.gpuUsage, st.kvUsage)
	counter(c.hits, st.prefixHits)
	counter(c.queries, st.prefixQueries)
	counter(c.prompt, st.promptTokens)
	counter(c.gen, st.genTokens)
	for _, reason := range []string{finishStop, finishLength, finishAbort} {
		counter(c.success, st.finished[reason], reason) // zeros too, so rates work from the first scrape
	}
	ch <- c.info
}
