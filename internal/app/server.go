package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-ai/switchyard/backends/discovery"
	"github.com/switchyard-ai/switchyard/cluster"
	"github.com/switchyard-ai/switchyard/internal/admin"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/router"
	"github.com/switchyard-ai/switchyard/router/kserve"
	"github.com/switchyard-ai/switchyard/router/openai"
)

// Server is a running router: the data-plane and admin listeners and their background loops.
type Server struct {
	log     *slog.Logger
	drain   time.Duration
	data    *http.Server
	admin   *http.Server
	dataLn  net.Listener
	adminLn net.Listener
	reload  *reloader // pools, routes and policy, and their reloading
	shared  *shared
	metrics *prometheus.Registry
	tracing *tracing
	front   *openai.Handler
	ready   atomic.Bool
	stop    context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	err     error

	// adminAPI serves the admin API.
	adminAPI *admin.Handler
}

// StartOption configures Start.
type StartOption func(*startOptions)

type startOptions struct {
	logOut   io.Writer
	certPoll time.Duration
	// Reloading and discovery; see reload.go.
	configFile string
	loadConfig func() (*config.Config, error)
	configPoll time.Duration
	kube       discovery.Client
}

// WithLogOutput sends logs to w instead of stderr.
func WithLogOutput(w io.Writer) StartOption { return func(o *startOptions) { o.logOut = w } }

// Start builds the runtime from a validated configuration, binds both listeners and serves
// until Shutdown. It returns once the listeners are bound, so Addr is usable at once.
func Start(ctx context.Context, cfg *config.Config, opts ...StartOption) (*Server, error) {
	o := startOptions{logOut: os.Stderr}
	for _, opt := range opts {
		opt(&o)
	}
	log := newLogger(o.logOut, cfg.Log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := router.NewMetrics(reg)

	sh, err := openShared(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			sh.close()
		}
	}()
	sh.register(reg)
	tr, err := newTracing(ctx, cfg.Tracing)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		if !started {
			tr.shutdown(context.Background())
		}
	}()
	rt := router.New(router.WithMetrics(metrics), router.WithTracer(tr.routerTracer()), router.WithPriorityClasses(cfg.Routing.PriorityClasses),
		router.WithDefaultPriority(cfg.Routing.DefaultPriority), router.WithShedClasses(cfg.Routing.ShedClasses))
	// The reloader builds pools, routes and policy, and swaps them into rt now and on reload.
	rl, err := newReloader(ctx, cfg, rt, metrics, reg, sh, tr, log, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !started {
			rl.close()
		}
	}()
	reg.MustRegister(newEndpointCollector(rl.currentPools))
	front := openai.NewHandler(rt,
		openai.WithMaxBodyBytes(cfg.Server.MaxBodyBytes), openai.WithMaxJSONDepth(cfg.Server.MaxJSONDepth),
		openai.WithSessionHeader(cfg.Routing.SessionHeader), openai.WithSessionFromUser(cfg.Routing.SessionFromUser),
		openai.WithPriorities(cfg.Routing.PriorityHeader, cfg.Routing.PriorityClasses, cfg.Routing.DefaultPriority),
		openai.WithRoutingHeaders(*cfg.Routing.ResponseHeaders),
		openai.WithLogger(log), openai.WithMetrics(metrics),
		openai.WithResponseBindings(sh.sessions, cfg.OpenAI.ResponseTTL.D()),
		openai.WithRealtimeLimits(openai.RealtimeLimits{Idle: cfg.OpenAI.Realtime.IdleTimeout.D(), MaxDuration: cfg.OpenAI.Realtime.MaxDuration.D()}),
		openai.WithPassthrough(passthroughPaths(cfg.OpenAI.Passthrough)...))

	s := &Server{log: log, drain: cfg.Server.DrainTimeout.D(), reload: rl, shared: sh, metrics: reg, tracing: tr, front: front}
	ks := kserve.NewHandler(rt,
		kserve.WithLogger(log), kserve.WithMetrics(metrics),
		kserve.WithServerInfo(Version, s.ready.Load),
		kserve.WithSessionHeader(cfg.Routing.SessionHeader),
		kserve.WithPriorities(cfg.Routing.PriorityHeader, cfg.Routing.PriorityClasses, cfg.Routing.DefaultPriority),
		kserve.WithRoutingHeaders(*cfg.Routing.ResponseHeaders),
		kserve.WithLimits(cfg.Server.MaxTensorElements, cfg.Server.MaxBodyBytes),
		kserve.WithMaxMessageBytes(cfg.Server.MaxGRPCMessageBytes))
	dataMux := http.NewServeMux()
	dataMux.Handle("/", front)
	dataMux.Handle("/v2/", ks)
	dataMux.Handle("/v2", ks)
	dataMux.Handle(ks.GRPCPath(), ks)
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	s.data = &http.Server{
		Handler: tr.middleware(newClientLimits(dataMux, cfg.Server, front, ks, ks.GRPCPath())), Protocols: protocols, ErrorLog: errLog,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout.D(), IdleTimeout: cfg.Server.IdleTimeout.D(),
		// Headers up to twice the limit reach clientLimits, which answers in the protocol.
		MaxHeaderBytes: 2 * cfg.Server.MaxHeaderBytes,
		HTTP2:          &http.HTTP2Config{MaxConcurrentStreams: cfg.Server.MaxConcurrentStreams},
	}
	adminMux := http.NewServeMux()
	adminMux.Handle("GET /metrics", adminAuth(cfg.Admin.APIKeys, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: errLog})))
	adminMux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	adminMux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if pool := rl.awaitingDiscovery(); pool != "" {
			http.Error(w, "not ready: pool "+pool+" has no endpoints discovered yet", http.StatusServiceUnavailable)
			return
		}
		// Degraded shared state still serves: sessions bind locally and limits hold by share.
		st := sh.status()
		fmt.Fprintf(w, "ready\ncluster: %s, %d members\n", st.Mode, st.Members)
		if st.LastError != "" {
			fmt.Fprintf(w, "cluster error: %s\n", st.LastError)
		}
	})
	adminMux.Handle("GET /cluster", adminAuth(cfg.Admin.APIKeys, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			cluster.Status
			List []cluster.Member `json:"member_list"`
		}{sh.status(), sh.members()})
	})))
	s.mountAdminAPI(adminMux, cfg, rt)
	adminProtocols := new(http.Protocols) // h2c carries the admin API's gRPC
	adminProtocols.SetHTTP1(true)
	adminProtocols.SetUnencryptedHTTP2(true)
	s.admin = &http.Server{Handler: adminMux, Protocols: adminProtocols, ErrorLog: errLog, ReadHeaderTimeout: 10 * time.Second}

	var certs *certReloader
	if cfg.Server.TLS != nil {
		if certs, err = newCertReloader(cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile, o.certPoll, log); err != nil {
			return nil, err
		}
		if s.data.TLSConfig, err = serverTLS(cfg.Server.TLS, certs.GetCertificate); err != nil {
			return nil, err
		}
		protocols.SetUnencryptedHTTP2(false)
		protocols.SetHTTP2(true)
	}
	var lc net.ListenConfig
	if s.dataLn, err = lc.Listen(ctx, "tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if s.data.TLSConfig != nil {
		s.dataLn = tls.NewListener(s.dataLn, s.data.TLSConfig)
	}
	if s.adminLn, err = lc.Listen(ctx, "tcp", cfg.AdminListen); err != nil {
		s.dataLn.Close()
		return nil, fmt.Errorf("admin listen %s: %w", cfg.AdminListen, err)
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	s.goServe(s.data, s.dataLn)
	rl.start(bg, &s.wg)
	if certs != nil {
		s.wg.Go(func() { certs.Run(bg) })
	}
	s.goServe(s.admin, s.adminLn)
	s.ready.Store(true)
	started = true
	log.Info("switchyard started", "version", version(), "listen", s.dataLn.Addr().String(),
		"admin", s.adminLn.Addr().String(), "openai_models", rt.Models(router.ProtocolOpenAI), "kserve_models", rt.Models(router.ProtocolKServe))
	return s, nil
}

func (s *Server) goServe(srv *http.Server, ln net.Listener) {
	s.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("server stopped", "addr", ln.Addr().String(), "error", err)
		}
	})
}

// passthroughPaths converts the configured passthrough paths for the OpenAI front door.
func passthroughPaths(paths []config.PassthroughPath) []openai.Passthrough {
	out := make([]openai.Passthrough, len(paths))
	for i, p := range paths {
		out[i] = openai.Passthrough{Path: p.Path, Methods: p.Methods, ModelHeader: p.ModelHeader}
	}
	return out
}

// newPicker builds a pool's picker from its scheduling settings. The default profile is
// fresh-stats filter → saturation filter → queue, KV-cache, in-flight and latency scorers →
// selector.
func newPicker(pc config.Pool, prefixes *router.PrefixIndex, shed []string) router.Picker {
	sc := pc.Scheduling
	switch sc.Picker {
	case "round-robin":
		return &router.RoundRobin{}
	case "least-in-flight":
		return &router.LeastInFlight{}
	}
	var sel router.Selector = &router.MaxScore{}
	if sc.Selector == "power-of-two" {
		sel = &router.PowerOfTwo{}
	}
	var scorers []router.WeightedScorer
	for _, ws := range []router.WeightedScorer{
		{Scorer: router.QueueScorer{}, Weight: *sc.Weights.Queue},
		{Scorer: router.KVCacheScorer{}, Weight: *sc.Weights.KVCache},
		{Scorer: router.InFlightScorer{}, Weight: *sc.Weights.InFlight},
		{Scorer: &router.LatencyScorer{}, Weight: *sc.Weights.Latency},
		{Scorer: &router.PrefixScorer{Index: prefixes}, Weight: *sc.Weights.Prefix},
	} {
		if ws.Weight > 0 {
			scorers = append(scorers, ws)
		}
	}
	return &router.Profile{
		Filters: []router.Filter{
			router.FreshFilter{},
			&router.SaturationFilter{MaxQueue: int64(sc.Saturation.MaxQueue), MaxKV: sc.Saturation.MaxKV,
				Shed: shedSet(shed), Headroom: *sc.Saturation.ShedHeadroom},
		},
		Scorers:    scorers,
		Selector:   sel,
		StaleAfter: pc.Stats.StaleAfter.D(),
	}
}

func shedSet(classes []string) map[string]bool {
	m := map[string]bool{}
	for _, c := range classes {
		m[c] = true
	}
	return m
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	ho := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// Addr is the bound data-plane address.
func (s *Server) Addr() string { return s.dataLn.Addr().String() }

// Metrics returns the registry behind the admin /metrics: every series the router exports.
func (s *Server) Metrics() prometheus.Collector { return s.metrics }

// AdminAddr is the bound admin address.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// Shutdown drains gracefully: /readyz turns false, listeners stop accepting, in-flight
// requests get up to the drain timeout (or until ctx is done) to finish, then everything
// stops. It is idempotent and returns the first error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		s.ready.Store(false)
		ctx, cancel := context.WithTimeout(ctx, s.drain)
		defer cancel()
		s.stop()
		err := s.data.Shutdown(ctx)
		if err != nil {
			s.data.Close() // drain timed out: cut what is left
		}
		// Realtime sessions run on hijacked connections, which Shutdown leaves alone: they are
		// closed with 1012 for their clients to reconnect elsewhere, given a few seconds for
		// the close handshakes even when the drain used up its time.
		rctx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			rctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
		}
		if rerr := s.front.CloseRealtime(rctx); err == nil {
			err = rerr
		}
		s.admin.Close()
		s.adminAPI.Close()
		s.wg.Wait()
		s.shared.close()
		s.tracing.shutdown(context.Background())
		s.reload.close()
		s.err = err
		s.log.Info("switchyard stopped")
	})
	return s.err
}
