package discovery_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends/discovery"
	"github.com/switchyard-ai/switchyard/backends/discovery/discoverytest"
)

func TestDNSResolve(t *testing.T) {
	srv := discoverytest.NewDNSServer(t)
	srv.SetAddrs("vllm.models.test", "10.0.0.8", "10.0.0.7", "fd00::1")
	srv.SetAddrs("pod-a.vllm.models.test", "10.0.1.1")
	srv.SetAddrs("pod-b.vllm.models.test", "10.0.1.2")
	srv.SetSRV("_http._tcp.vllm.models.test",
		discoverytest.SRV{Target: "pod-a.vllm.models.test", Port: 8000},
		discoverytest.SRV{Target: "pod-b.vllm.models.test", Port: 8001})
	tests := []struct {
		name string
		host string
		opts []discovery.DNSOption
		want []string
	}{
		{"A and AAAA with the configured port", "vllm.models.test.", []discovery.DNSOption{discovery.WithPort(8000)},
			[]string{"http://10.0.0.7:8000", "http://10.0.0.8:8000", "http://[fd00::1]:8000"}},
		{"scheme", "vllm.models.test.", []discovery.DNSOption{discovery.WithPort(8001), discovery.WithScheme("grpc")},
			[]string{"grpc://10.0.0.7:8001", "grpc://10.0.0.8:8001", "grpc://[fd00::1]:8001"}},
		{"SRV targets resolved, each with its port", "_http._tcp.vllm.models.test.", []discovery.DNSOption{discovery.WithSRV()},
			[]string{"http://10.0.1.1:8000", "http://10.0.1.2:8001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := discovery.NewDNS(tt.host, append(tt.opts, discovery.WithServer(srv.Addr()))...)
			got, err := d.Resolve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDNSResolveFailures(t *testing.T) {
	srv := discoverytest.NewDNSServer(t)
	srv.SetAddrs("empty.test")
	srv.SetSRV("_http._tcp.dangling.test", discoverytest.SRV{Target: "gone.test", Port: 80})
	tests := []struct {
		name string
		host string
		opts []discovery.DNSOption
	}{
		{"unknown name", "nowhere.test.", []discovery.DNSOption{discovery.WithPort(80)}},
		{"no records", "empty.test.", []discovery.DNSOption{discovery.WithPort(80)}},
		{"SRV target that does not resolve", "_http._tcp.dangling.test.", []discovery.DNSOption{discovery.WithSRV()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := discovery.NewDNS(tt.host, append(tt.opts, discovery.WithResolver(srv.Resolver()))...)
			if got, err := d.Resolve(context.Background()); err == nil {
				t.Errorf("resolved to %q, want an error", got)
			}
		})
	}
}

// TestDNSRunFollowsRecords drives resolutions by ticks: the reported set follows the
// records, an unchanged set is not reported again, and a failed resolution (SERVFAIL, then
// a name that vanished) keeps the last good set until the records come back.
func TestDNSRunFollowsRecords(t *testing.T) {
	srv := discoverytest.NewDNSServer(t)
	srv.SetAddrs("pool.test", "127.0.0.10")
	ticks := make(chan time.Time)
	updates := make(chan []string, 16)
	d := discovery.NewDNS("pool.test.", discovery.WithPort(9000), discovery.WithServer(srv.Addr()), discovery.WithTicks(ticks))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx, func(u []string) { updates <- u }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	expect := func(want ...string) { t.Helper(); expectUpdate(t, updates, want...) }
	// tick asks for one more resolution and waits until the server has answered both its
	// queries (A and AAAA). Updates arrive in order, so a wrong report after a tick shows up
	// at the next expect.
	tick := func() {
		t.Helper()
		before := srv.Queries()
		ticks <- time.Now() // accepted once the previous resolution is over
		for deadline := time.Now().Add(5 * time.Second); srv.Queries() < before+2; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the resolution's queries did not reach the server")
			}
		}
	}
	expect("http://127.0.0.10:9000")

	srv.SetAddrs("pool.test", "127.0.0.10", "127.0.0.11")
	tick()
	expect("http://127.0.0.10:9000", "http://127.0.0.11:9000")

	tick() // same records: nothing reported
	srv.Fail(true)
	tick()
	srv.Fail(false)
	srv.SetAddrs("pool.test")
	tick()

	// Had any of the last three resolutions reported, expect would see that report first.
	srv.SetAddrs("pool.test", "127.0.0.11")
	tick()
	expect("http://127.0.0.11:9000")
}

// expectUpdate waits for the next reported set and checks it.
func expectUpdate(t *testing.T, updates <-chan []string, want ...string) {
	t.Helper()
	select {
	case got := <-updates:
		if !slices.Equal(got, want) {
			t.Fatalf("update %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no update, want %q", want)
	}
}

func TestDNSRunNeedsPort(t *testing.T) {
	d := discovery.NewDNS("pool.test.")
	if err := d.Run(context.Background(), func([]string) {}); err == nil {
		t.Error("A lookups without a port started")
	}
}
