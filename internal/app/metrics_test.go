package app_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

// descRE reads a prometheus.Desc's string form.
var descRE = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", help: "(.*)", (?:unit: "[^"]*", )?constLabels: \{(.*)\}, variableLabels: \{(.*)\}\}$`)

// TestMetricNamesGolden pins every series the router exports (Go runtime and process series
// aside): names, label names and help text, so a rename or a silently changed meaning shows
// up in review. Regenerate with -update.
func TestMetricNamesGolden(t *testing.T) {
	cfg, err := config.Decode([]byte("pools: [{name: p, metrics: vllm, endpoints: [\"http://127.0.0.1:1\"]}]\nmodels: [{name: m, pool: p}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	if err := cfg.Finish(nil); err != nil {
		t.Fatal(err)
	}
	s, err := app.Start(context.Background(), cfg, app.WithLogOutput(discard{}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	ch := make(chan *prometheus.Desc, 256)
	go func() { s.Metrics().Describe(ch); close(ch) }()
	var lines []string
	for d := range ch {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("unreadable descriptor %s", d)
		}
		name := m[1]
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		labels := strings.Trim(m[4], " ")
		if m[3] != "" {
			labels = strings.TrimPrefix(labels+","+m[3], ",")
		}
		lines = append(lines, fmt.Sprintf("%s{%s}\n    %s", name, labels, m[2]))
	}
	slices.Sort(lines)
	got := strings.Join(lines, "\n") + "\n"
	const golden = "testdata/metrics.golden"
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("metric names or help changed; if intended, run go test ./internal/app -run TestMetricNamesGolden -update\n--- got\n%s", got)
	}
	for _, must := range []string{"gen_ai_server_request_duration_seconds", "gen_ai_server_time_to_first_token_seconds",
		"gen_ai_server_time_per_output_token_seconds", "gen_ai_client_token_usage", "switchyard_cluster_mode"} {
		if !strings.Contains(got, must+"{") {
			t.Errorf("%s is not exported", must)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
