package integration_test

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends/discovery/discoverytest"
	"github.com/switchyard-ai/switchyard/backends/sim"
)

// TestDNSDiscoveryUnderLoad serves a pool found through SRV records on a loopback DNS
// server while streams run: endpoints are added, removed, and the DNS server fails for a
// while. Traffic follows each set, a removed endpoint stops getting requests, a failed
// resolution keeps the last set, and no stream fails.
func TestDNSDiscoveryUnderLoad(t *testing.T) {
	a, b, c := startSim(t, sim.Config{}), startSim(t, sim.Config{}), startSim(t, sim.Config{})
	dns := discoverytest.NewDNSServer(t)
	const name = "_http._tcp.vllm.models.test"
	records := func(sims ...*simServer) {
		var recs []discoverytest.SRV
		for i, s := range sims {
			_, port, err := net.SplitHostPort(s.Host)
			if err != nil {
				t.Fatal(err)
			}
			host := "pod-" + strconv.Itoa(i) + "-" + port + ".vllm.models.test"
			dns.SetAddrs(host, "127.0.0.1")
			recs = append(recs, discoverytest.SRV{Target: host, Port: uint16(mustAtoi(t, port))})
		}
		dns.SetSRV(name, recs...)
	}
	records(a, b)
	dns.Fail(true) // until the pool's first endpoints are known, the router is not ready
	srv, base := startRouter(t, `
pools:
  - name: p
    metrics: vllm
    stats: {interval: 50ms}
    discovery:
      dns: {name: `+name+`., type: srv, interval: 100ms, server: "`+dns.Addr()+`"}
models:
  - name: m
    pool: p
    target_model: sim-model
`)
	if code, body := httpGet(t, "http://"+srv.AdminAddr()+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no endpoints discovered") {
		t.Errorf("readyz before any endpoint is known: %d %q", code, body)
	}
	dns.Fail(false)
	eventually(t, "/readyz", func() bool {
		code, _ := httpGet(t, "http://"+srv.AdminAddr()+"/readyz")
		return code == http.StatusOK
	})
	load := startStreams(t, base, "m", 6)
	count := load.served
	defer func() {
		if failed, total := load.stop(); failed != 0 {
			t.Errorf("%d of %d streams failed", failed, total)
		}
	}()
	takesTraffic := func(sims ...*simServer) {
		t.Helper()
		for _, s := range sims {
			before := count(s.Host)
			eventually(t, "traffic on "+s.Host, func() bool { return count(s.Host) > before })
		}
	}
	// getsNone waits until s has served nothing during 30 completed streams.
	getsNone := func(s *simServer) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			n, seen := count(s.Host), load.total.Load()
			eventually(t, "30 more streams", func() bool { return load.total.Load() >= seen+30 })
			if count(s.Host) == n {
				return
			}
		}
		t.Fatalf("%s still gets traffic after it left the records", s.Host)
	}

	takesTraffic(a, b)
	records(a, b, c)
	takesTraffic(c)
	records(b, c)
	getsNone(a)
	takesTraffic(b, c)

	// The DNS server fails for a while: the pool keeps b and c.
	queries := dns.Queries()
	dns.Fail(true)
	eventually(t, "resolutions while DNS fails", func() bool { return dns.Queries() >= queries+6 })
	takesTraffic(b, c)
	dns.Fail(false)
	records(a)
	takesTraffic(a)
	getsNone(b)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
