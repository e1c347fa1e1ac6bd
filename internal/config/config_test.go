package config_test

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/switchyard-ai/switchyard/internal/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestExampleNormalizesToGolden(t *testing.T) {
	c, err := config.Load("../../examples/switchyard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Marshal()
	const golden = "testdata/switchyard.normalized.yaml"
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("normalized config differs from %s (run with -update):\n%s", golden, got)
	}
	// The normalized form is itself a valid config that normalizes to the same thing.
	again, err := config.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Marshal()) != string(got) {
		t.Error("normalizing is not idempotent")
	}
}

func TestErrorsCarryLines(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each "line N: ..." substring, in order
	}{
		{"unknown key", "listen: 127.0.0.1:1\nlisten_addr: x\n", []string{"line 2: field listen_addr not found"}},
		{"unknown nested key", "pools:\n  - name: p\n    endpoint: http://x\n", []string{"line 3: field endpoint not found"}},
		{"bad duration", "upstream:\n  connect_timeout: soon\n", []string{"line 2: invalid duration \"soon\""}},
		{"syntax", "pools: [\n", []string{"line"}},
		{"validation", strings.Join([]string{
			"listen: nowhere",
			"pools:",
			"  - name: p",
			"    metrics: prom",
			"    endpoints:",
			"      - ftp://x",
			"      - http://a:1",
			"      - http://a:1",
			"  - name: p",
			"    endpoints: [http://b:1]",
			"models:",
			"  - name: m",
			"    pool: nope",
			"routing:",
			"  default_priority: urgent",
		}, "\n"), []string{
			"line 1: listen: \"nowhere\" is not a host:port address",
			"line 4: pools[0].metrics: unknown metrics format \"prom\"",
			"line 6: pools[0].endpoints[0]: \"ftp://x\": scheme must be http, https or grpc",
			"line 8: pools[0].endpoints[2]: duplicate endpoint",
			"line 9: pools[1].name: duplicate pool name \"p\"",
			"line 13: models[0].pool: unknown pool \"nope\"",
			"line 15: routing.default_priority: \"urgent\" is not one of priority_classes",
		}},
		{"no models", "listen: 127.0.0.1:1\n", []string{"no models configured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml))
			var errs *config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want *config.Errors", err)
			}
			msg := err.Error()
			pos := 0
			for _, w := range tt.want {
				i := strings.Index(msg[pos:], w)
				if i < 0 {
					t.Fatalf("error text lacks %q (in order):\n%s", w, msg)
				}
				pos += i + len(w)
			}
		})
	}
}

func TestAddBackendOverridesFile(t *testing.T) {
	c, err := config.Decode([]byte("pools:\n  - name: m\n    endpoints: [http://old:1]\n  - name: q\n    endpoints: [http://q:1]\nmodels:\n  - {name: m, pool: m}\n  - {name: other, pool: q}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddBackend("m=127.0.0.1:8001, http://127.0.0.1:8002"); err != nil {
		t.Fatal(err)
	}
	if err := c.AddBackend("new=https://h:443"); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(nil); err != nil {
		t.Fatal(err)
	}
	var pools []string
	for _, p := range c.Pools {
		pools = append(pools, p.Name+"="+strings.Join(p.Endpoints, ","))
	}
	want := "q=http://q:1 m=http://127.0.0.1:8001,http://127.0.0.1:8002 new=https://h:443"
	if strings.Join(pools, " ") != want {
		t.Errorf("pools = %v, want %s", pools, want)
	}
	if len(c.Models) != 3 || c.Pools[1].Metrics != "auto" {
		t.Errorf("models %v, metrics %q", c.Models, c.Pools[1].Metrics)
	}
	for _, bad := range []string{"m", "=http://x", "m=", "m=ftp://x"} {
		if err := c.AddBackend(bad); err == nil {
			t.Errorf("AddBackend(%q) accepted", bad)
		}
	}
}

func TestPoolUpstreamOverrideMerges(t *testing.T) {
	c, err := config.Parse([]byte("upstream:\n  connect_timeout: 1s\npools:\n  - name: p\n    endpoints: [http://a:1]\n    upstream:\n      idle_stream_timeout: 7s\nmodels:\n  - {name: m, pool: p}\n"))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Pools[0].Upstream
	if u.ConnectTimeout.D().String() != "1s" || u.IdleStreamTimeout.D().String() != "7s" || u.FirstByteTimeout.D().String() != "5m0s" {
		t.Errorf("merged upstream = %+v", u)
	}
}
