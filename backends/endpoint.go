package backends

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Endpoint is one model server. Its identity (Name, URL) is immutable; its load counters are
// atomics, safe for concurrent use from the request path.
type Endpoint struct {
	// Name identifies the endpoint in headers, metrics and logs: host:port of its URL.
	Name string
	// URL is the server root, e.g. http://10.0.0.7:8000 (request paths are appended to it), or
	// grpc://10.0.0.7:8001 for a gRPC server.
	URL *url.URL
	// MetricsURL is where the server's Prometheus metrics are scraped: URL + /metrics by
	// default (for a gRPC endpoint, http on the same host and port). See WithMetricsPort.
	MetricsURL *url.URL

	inflight  atomic.Int64
	stats     atomic.Pointer[Stats]
	latency   latencyTracker
	flights   flights
	failures  atomic.Int32
	downUntil atomic.Int64 // unix nanoseconds; 0 when healthy
	drained   atomic.Bool
}

// Cool-off after consecutive connection failures: 1s, 2s, 4s ... capped at 30s.
const (
	baseCooloff = time.Second
	maxCooloff  = 30 * time.Second
)

// Healthy reports whether the endpoint may receive requests at now: it is not cooling off
// after connection failures. An endpoint whose cool-off has passed gets traffic again, and the
// next request to it is the probe that decides whether it stays in.
func (e *Endpoint) Healthy(now time.Time) bool { return now.UnixNano() >= e.downUntil.Load() }

// Drained reports whether an operator took the endpoint out of rotation: pickers skip it and
// sessions bound to it move, while requests already sent to it finish.
func (e *Endpoint) Drained() bool { return e.drained.Load() }

// SetDrained takes the endpoint out of rotation (true) or returns it (false). Safe for
// concurrent use.
func (e *Endpoint) SetDrained(drained bool) { e.drained.Store(drained) }

// MarkFailed records a failure to reach the endpoint at now and ejects it for a cool-off
// that doubles with each consecutive failure.
func (e *Endpoint) MarkFailed(now time.Time) {
	n := e.failures.Add(1)
	d := maxCooloff
	if n <= 5 {
		d = min(baseCooloff<<(n-1), maxCooloff)
	}
	e.downUntil.Store(now.Add(d).UnixNano())
}

// MarkOK records a successful exchange, ending any cool-off.
func (e *Endpoint) MarkOK() {
	if e.failures.Load() != 0 {
		e.failures.Store(0)
		e.downUntil.Store(0)
	}
}

// NewEndpoint parses raw (an http or https URL of a server root, or grpc://host:port) into
// an Endpoint.
func NewEndpoint(raw string) (*Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("backends: endpoint %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "grpc" {
		return nil, fmt.Errorf("backends: endpoint %q: scheme must be http, https or grpc", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("backends: endpoint %q: missing host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("backends: endpoint %q: must not have a query or fragment", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	m := *u
	m.Path += "/metrics"
	if m.Scheme == "grpc" {
		m.Scheme, m.Path = "http", "/metrics"
	}
	return &Endpoint{Name: u.Host, URL: u, MetricsURL: &m}, nil
}

// WithMetricsPort moves the endpoint's metrics to another port on the same host, as with
// Triton (gRPC on 8001, metrics on 8002). It returns e.
func (e *Endpoint) WithMetricsPort(port int) *Endpoint {
	m := *e.MetricsURL
	m.Host = net.JoinHostPort(e.URL.Hostname(), strconv.Itoa(port))
	e.MetricsURL = &m
	return e
}

// GRPC reports whether the endpoint speaks gRPC rather than HTTP.
func (e *Endpoint) GRPC() bool { return e.URL.Scheme == "grpc" }

// InFlight reports the requests this replica has sent to the endpoint that have not finished.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Acquire counts one more request in flight and returns the function that ends it. The
// returned function is safe to call more than once; only the first call counts.
func (e *Endpoint) Acquire() (release func()) {
	e.inflight.Add(1)
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			e.inflight.Add(-1)
		}
	}
}

// Pool is a named group of endpoints serving the same models over one protocol, reached
// through one upstream client. A Pool is immutable once built; load lives in its endpoints.
type Pool struct {
	Name      string
	Endpoints []*Endpoint
	// Client reaches HTTP endpoints and scrapes every endpoint's metrics.
	Client *HTTPClient
	// GRPC reaches gRPC endpoints; nil for a pool without any.
	GRPC *GRPCClient

	metrics atomic.Value // MetricsFormat
}

// NewPool returns a pool of endpoints that share client and the given metrics format
// (MetricsAuto until detected).
func NewPool(name string, endpoints []*Endpoint, client *HTTPClient, format MetricsFormat) *Pool {
	p := &Pool{Name: name, Endpoints: endpoints, Client: client}
	p.metrics.Store(format)
	return p
}

// MetricsFormat reports the metrics dialect of the pool's servers.
func (p *Pool) MetricsFormat() MetricsFormat { return p.metrics.Load().(MetricsFormat) }

// SetMetricsFormat records a detected metrics dialect. Safe for concurrent use.
func (p *Pool) SetMetricsFormat(f MetricsFormat) { p.metrics.Store(f) }
