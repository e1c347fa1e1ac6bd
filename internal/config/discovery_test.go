package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/internal/config"
)

func TestDiscoveryDefaultsAndErrors(t *testing.T) {
	const models = "models:\n  - {name: m, pool: p}\n"
	good, err := config.Parse([]byte("pools:\n  - name: p\n    protocol: kserve\n    discovery:\n      dns: {name: t.svc, port: 8001}\n" + models))
	if err != nil {
		t.Fatal(err)
	}
	d := good.Pools[0].Discovery.DNS
	if d.Type != "a" || d.Scheme != "grpc" || d.Interval.D() != 10*time.Second {
		t.Errorf("defaults: %+v", d)
	}
	tests := []struct {
		name, pool, want string
	}{
		{"neither endpoints nor discovery", "  - name: p\n", "line 2: pools[0].endpoints: a pool needs at least one endpoint or a discovery"},
		{"both sources", "  - name: p\n    discovery:\n      dns: {name: x, port: 1}\n      kubernetes: {service: x}\n", "line 3: pools[0].discovery: set exactly one of dns and kubernetes"},
		{"a record without port", "  - name: p\n    discovery:\n      dns: {name: x}\n", "pools[0].discovery.dns.port: type a needs a port"},
		{"unknown type", "  - name: p\n    discovery:\n      dns: {name: x, type: mx}\n", `pools[0].discovery.dns.type: "mx" is not a or srv`},
		{"grpc for openai", "  - name: p\n    discovery:\n      dns: {name: x, type: srv, scheme: grpc}\n", "grpc endpoints need protocol: kserve"},
		{"interval too short", "  - name: p\n    discovery:\n      dns: {name: x, type: srv, interval: 1ms}\n", "dns.interval: must be at least 100ms"},
		{"bad server", "  - name: p\n    discovery:\n      dns: {name: x, type: srv, server: nowhere}\n", `"nowhere" is not host:port`},
		{"service and selector", "  - name: p\n    discovery:\n      kubernetes: {service: x, selector: app=x}\n", "set exactly one of service and selector"},
		{"bad selector", "  - name: p\n    discovery:\n      kubernetes: {selector: app}\n", `"app" is not a label selector`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte("pools:\n" + tt.pool + models))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}
