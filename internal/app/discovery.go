package app

import (
	"context"
	"maps"
	"reflect"
	"slices"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/backends/discovery"
	"github.com/switchyard-ai/switchyard/internal/config"
)

// WithKubernetesClient sets the client that pools with Kubernetes discovery watch
// EndpointSlices through. Default: the in-cluster client of the pod's service account.
func WithKubernetesClient(c discovery.Client) StartOption {
	return func(o *startOptions) { o.kube = c }
}

// poolLoops are a pool's background loops: the scrape loop over its current endpoints and
// its discovery source. Both are restarted only when what they depend on changes.
type poolLoops struct {
	scraped    *poolRuntime // the runtime the scrape loop covers
	stopScrape context.CancelFunc
	discovery  *config.Discovery // what the running source was built from
	source     *struct{}         // identifies the running source's updates
	stopSource context.CancelFunc
}

// syncLoops makes pool pc's loops match its runtime p and its discovery settings.
func (r *reloader) syncLoops(pc config.Pool, p *poolRuntime) {
	l := r.loops[pc.Name]
	if l == nil {
		l = &poolLoops{}
		r.loops[pc.Name] = l
	}
	if l.scraped != p {
		if l.stopScrape != nil {
			l.stopScrape()
			l.stopScrape = nil
		}
		l.scraped = p
		if p.pool.MetricsFormat() != backends.MetricsNone {
			st := pc.Stats
			c := backends.NewCollector([]*backends.Pool{p.pool},
				backends.WithScrapeInterval(st.Interval.D()), backends.WithScrapeTimeout(st.Timeout.D()),
				backends.WithFailureThreshold(st.FailureThreshold), backends.WithLogger(r.log),
				// Fresh stats may show room: let a request waiting for capacity try again.
				backends.WithOnScrape(func(*backends.Pool, *backends.Endpoint) { p.wake() }))
			ctx, cancel := context.WithCancel(r.bg)
			l.stopScrape = cancel
			r.wg.Go(func() { c.Run(ctx) })
		}
	}
	if reflect.DeepEqual(l.discovery, pc.Discovery) && (l.source != nil || pc.Discovery == nil) {
		return
	}
	if l.stopSource != nil {
		l.stopSource()
		l.stopSource, l.source = nil, nil
	}
	l.discovery = pc.Discovery
	if pc.Discovery == nil {
		return
	}
	src, err := r.newSource(pc)
	if err != nil {
		r.log.Error("endpoint discovery not started", "pool", pc.Name, "err", err)
		return
	}
	token := new(struct{})
	ctx, cancel := context.WithCancel(r.bg)
	l.source, l.stopSource = token, cancel
	name := pc.Name
	r.wg.Go(func() {
		if err := src.Run(ctx, func(urls []string) { r.discoveredUpdate(name, token, urls) }); err != nil {
			r.log.Error("endpoint discovery stopped", "pool", name, "err", err)
		}
	})
}

// stopLoops stops a removed pool's loops.
func (r *reloader) stopLoops(name string) {
	if l := r.loops[name]; l != nil {
		if l.stopScrape != nil {
			l.stopScrape()
		}
		if l.stopSource != nil {
			l.stopSource()
		}
		delete(r.loops, name)
	}
}

// newSource builds the discovery source that pc's settings describe.
func (r *reloader) newSource(pc config.Pool) (discovery.Source, error) {
	if d := pc.Discovery.DNS; d != nil {
		opts := []discovery.DNSOption{discovery.WithScheme(d.Scheme), discovery.WithInterval(d.Interval.D()),
			discovery.WithServer(d.Server), discovery.WithDNSLogger(r.log.With("pool", pc.Name))}
		if d.Type == "srv" {
			opts = append(opts, discovery.WithSRV())
		} else {
			opts = append(opts, discovery.WithPort(d.Port))
		}
		return discovery.NewDNS(d.Name, opts...), nil
	}
	k := pc.Discovery.Kubernetes
	client := r.kube
	if client == nil {
		var err error
		if client, err = discovery.NewInCluster(); err != nil {
			return nil, err
		}
		r.kube = client
	}
	opts := []discovery.KubernetesOption{discovery.WithPortName(k.Port), discovery.WithKubernetesScheme(k.Scheme),
		discovery.WithKubernetesLogger(r.log.With("pool", pc.Name))}
	if k.Service != "" {
		opts = append(opts, discovery.WithService(k.Service))
	} else {
		opts = append(opts, discovery.WithSelector(k.Selector))
	}
	return discovery.NewKubernetes(client, k.Namespace, opts...), nil
}

// awaitingDiscovery names a pool that has no static endpoints and whose discovery has not
// reported yet, or returns "" when there is none: until then the router is not ready.
func (r *reloader) awaitingDiscovery() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pc := range r.cfg.Pools {
		if _, found := r.discovered[pc.Name]; pc.Discovery != nil && len(pc.Endpoints) == 0 && !found {
			return pc.Name
		}
	}
	return ""
}

// discoveredUpdate rebuilds one pool over its newly discovered endpoints and publishes a
// routing table with it, keeping the endpoints that stayed. Updates from a source that has
// since been replaced are ignored.
func (r *reloader) discoveredUpdate(name string, source *struct{}, urls []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.loops[name]; l == nil || l.source != source {
		return
	}
	i := slices.IndexFunc(r.cfg.Pools, func(pc config.Pool) bool { return pc.Name == name })
	if i < 0 {
		return
	}
	pc := r.cfg.Pools[i]
	valid := urls[:0:0]
	for _, u := range urls {
		if _, err := backends.NewEndpoint(u); err != nil {
			r.log.Warn("discovered endpoint ignored", "pool", name, "endpoint", u, "err", err)
			continue
		}
		valid = append(valid, u)
	}
	r.discovered[name] = valid
	old := r.pools[name]
	p, retired, err := r.builder.build(r.cfg, pc, endpointURLs(pc, valid), old)
	if err != nil {
		r.log.Error("discovered endpoints not applied", "pool", name, "err", err)
		return
	}
	if p == old {
		return
	}
	next := maps.Clone(r.pools)
	next[name] = p
	r.publish(r.cfg, next)
	var rets []*retiredClients
	if retired != nil {
		rets = append(rets, retired)
	}
	r.retire(r.cfg, next, rets)
	r.log.Info("discovered endpoints applied", "pool", name, "endpoints", len(p.pool.Endpoints), "discovered", len(valid))
}
