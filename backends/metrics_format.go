package backends

import (
	"bytes"
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
