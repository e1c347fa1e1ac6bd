package sim

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// The simulated GPU: 80 GiB, of which the model's weights take a fixed part
// and every queued or running tensor request a slice more.
const (
	gpuMemoryTotal      = 80 << 30
	gpuMemoryWeights    = 2 << 30
	gpuMemoryPerRequest = 256 << 20
)

// registerTriton adds the collector that exports the tensor model's state
// under Triton's metric names, read at scrape time so a scrape is exact.
func (m *metrics) registerTriton(cfg Config, t *tensorModel) {
	model := prometheus.Labels{"model": cfg.TensorModel, "version": tensorVersion}
	gpu := prometheus.Labels{"gpu_uuid": fmt.Sprintf("GPU-%08x-0000-4000-8000-%012x", uint32(cfg.Seed), uint64(cfg.Seed)&(1<<48-1))}
	desc := func(name, help string, labels prometheus.Labels, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, variable, labels)
	}
	m.reg.MustRegister(&tritonCollector{
		t: t, concurrency: cfg.TensorConcurrency,
		success:    desc("nv_inference_request_success", "Inference requests that completed successfully.", model),
		failure:    desc("nv_inference_request_failure", "Inference requests that failed, by reason.", model, "reason"),
		count:      desc("nv_inference_count", "Inferences performed; one per successful request, as the simulated model does not batch.", model),
		execs:      desc("nv_inference_exec_count", "Model executions performed; one per successful request.", model),
		requestDur: desc("nv_inference_request_duration_us", "Total time from arrival to response of successful requests, in microseconds.", model),
		queueDur:   desc("nv_inference_queue_duration_us", "Total time successful requests waited for a compute slot, in microseconds.", model),
		computeDur: desc("nv_inference_compute_infer_duration_us", "Total compute time of successful requests, in microseconds.", model),
		pending:    desc("nv_inference_pending_request_count", "Requests queued for a compute slot now.", model),
		memTotal:   desc("nv_gpu_memory_total_bytes", "Simulated GPU memory, in bytes.", gpu),
		memUsed:    desc("nv_gpu_memory_used_bytes", "Simulated GPU memory in use, in bytes: weights plus a share per queued or running request.", gpu),
		util:       desc("nv_gpu_utilization", "Fraction of tensor compute slots busy, 0 to 1.", gpu),
	})
}

// tritonCollector exports a tensorModel's state as Triton-named metrics.
// Without dynamic batching every successful request is one inference and
// one execution.
type tritonCollector struct {
	t                                         *tensorModel
	concurrency                               int
	success, failure, count, execs            *prometheus.Desc
	requestDur, queueDur, computeDur, pending *prometheus.Desc
	memTotal, memUsed, util                   *prometheus.Desc
}

func (c *tritonCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.success, c.failure, c.count, c.execs, c.requestDur, c.queueDur,
		c.computeDur, c.pending, c.memTotal, c.memUsed, c.util} {
		ch <- d
	}
}

func (c *tritonCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.t.snapshot()
	metric := func(d *prometheus.Desc, typ prometheus.ValueType, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, typ, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) { metric(d, prometheus.CounterValue, v, lv...) }
	counter(c.success, float64(st.success))
	for _, r := range failureReasons {
		counter(c.failure, float64(st.failures[r]), r) // zeros too, so rates work from the first scrape
	}
	counter(c.count, float64(st.success))
	counter(c.execs, float64(st.success))
	counter(c.requestDur, float64(st.requestDur.Microseconds()))
	counter(c.queueDur, float64(st.queueDur.Microseconds()))
	counter(c.computeDur, float64(st.computeDur.Microseconds()))
	metric(c.pending, prometheus.GaugeValue, float64(st.waiting))
	metric(c.memTotal, prometheus.GaugeValue, gpuMemoryTotal)
	used := min(gpuMemoryTotal, gpuMemoryWeights+gpuMemoryPerRequest*float64(st.running+st.waiting))
	metric(c.memUsed, prometheus.GaugeValue, used)
	metric(c.util, prometheus.GaugeValue, float64(st.running)/float64(c.concurrency))
}
