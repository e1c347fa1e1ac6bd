package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/backends/discovery"
	"github.com/switchyard-ai/switchyard/cluster"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/policy"
	"github.com/switchyard-ai/switchyard/router"
)

// Defaults of the reload machinery.
const (
	// defaultConfigPoll is how often the config file's content is checked for a change.
	defaultConfigPoll = time.Second
	// retireLimit bounds how long gRPC connections to endpoints that stayed in a pool wait
	// for their calls to finish after their client was replaced.
	retireLimit = 10 * time.Minute
)

// WithConfigFile makes the server reload its configuration when the file at path changes
// (its content is checked every second, see WithConfigPollInterval) and on SIGHUP. load
// builds the whole effective configuration again, as at start: the file, then any
// command-line settings over it, then defaults and validation.
func WithConfigFile(path string, load func() (*config.Config, error)) StartOption {
	return func(o *startOptions) { o.configFile, o.loadConfig = path, load }
}

// WithConfigPollInterval sets how often the config file is checked for a change. Default 1s.
func WithConfigPollInterval(d time.Duration) StartOption {
	return func(o *startOptions) { o.configPoll = d }
}

// ConfigVersion identifies the configuration a server runs.
type ConfigVersion struct {
	// Hash is the SHA-256 of the normalized configuration, in hex (first 16 digits).
	Hash string
	// LoadedAt is when it was applied.
	LoadedAt time.Time
	// Config is the effective configuration; static settings keep the values the server
	// started with. Callers must not modify it.
	Config *config.Config
}

// ConfigVersion reports the configuration in force and when it was applied. Safe for
// concurrent use.
func (s *Server) ConfigVersion() ConfigVersion { return *s.reload.version.Load() }

// Reload reads the configuration again and applies it, as a changed file or SIGHUP does.
// An invalid configuration is rejected: the error (with its file lines) is logged and
// returned, and the running configuration keeps serving. Without WithConfigFile there is
// nothing to read, and Reload returns an error.
func (s *Server) Reload() error { return s.reload.reloadFromSource("request") }

// reloader owns the reloadable part of a running server: pools, routes and policy. It
// builds a new generation from a configuration, publishes it with atomic swaps (the routing
// table and the policy), and then retires what the old generation no longer shares: scrape
// loops, discovery sources, upstream clients. Requests in flight keep the objects they hold.
type reloader struct {
	rt       *router.Router
	builder  poolBuilder
	counters cluster.Counters
	drains   cluster.Drains
	log      *slog.Logger
	results  *prometheus.CounterVec
	load     func() (*config.Config, error)
	file     string
	poll     time.Duration
	kube     discovery.Client // nil until a pool needs one, unless given
	fileSeen []byte           // hash of the file's content at start

	version atomic.Pointer[ConfigVersion]
	// current lists the published pools in configuration order, for metrics and the admin API.
	current atomic.Pointer[[]*backends.Pool]
	// applied, when set, is told of each configuration applied after the first.
	applied func(*config.Config, time.Time)

	mu         sync.Mutex // serializes applies; guards the fields below
	cfg        *config.Config
	pools      map[string]*poolRuntime
	discovered map[string][]string
	loops      map[string]*poolLoops
	verifier   context.CancelFunc // stops the JWT verifier's refresh loop
	retiring   []retiring
	bg         context.Context // nil until start
	wg         *sync.WaitGroup
	newVerif   *policy.JWTVerifier // built before start, run by start
}

// retiring are gRPC connections waiting for their calls to finish.
type retiring struct {
	clients *retiredClients
	since   time.Time
}

func newReloader(ctx context.Context, cfg *config.Config, rt *router.Router, metrics *router.Metrics, reg prometheus.Registerer,
	sh *shared, tr *tracing, log *slog.Logger, o startOptions) (*reloader, error) {
	r := &reloader{
		rt:       rt,
		builder:  poolBuilder{metrics: metrics, sessions: sh.sessions, tracing: tr},
		counters: sh.counters,
		drains:   sh.drains,
		log:      log,
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_config_reloads_total",
			Help: "Configuration reloads, by result: ok (applied) or rejected (invalid; the running configuration stayed).",
		}, []string{"result"}),
		kube:       o.kube,
		load:       o.loadConfig,
		file:       o.configFile,
		poll:       o.configPoll,
		pools:      map[string]*poolRuntime{},
		discovered: map[string][]string{},
		loops:      map[string]*poolLoops{},
	}
	if r.poll <= 0 {
		r.poll = defaultConfigPoll
	}
	// A drain set on any replica (or before this one started) reaches the endpoints in force.
	r.drains.OnChange(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if cur := r.current.Load(); cur != nil {
			r.applyDrains(*cur)
		}
	})
	reg.MustRegister(r.results)
	r.results.WithLabelValues("ok")
	r.results.WithLabelValues("rejected")
	// The file as loaded just now: a change from here on is a reload.
	r.fileSeen, _ = fileHash(r.file)
	if err := r.apply(ctx, cfg, "start"); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// start runs the background loops of the current generation and the reload triggers, owned
// by wg and stopped with bg.
func (r *reloader) start(bg context.Context, wg *sync.WaitGroup) {
	r.mu.Lock()
	r.bg, r.wg = bg, wg
	r.startVerifier(r.newVerif)
	r.newVerif = nil
	for _, pc := range r.cfg.Pools {
		r.syncLoops(pc, r.pools[pc.Name])
	}
	r.mu.Unlock()
	wg.Go(func() { r.reap(bg) })
	if r.load == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Go(func() {
		defer signal.Stop(hup)
		r.watch(bg, hup, r.fileSeen)
	})
}

// watch reloads on SIGHUP and whenever the config file's content differs from last.
func (r *reloader) watch(ctx context.Context, hup <-chan os.Signal, last []byte) {
	t := time.NewTicker(r.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.log.Info("SIGHUP: reloading the configuration", "file", r.file)
			last, _ = fileHash(r.file)
			r.reloadFromSource("signal")
		case <-t.C:
			h, err := fileHash(r.file)
			if err != nil || bytes.Equal(h, last) {
				continue // a file being replaced may be briefly missing; the next poll sees it
			}
			last = h
			r.log.Info("configuration file changed: reloading", "file", r.file)
			r.reloadFromSource("file")
		}
	}
}

func fileHash(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return sum[:], nil
}

// reloadFromSource loads the configuration again and applies it, logging and counting the
// outcome.
func (r *reloader) reloadFromSource(trigger string) error {
	if r.load == nil {
		return errors.New("reload: the server was started without a configuration file")
	}
	cfg, err := r.load()
	if err == nil {
		err = r.apply(context.Background(), cfg, trigger)
	}
	if err != nil {
		r.results.WithLabelValues("rejected").Inc()
		r.logRejected(err, trigger)
		return err
	}
	r.results.WithLabelValues("ok").Inc()
	return nil
}

// logRejected logs each problem of a rejected configuration on a line of its own, with its
// file line when known.
func (r *reloader) logRejected(err error, trigger string) {
	var errs *config.Errors
	if errors.As(err, &errs) {
		for _, fe := range errs.List {
			r.log.Error("configuration rejected", "file", errs.File, "line", fe.Line, "field", fe.Path, "error", fe.Msg)
		}
	} else {
		r.log.Error("configuration rejected", "file", r.file, "error", err)
	}
	r.log.Warn("the running configuration keeps serving", "version", r.version.Load().Hash, "trigger", trigger)
}

// restartOnly lists the settings that are fixed while the process runs: the listeners, the
// front doors' settings, logging, the admin port's keys and the cluster connection.
func restartOnly(old, next *config.Config) []string {
	var keys []string
	check := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, key)
		}
	}
	check("listen", old.Listen, next.Listen)
	check("admin_listen", old.AdminListen, next.AdminListen)
	check("server", old.Server, next.Server)
	check("log", old.Log, next.Log)
	check("admin", old.Admin, next.Admin)
	check("cluster", old.Cluster, next.Cluster)
	check("openai", old.OpenAI, next.OpenAI)
	// Of routing, only the session settings that pools are built with reload.
	or, nr := old.Routing, next.Routing
	or.SessionTTL, or.SessionMargin = nr.SessionTTL, nr.SessionMargin
	check("routing", or, nr)
	return keys
}

// keepStatic sets next's restart-only settings to old's.
func keepStatic(old, next *config.Config) {
	next.Listen, next.AdminListen = old.Listen, old.AdminListen
	next.Server, next.Log, next.Admin = old.Server, old.Log, old.Admin
	next.Cluster, next.OpenAI = old.Cluster, old.OpenAI
	ttl, margin := next.Routing.SessionTTL, next.Routing.SessionMargin
	next.Routing = old.Routing
	next.Routing.SessionTTL, next.Routing.SessionMargin = ttl, margin
}

// versionOf hashes the normalized configuration.
func versionOf(cfg *config.Config) string {
	sum := sha256.Sum256(cfg.Marshal())
	return hex.EncodeToString(sum[:8])
}

// apply builds the generation of cfg, publishes it and retires what the old one no longer
// shares. Nothing is published when any part fails to build.
func (r *reloader) apply(ctx context.Context, cfg *config.Config, trigger string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.cfg
	if old != nil {
		if keys := restartOnly(old, cfg); len(keys) > 0 {
			r.log.Warn("configuration changes that need a restart are not applied; the running values stay", "settings", keys)
			keepStatic(old, cfg)
			// Settings that stayed may no longer fit the rest (a rule naming a new priority
			// class, say).
			if err := cfg.Finish(nil); err != nil {
				return fmt.Errorf("with the running values of %v (which need a restart to change): %w", keys, err)
			}
		}
	}
	version := versionOf(cfg)
	if old != nil && version == r.version.Load().Hash {
		r.log.Info("configuration unchanged", "version", version, "trigger", trigger)
		return nil
	}
	var auth *policy.Authenticator
	var limiter *policy.Limiter
	var verifier *policy.JWTVerifier
	newPolicy := old == nil || !reflect.DeepEqual(old.Auth, cfg.Auth) || !reflect.DeepEqual(old.Tenants, cfg.Tenants) ||
		!reflect.DeepEqual(old.Limits, cfg.Limits)
	if newPolicy {
		var err error
		if auth, limiter, verifier, err = buildPolicy(ctx, cfg, r.counters); err != nil {
			return err
		}
	}
	next, retired, err := r.buildPools(cfg)
	if err != nil {
		return err
	}
	// Publish: the policy first, so that a new model is never reachable without its
	// tenants' permissions.
	if newPolicy {
		r.rt.SetPolicy(auth, limiter, cfg.Limits.DefaultOutputTokens)
		if r.bg != nil {
			r.startVerifier(verifier)
		} else {
			r.newVerif = verifier
		}
	}
	r.publish(cfg, next)
	r.retire(cfg, next, retired)
	r.cfg = cfg
	now := time.Now()
	r.version.Store(&ConfigVersion{Hash: version, LoadedAt: now, Config: cfg})
	if old != nil && r.applied != nil {
		r.applied(cfg, now)
	}
	if old != nil {
		r.log.Info("configuration reloaded", "version", version, "trigger", trigger, "policy", newPolicy,
			"pools", len(next), "models", len(cfg.Models))
	}
	return nil
}

// publish swaps in the routing table of cfg's models over pools.
func (r *reloader) publish(cfg *config.Config, pools map[string]*poolRuntime) {
	list := make([]*backends.Pool, 0, len(cfg.Pools))
	for _, pc := range cfg.Pools {
		list = append(list, pools[pc.Name].pool)
	}
	r.applyDrains(list) // before any request can pick a new endpoint
	r.rt.Swap(buildTable(cfg, pools))
	r.current.Store(&list)
}

// applyDrains sets every endpoint's drained flag from the shared set of drained endpoints,
// so that endpoints new to a reload or to discovery start drained when an operator drained
// them. Called with r.mu held.
func (r *reloader) applyDrains(pools []*backends.Pool) {
	for _, p := range pools {
		for _, ep := range p.Endpoints {
			ep.SetDrained(r.drains.Drained(p.Name, ep.Name))
		}
	}
}

// currentPools lists the pools in force, in configuration order. Safe for concurrent use.
func (r *reloader) currentPools() []*backends.Pool { return *r.current.Load() }

// buildPools builds every pool of cfg over its static and discovered endpoints, reusing the
// current runtimes. On failure it closes what it built and returns the error.
func (r *reloader) buildPools(cfg *config.Config) (map[string]*poolRuntime, []*retiredClients, error) {
	next := make(map[string]*poolRuntime, len(cfg.Pools))
	var retired []*retiredClients
	for _, pc := range cfg.Pools {
		var found []string
		if pc.Discovery != nil {
			found = r.discovered[pc.Name]
		}
		p, ret, err := r.builder.build(cfg, pc, endpointURLs(pc, found), r.pools[pc.Name])
		if err != nil {
			for name, p := range next {
				p.discard(r.pools[name])
			}
			return nil, nil, err
		}
		next[pc.Name] = p
		if ret != nil {
			retired = append(retired, ret)
		}
	}
	return next, retired, nil
}

// endpointURLs are a pool's static endpoints followed by the discovered ones it does not
// list already.
func endpointURLs(pc config.Pool, discovered []string) []string {
	urls := slices.Clone(pc.Endpoints)
	for _, u := range discovered {
		if !slices.Contains(urls, u) {
			urls = append(urls, u)
		}
	}
	return urls
}

// discard closes what a runtime built but never published does not share with old.
func (p *poolRuntime) discard(old *poolRuntime) {
	if p == old {
		return
	}
	if old == nil || p.pool.Client != old.pool.Client {
		p.pool.Client.Close()
	}
	if p.pool.GRPC != nil {
		var keep *backends.GRPCClient
		if old != nil {
			keep = old.pool.GRPC
		}
		p.pool.GRPC.CloseUnshared(keep)
	}
}

// retire runs after a new generation is published: pools that changed get fresh scrape
// loops, removed pools lose theirs and their discovery, replaced HTTP clients drop their
// idle connections, and replaced gRPC connections wait for their calls to end.
func (r *reloader) retire(cfg *config.Config, next map[string]*poolRuntime, retired []*retiredClients) {
	old := r.pools
	r.pools = next
	for name, p := range old {
		if _, ok := next[name]; !ok {
			r.stopLoops(name)
			delete(r.discovered, name)
			r.retiring = append(r.retiring, retiring{clients: &retiredClients{http: p.pool.Client, grpc: p.pool.GRPC,
				endpoints: p.pool.Endpoints}, since: time.Now()})
			p.pool.Client.Close()
		}
	}
	for _, pc := range cfg.Pools {
		if pc.Discovery == nil {
			delete(r.discovered, pc.Name)
		}
	}
	for _, ret := range retired {
		if ret.http != nil {
			ret.http.Close()
		}
		if ret.grpc != nil {
			r.retiring = append(r.retiring, retiring{clients: &retiredClients{grpc: ret.grpc, grpcNext: ret.grpcNext,
				endpoints: ret.endpoints}, since: time.Now()})
		}
	}
	if r.bg == nil {
		return // start runs the loops
	}
	for _, pc := range cfg.Pools {
		r.syncLoops(pc, next[pc.Name])
	}
}

// reap closes retired gRPC connections once their calls are over, every second until ctx
// is done.
func (r *reloader) reap(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		r.retiring = slices.DeleteFunc(r.retiring, func(rt retiring) bool {
			if rt.clients.idle() || time.Since(rt.since) > retireLimit {
				rt.clients.close()
				return true
			}
			return false
		})
		r.mu.Unlock()
	}
}

// startVerifier runs v's key refresh loop in place of the previous verifier's.
func (r *reloader) startVerifier(v *policy.JWTVerifier) {
	if r.verifier != nil {
		r.verifier()
		r.verifier = nil
	}
	if v == nil {
		return
	}
	ctx, cancel := context.WithCancel(r.bg)
	r.verifier = cancel
	r.wg.Go(func() { v.Run(ctx) })
}

// close closes every client, current and retired, once the background loops have stopped.
func (r *reloader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rt := range r.retiring {
		rt.clients.close()
	}
	r.retiring = nil
	for _, p := range r.pools {
		p.closeAll()
	}
}
