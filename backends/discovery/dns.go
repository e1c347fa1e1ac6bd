package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"
)

// DNS resolves a name into endpoints on an interval: every A and AAAA address with a fixed
// port, or every SRV target (itself resolved to its addresses) with its record's port. A
// headless Kubernetes Service answers both kinds with one record per ready pod.
type DNS struct {
	name     string
	port     int
	srv      bool
	scheme   string
	interval time.Duration
	ticks    <-chan time.Time
	resolver *net.Resolver
	log      *slog.Logger
}

var _ Source = (*DNS)(nil)

// DNSOption configures a DNS source.
type DNSOption func(*DNS)

// WithPort sets the port of the endpoints built from A and AAAA records; required unless
// WithSRV is given.
func WithPort(port int) DNSOption { return func(d *DNS) { d.port = port } }

// WithSRV looks the name up as SRV records instead of A and AAAA: each target is resolved
// to its addresses and served on the record's port.
func WithSRV() DNSOption { return func(d *DNS) { d.srv = true } }

// WithScheme sets the scheme of the endpoint URLs: http (default), https or grpc.
func WithScheme(scheme string) DNSOption {
	return func(d *DNS) {
		if scheme != "" {
			d.scheme = scheme
		}
	}
}

// WithInterval sets the time between resolutions; default 10s. Non-positive values keep the
// default.
func WithInterval(iv time.Duration) DNSOption {
	return func(d *DNS) {
		if iv > 0 {
			d.interval = iv
		}
	}
}

// WithTicks resolves again on each value received from c instead of every interval, so a
// caller (or a test) decides when. The first resolution still happens at once.
func WithTicks(c <-chan time.Time) DNSOption { return func(d *DNS) { d.ticks = c } }

// WithResolver sets the resolver asked; default net.DefaultResolver.
func WithResolver(r *net.Resolver) DNSOption {
	return func(d *DNS) {
		if r != nil {
			d.resolver = r
		}
	}
}

// WithServer asks the DNS server at addr (host:port) instead of the system's resolvers,
// using Go's own resolver.
func WithServer(addr string) DNSOption {
	return func(d *DNS) {
		if addr == "" {
			return
		}
		var dialer net.Dialer
		d.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		}}
	}
}

// WithDNSLogger sets where failed resolutions are reported; default slog.Default().
func WithDNSLogger(l *slog.Logger) DNSOption {
	return func(d *DNS) {
		if l != nil {
			d.log = l
		}
	}
}

// NewDNS returns a source that resolves name. It does no I/O until Run or Resolve.
func NewDNS(name string, opts ...DNSOption) *DNS {
	d := &DNS{name: name, scheme: "http", interval: 10 * time.Second, resolver: net.DefaultResolver, log: slog.Default()}
	for _, o := range opts {
		o(d)
	}
	return d
}

// errNoRecords marks a resolution that succeeded with nothing in it. It is treated as a
// failure so that a DNS hiccup never empties a pool; endpoints that really went away fail
// their health checks instead.
var errNoRecords = errors.New("discovery: no records")

// Resolve looks the name up once and returns the endpoint URLs, sorted and without
// duplicates. It fails when the lookup fails or finds nothing.
func (d *DNS) Resolve(ctx context.Context) ([]string, error) {
	var urls []string
	if d.srv {
		_, recs, err := d.resolver.LookupSRV(ctx, "", "", d.name)
		if err != nil {
			return nil, fmt.Errorf("discovery: SRV %s: %w", d.name, err)
		}
		for _, r := range recs {
			target := strings.TrimSuffix(r.Target, ".")
			addrs, err := d.addresses(ctx, target)
			if err != nil {
				return nil, fmt.Errorf("discovery: SRV %s target %s: %w", d.name, target, err)
			}
			for _, a := range addrs {
				urls = append(urls, endpointURL(d.scheme, a, int(r.Port)))
			}
		}
	} else {
		addrs, err := d.addresses(ctx, d.name)
		if err != nil {
			return nil, fmt.Errorf("discovery: %s: %w", d.name, err)
		}
		for _, a := range addrs {
			urls = append(urls, endpointURL(d.scheme, a, d.port))
		}
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("discovery: %s: %w", d.name, errNoRecords)
	}
	return normalize(urls), nil
}

// addresses resolves host to its A and AAAA addresses; an address is returned as it is.
func (d *DNS) addresses(ctx context.Context, host string) ([]string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []string{ip.String()}, nil
	}
	ips, err := d.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.IP.String())
	}
	return out, nil
}

// Run implements Source: it resolves at once, then on every interval (or tick), and reports
// each set that differs from the last one reported. A failed resolution is logged once per
// run of failures and keeps the last set.
func (d *DNS) Run(ctx context.Context, update func([]string)) error {
	if !d.srv && (d.port < 1 || d.port > 65535) {
		return fmt.Errorf("discovery: %s: A and AAAA records need a port", d.name)
	}
	ticks := d.ticks
	if ticks == nil {
		t := time.NewTicker(d.interval)
		defer t.Stop()
		ticks = t.C
	}
	var last []string
	failing := false
	for {
		urls, err := d.Resolve(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			d.log.Warn("endpoint discovery failed; keeping the last endpoints", "name", d.name, "endpoints", len(last), "err", err)
		case err == nil && failing:
			d.log.Info("endpoint discovery recovered", "name", d.name, "endpoints", len(urls))
		}
		failing = err != nil
		if err == nil && (last == nil || !slices.Equal(urls, last)) {
			last = urls
			update(slices.Clone(urls))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}
