package router_test

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard-ai/switchyard/router"
)

// TestMetricsObserve checks that outcomes recorded through the cached children add up per
// label set, and that a series shows only once something recorded into it.
func TestMetricsObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := router.NewMetrics(reg)
	ok := router.Outcome{Protocol: router.ProtocolOpenAI, Model: "m", Endpoint: "e1", Status: "200", Duration: time.Second,
		FirstByte: 100 * time.Millisecond, Operation: router.OpChat, Tenant: "a", InputTokens: 5, OutputTokens: 11}
	failed := router.Outcome{Protocol: router.ProtocolOpenAI, Model: "m", Endpoint: "e1", Status: "502", Duration: time.Second,
		Operation: router.OpChat, Tenant: "a", Failed: true}
	m.Observe(failed)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "gen_ai_server_time_to_first_token_seconds", "gen_ai_client_token_usage", "switchyard_time_to_first_byte_seconds":
			t.Errorf("%s has %d series before anything recorded into it", mf.GetName(), len(mf.GetMetric()))
		}
	}
	m.Observe(ok)
	m.Observe(ok)
	other := ok
	other.Endpoint, other.TargetModel = "e2", "m-large"
	m.Observe(other)
	for _, tt := range []struct {
		labels []string
		count  float64
	}{
		{[]string{`endpoint="e1"`, `status="200"`}, 2},
		{[]string{`endpoint="e1"`, `status="502"`}, 1},
		{[]string{`endpoint="e2"`, `status="200"`}, 1},
	} {
		if got := series(t, reg, "switchyard_requests_total", tt.labels).GetCounter().GetValue(); got != tt.count {
			t.Errorf("switchyard_requests_total%v = %v, want %v", tt.labels, got, tt.count)
		}
	}
	for _, tt := range []struct {
		name   string
		labels []string
		count  uint64
	}{
		{"gen_ai_server_request_duration_seconds", []string{`gen_ai_response_model="m"`, `error_type=""`}, 2},
		{"gen_ai_server_request_duration_seconds", []string{`error_type="502"`}, 1},
		{"gen_ai_server_request_duration_seconds", []string{`gen_ai_response_model="m-large"`, `server_address="e2"`}, 1},
		{"gen_ai_client_token_usage", []string{`gen_ai_response_model="m"`, `gen_ai_token_type="output"`}, 2},
		{"gen_ai_server_time_to_first_token_seconds", []string{`gen_ai_response_model="m"`}, 2},
		{"gen_ai_server_time_per_output_token_seconds", []string{`gen_ai_response_model="m-large"`}, 1},
	} {
		if got := series(t, reg, tt.name, tt.labels).GetHistogram().GetSampleCount(); got != tt.count {
			t.Errorf("%s%v: %d observations, want %d", tt.name, tt.labels, got, tt.count)
		}
	}
}

// series is the one series of the named metric whose labels include every name="value" in
// labels.
func series(t *testing.T, reg *prometheus.Registry, name string, labels []string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			var have []string
			for _, l := range m.GetLabel() {
				have = append(have, l.GetName()+`="`+l.GetValue()+`"`)
			}
			for _, want := range labels {
				if !slices.Contains(have, want) {
					continue series
				}
			}
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series match", name, labels, len(found))
	}
	return found[0]
}
