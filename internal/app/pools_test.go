package app

import (
	"slices"
	"testing"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/internal/config"
)

func poolConfig(t *testing.T, yamlText string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yamlText))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const twoEndpoints = `
pools:
  - name: p
    endpoints: [http://10.0.0.1:8000, http://10.0.0.2:8000]
models:
  - {name: m, pool: p}
`

// TestPoolRebuildKeepsWhatStays rebuilds a pool after changes and checks which runtime
// objects survive: endpoints whose URL stays, the upstream client while its settings stay,
// the prefix index; and that an unchanged pool is not rebuilt at all.
func TestPoolRebuildKeepsWhatStays(t *testing.T) {
	var b poolBuilder
	cfg := poolConfig(t, twoEndpoints)
	old, _, err := b.build(cfg, cfg.Pools[0], cfg.Pools[0].Endpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.closeAll()
	byURL := func(p *poolRuntime, u string) *backends.Endpoint {
		i := slices.IndexFunc(p.pool.Endpoints, func(ep *backends.Endpoint) bool { return ep.URL.String() == u })
		if i < 0 {
			return nil
		}
		return p.pool.Endpoints[i]
	}
	release := byURL(old, "http://10.0.0.2:8000").Acquire() // a request in flight
	defer release()

	same, retired, err := b.build(cfg, cfg.Pools[0], cfg.Pools[0].Endpoints, old)
	if err != nil || same != old || retired != nil {
		t.Errorf("an unchanged pool was rebuilt (%v)", err)
	}

	tests := []struct {
		name       string
		yaml       string
		sameClient bool
	}{
		{"endpoint replaced", `
pools:
  - name: p
    endpoints: [http://10.0.0.2:8000, http://10.0.0.3:8000]
models:
  - {name: m, pool: p}
`, true},
		{"upstream settings changed", `
pools:
  - name: p
    endpoints: [http://10.0.0.2:8000, http://10.0.0.3:8000]
    upstream: {connect_timeout: 1s}
models:
  - {name: m, pool: p}
`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := poolConfig(t, tt.yaml)
			p, retired, err := b.build(next, next.Pools[0], next.Pools[0].Endpoints, old)
			if err != nil {
				t.Fatal(err)
			}
			defer p.discard(old)
			kept := byURL(p, "http://10.0.0.2:8000")
			if kept == nil || kept != byURL(old, "http://10.0.0.2:8000") || kept.InFlight() != 1 {
				t.Error("the endpoint that stayed lost its runtime object")
			}
			if byURL(p, "http://10.0.0.1:8000") != nil || byURL(p, "http://10.0.0.3:8000") == nil {
				t.Errorf("endpoints %v", p.pool.Endpoints)
			}
			if (p.pool.Client == old.pool.Client) != tt.sameClient {
				t.Errorf("client reused = %v, want %v", p.pool.Client == old.pool.Client, tt.sameClient)
			}
			if (retired.http != nil) == tt.sameClient {
				t.Errorf("old client retired = %v", retired.http != nil)
			}
			if p.prefixes != old.prefixes || p.sched == old.sched {
				t.Error("want the prefix index kept and a new scheduler")
			}
		})
	}
}

func TestRestartOnlySettings(t *testing.T) {
	base := poolConfig(t, twoEndpoints)
	tests := []struct {
		name string
		edit func(*config.Config)
		want []string
	}{
		{"pools and models reload", func(c *config.Config) {
			c.Models = append(c.Models, config.Model{Name: "m2", Pool: "p", TargetModel: "m2"})
		}, nil},
		{"limits reload", func(c *config.Config) { c.Limits.DefaultOutputTokens = 9 }, nil},
		{"session ttl reloads", func(c *config.Config) { c.Routing.SessionTTL *= 2 }, nil},
		{"listen", func(c *config.Config) { c.Listen = "0.0.0.0:1" }, []string{"listen"}},
		{"server and routing headers", func(c *config.Config) { c.Server.MaxBodyBytes = 1; c.Routing.SessionHeader = "x" }, []string{"server", "routing"}},
		{"cluster", func(c *config.Config) { c.Cluster.Etcd.Endpoints = []string{"127.0.0.1:2379"} }, []string{"cluster"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := poolConfig(t, twoEndpoints)
			tt.edit(next)
			got := restartOnly(base, next)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("restartOnly = %v, want %v", got, tt.want)
			}
			keepStatic(base, next)
			if got := restartOnly(base, next); got != nil {
				t.Errorf("after keepStatic still differs in %v", got)
			}
		})
	}
}
