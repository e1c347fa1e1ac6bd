package app

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/cluster"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/router"
)

// poolRuntime is one pool as built from its configuration and its current endpoint set. It
// is immutable once built; a change builds a new one that keeps what did not change: the
// endpoints whose URL stays (their load, stats, health and latency history), the upstream
// clients when the upstream settings stay, and the prefix index.
type poolRuntime struct {
	settings poolSettings
	urls     []string // static endpoints, then discovered ones
	pool     *backends.Pool
	sched    *router.Scheduler
	prefixes *router.PrefixIndex
	// retired are this pool's earlier schedulers that still had requests waiting for
	// capacity when they were replaced; wake wakes them too, so that those requests are not
	// left waiting on a scheduler nothing wakes any more.
	retired []*router.Scheduler
}

// poolSettings is everything a pool's runtime is built from except its endpoint list.
type poolSettings struct {
	pool          config.Pool // with Endpoints and Discovery cleared
	shed          []string
	sessionTTL    config.Duration
	sessionMargin int
	maxGRPC       int64
}

func settingsOf(cfg *config.Config, pc config.Pool) poolSettings {
	pc.Endpoints, pc.Discovery = nil, nil
	return poolSettings{pool: pc, shed: cfg.Routing.ShedClasses, sessionTTL: cfg.Routing.SessionTTL,
		sessionMargin: cfg.Routing.SessionMargin, maxGRPC: cfg.Server.MaxGRPCMessageBytes}
}

// wake lets requests waiting for capacity in this pool try again.
func (p *poolRuntime) wake() {
	p.sched.Wake()
	for _, s := range p.retired {
		s.Wake()
	}
}

// poolBuilder builds pool runtimes, reusing the parts of the previous one that still fit.
type poolBuilder struct {
	metrics  *router.Metrics
	sessions cluster.Sessions
	tracing  *tracing
}

// build returns the runtime of pool pc in cfg with the given endpoint URLs, reusing old
// (nil for a new pool). It returns old itself when nothing changed. The second result is
// what the caller must close once the new runtime is published: upstream clients of old
// that the new one does not share.
func (b *poolBuilder) build(cfg *config.Config, pc config.Pool, urls []string, old *poolRuntime) (*poolRuntime, *retiredClients, error) {
	st := settingsOf(cfg, pc)
	if old != nil && slices.Equal(urls, old.urls) && reflect.DeepEqual(st, old.settings) {
		return old, nil, nil
	}
	sameUpstream := old != nil && reflect.DeepEqual(pc.Upstream, old.settings.pool.Upstream) &&
		pc.Protocol == old.settings.pool.Protocol && st.maxGRPC == old.settings.maxGRPC
	var kept map[string]*backends.Endpoint
	if old != nil {
		kept = make(map[string]*backends.Endpoint, len(old.pool.Endpoints))
		for _, ep := range old.pool.Endpoints {
			kept[endpointKey(ep)] = ep
		}
	}
	eps := make([]*backends.Endpoint, 0, len(urls))
	for _, raw := range urls {
		ep, err := backends.NewEndpoint(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("pool %s: %w", pc.Name, err)
		}
		if pc.Stats.MetricsPort != 0 {
			ep.WithMetricsPort(pc.Stats.MetricsPort)
		}
		if prev := kept[endpointKey(ep)]; prev != nil {
			ep = prev
		}
		eps = append(eps, ep)
	}
	format, err := backends.ParseMetricsFormat(pc.Metrics)
	if err != nil {
		return nil, nil, fmt.Errorf("pool %s: %w", pc.Name, err)
	}
	if format == backends.MetricsAuto && old != nil && old.settings.pool.Metrics == pc.Metrics {
		format = old.pool.MetricsFormat() // keep what was detected
	}
	u := pc.Upstream
	opts := backends.HTTPOptions{Propagate: b.tracing.injectHTTP(),
		ConnectTimeout: u.ConnectTimeout.D(), FirstByteTimeout: u.FirstByteTimeout.D(),
		IdleStreamTimeout: u.IdleStreamTimeout.D(), MaxIdleConns: u.MaxIdleConnsPerEndpoint,
	}
	if u.TLS != nil {
		opts.TLS = &backends.TLSOptions{CAFile: u.TLS.CAFile, CertFile: u.TLS.CertFile, KeyFile: u.TLS.KeyFile,
			ServerName: u.TLS.ServerName, InsecureSkipVerify: u.TLS.InsecureSkipVerify}
	}
	var client *backends.HTTPClient
	if sameUpstream {
		client = old.pool.Client
	} else if client, err = backends.NewHTTPClient(opts); err != nil {
		return nil, nil, fmt.Errorf("pool %s: %w", pc.Name, err)
	}
	p := backends.NewPool(pc.Name, eps, client, format)
	if pc.Protocol == "kserve" {
		if sameUpstream && old.pool.GRPC != nil {
			p.GRPC, err = old.pool.GRPC.Derive(eps)
		} else {
			p.GRPC, err = backends.NewGRPCClient(eps, backends.GRPCOptions{ConnectTimeout: u.ConnectTimeout.D(), DialOptions: b.tracing.grpcDialOptions(),
				MaxMessageBytes: int(cfg.Server.MaxGRPCMessageBytes), TLS: opts.TLS})
		}
		if err != nil {
			if !sameUpstream {
				client.Close()
			}
			return nil, nil, fmt.Errorf("pool %s: %w", pc.Name, err)
		}
	}
	var retire *retiredClients
	if old != nil {
		retire = retiredFrom(old.pool, p, sameUpstream && old.pool.GRPC != nil)
	}
	prefixes := router.NewPrefixIndex(0)
	var retired []*router.Scheduler
	if old != nil {
		prefixes = old.prefixes
		for _, ep := range old.pool.Endpoints {
			if !slices.Contains(eps, ep) {
				prefixes.Forget(ep)
			}
		}
		for _, s := range append(old.retired, old.sched) {
			if s.Waiting() > 0 {
				retired = append(retired, s)
			}
		}
	}
	sc := pc.Scheduling
	schedOpts := []router.SchedulerOption{router.WithQueue(sc.Queue.MaxWaiting, sc.Queue.Timeout.D()),
		router.WithPrefixIndex(prefixes), router.WithSchedulerMetrics(b.metrics)}
	if *sc.SessionAffinity {
		schedOpts = append(schedOpts, router.WithSessions(b.sessions, cfg.Routing.SessionTTL.D(),
			int64(sc.Saturation.MaxQueue+cfg.Routing.SessionMargin), min(1, sc.Saturation.MaxKV+0.1)))
	}
	sched := router.NewScheduler(p, newPicker(pc, prefixes, cfg.Routing.ShedClasses), schedOpts...)
	return &poolRuntime{settings: st, urls: urls, pool: p, sched: sched, prefixes: prefixes, retired: retired}, retire, nil
}

// endpointKey identifies an endpoint across rebuilds: the same server, scraped at the same
// place.
func endpointKey(ep *backends.Endpoint) string { return ep.URL.String() + " " + ep.MetricsURL.String() }

// retiredClients are upstream clients, or parts of them, that a rebuilt pool no longer uses.
// An HTTP client is closed at once: that only drops its idle connections, and requests in
// flight finish on theirs. gRPC connections carry streams, so they are closed only once the
// endpoints they reach have nothing in flight (or, under endless load on endpoints that
// stayed, after retireLimit).
type retiredClients struct {
	http      *backends.HTTPClient
	grpc      *backends.GRPCClient
	grpcNext  *backends.GRPCClient // connections shared with this client stay open
	endpoints []*backends.Endpoint // what the retired gRPC connections reach
}

// retiredFrom lists what next no longer uses of old; derived says whether next's gRPC
// client was derived from old's, sharing the connections of the endpoints both have.
func retiredFrom(old, next *backends.Pool, derived bool) *retiredClients {
	r := &retiredClients{}
	if old.Client != next.Client {
		r.http = old.Client
	}
	if old.GRPC != nil {
		r.grpc = old.GRPC
		if derived {
			r.grpcNext = next.GRPC
		}
		for _, ep := range old.Endpoints {
			if !derived || !slices.Contains(next.Endpoints, ep) {
				r.endpoints = append(r.endpoints, ep)
			}
		}
	}
	return r
}

// idle reports whether nothing is in flight on the retired gRPC connections' endpoints.
func (r *retiredClients) idle() bool {
	for _, ep := range r.endpoints {
		if ep.InFlight() > 0 {
			return false
		}
	}
	return true
}

func (r *retiredClients) close() {
	if r.http != nil {
		r.http.Close()
	}
	if r.grpc != nil {
		r.grpc.CloseUnshared(r.grpcNext)
	}
}

// closeAll closes every client of the pool, at shutdown.
func (p *poolRuntime) closeAll() {
	p.pool.Client.Close()
	if p.pool.GRPC != nil {
		p.pool.GRPC.Close()
	}
}

// buildTable builds the routing table of cfg's models over the given pools' schedulers.
func buildTable(cfg *config.Config, pools map[string]*poolRuntime) *router.Table {
	protocols := map[string]router.Protocol{}
	for _, pc := range cfg.Pools {
		protocols[pc.Name] = router.ProtocolOpenAI
		if pc.Protocol == "kserve" {
			protocols[pc.Name] = router.ProtocolKServe
		}
	}
	var routes []*router.Route
	concrete := map[string]*router.Route{}
	for _, m := range cfg.Models {
		if len(m.Routes) > 0 {
			continue
		}
		rt := &router.Route{Protocol: protocols[m.Pool], Model: m.Name, TargetModel: m.TargetModel, Scheduler: pools[m.Pool].sched}
		for _, o := range m.Overflow {
			rt.Overflow = append(rt.Overflow, pools[o].sched)
		}
		routes = append(routes, rt)
		concrete[m.Name] = rt
	}
	var virtual []*router.Virtual
	for _, m := range cfg.Models {
		if len(m.Routes) == 0 {
			continue
		}
		v := &router.Virtual{Name: m.Name}
		for _, rr := range m.Routes {
			rule := router.Rule{}
			if w := rr.When; w != nil {
				rule.Match = &router.Match{MinPromptTokens: w.MinPromptTokens, MaxPromptTokens: w.MaxPromptTokens,
					MinOutputTokens: w.MinOutputTokens, MaxOutputTokens: w.MaxOutputTokens,
					Priorities: w.Priorities, Tenants: w.Tenants, Headers: w.Headers}
			}
			for _, t := range rr.To {
				rule.Targets = append(rule.Targets, concrete[t.Model])
				rule.Weights = append(rule.Weights, t.Weight)
				v.Protocol = concrete[t.Model].Protocol
			}
			v.Rules = append(v.Rules, rule)
		}
		virtual = append(virtual, v)
	}
	return router.NewTable(routes, virtual...)
}
