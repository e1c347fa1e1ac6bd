package backends

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// MetricsFormat names the Prometheus dialect a pool's servers export.
type MetricsFormat string

// The metrics dialects Switchyard knows.
const (
	MetricsAuto   MetricsFormat = "auto"   // detect from the first scrape
	MetricsVLLM   MetricsFormat = "vllm"   // vllm:* families
	MetricsSGLang MetricsFormat = "sglang" // sglang:* families
	MetricsTGI    MetricsFormat = "tgi"    // tgi_* families
	MetricsTriton MetricsFormat = "triton" // nv_* families
	MetricsNone   MetricsFormat = "none"   // no metrics: picking uses local counters only
)

// ParseMetricsFormat validates a configured format name.
func ParseMetricsFormat(s string) (MetricsFormat, error) {
	switch f := MetricsFormat(strings.ToLower(s)); f {
	case MetricsAuto, MetricsVLLM, MetricsSGLang, MetricsTGI, MetricsTriton, MetricsNone:
		return f, nil
	}
	return "", fmt.Errorf("unknown metrics format %q (want auto, vllm, sglang, tgi, triton or none)", s)
}

// SniffMetricsFormat names the dialect of a Prometheus text exposition by the first metric
// family it recognises, or MetricsNone when it recognises none.
func SniffMetricsFormat(exposition []byte) MetricsFormat {
	for line := range bytes.Lines(exposition) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		switch {
		case bytes.HasPrefix(line, []byte("vllm:")):
			return MetricsVLLM
		case bytes.HasPrefix(line, []byte("sglang:")):
			return MetricsSGLang
		case bytes.HasPrefix(line, []byte("tgi_")):
			return MetricsTGI
		case bytes.HasPrefix(line, []byte("nv_inference_")):
			return MetricsTriton
		}
	}
	return MetricsNone
}

// DetectMetricsFormat scrapes /metrics from the pool's endpoints until one answers and
// records the dialect it exports. It leaves the pool's format alone unless it is MetricsAuto.
func DetectMetricsFormat(ctx context.Context, p *Pool) (MetricsFormat, error) {
	if f := p.MetricsFormat(); f != MetricsAuto {
		return f, nil
	}
	var lastErr error
	for _, ep := range p.Endpoints {
		status, body, err := p.Client.Get(ctx, ep, "/metrics", 8<<20)
		if err != nil {
			lastErr = err
			continue
		}
		if status != 200 {
			lastErr = fmt.Errorf("backends: %s/metrics: status %d", ep.Name, status)
			continue
		}
		f := SniffMetricsFormat(body)
		p.SetMetricsFormat(f)
		return f, nil
	}
	return MetricsAuto, lastErr
}
