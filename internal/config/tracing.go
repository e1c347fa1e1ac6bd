package config

import (
	"net"
	"time"
)

// Tracing exports OpenTelemetry traces over OTLP/gRPC: a span per request with children for
// the policy chain, each pick and each upstream attempt; W3C trace context is read from
// requests and passed to upstreams. Off unless otlp_endpoint is set.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/gRPC host:port; empty turns tracing off.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// Insecure sends to the collector without TLS. Default false (TLS, system roots).
	Insecure bool `yaml:"insecure"`
	// Headers are sent with every export, e.g. a collector's API key. Default none.
	Headers map[string]string `yaml:"headers,omitempty"`
	// SampleRatio is the fraction of new traces recorded, 0 to 1; a request that arrives
	// with a sampled parent is always recorded. Default 1.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name resource attribute. Default switchyard.
	ServiceName string `yaml:"service_name"`
	// ExportTimeout bounds one export. Default 10s.
	ExportTimeout Duration `yaml:"export_timeout"`
}

// Enabled reports whether traces are exported.
func (t *Tracing) Enabled() bool { return t.OTLPEndpoint != "" }

func (t *Tracing) setDefaults() {
	if t.SampleRatio == nil {
		one := 1.0
		t.SampleRatio = &one
	}
	if t.ServiceName == "" {
		t.ServiceName = "switchyard"
	}
	if t.ExportTimeout == 0 {
		t.ExportTimeout = Duration(10 * time.Second)
	}
}

func (t *Tracing) validate(add func(string, ...any)) {
	if t.OTLPEndpoint != "" {
		if _, _, err := net.SplitHostPort(t.OTLPEndpoint); err != nil {
			add("must be host:port", "tracing", "otlp_endpoint")
		}
	}
	if r := *t.SampleRatio; r < 0 || r > 1 {
		add("must be between 0 and 1", "tracing", "sample_ratio")
	}
	if t.ExportTimeout <= 0 {
		add("must be positive", "tracing", "export_timeout")
	}
}
