package router

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the router's Prometheus series. Label values are bounded: models are only those
// configured (others count as "unknown") and endpoints only those in pools.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ttfb     *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	retries  *prometheus.CounterVec
	decision *prometheus.CounterVec
	overflow *prometheus.CounterVec
	shed     *prometheus.CounterVec
	sessions *prometheus.CounterVec
	genai    *genAIMetrics
	limits   *limitMetrics

	// Children of the vectors above that every request records into, by label values.
	outcomes  bound[outcomeKey, *outcomeSeries]
	inflights bound[[2]string, prometheus.Gauge]
	decisions bound[[2]string, prometheus.Counter]
	admitted  lazy[prometheus.Counter]
}

// latencyBuckets span a 1 ms proxy hop to a multi-minute generation.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// NewMetrics creates the router's series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_requests_total",
			Help: "Requests answered, by protocol, model, endpoint that served them and status.",
		}, []string{"protocol", "model", "endpoint", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_request_duration_seconds", Buckets: latencyBuckets,
			Help: "Time from request received to response complete, by protocol and model.",
		}, []string{"protocol", "model"}),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchyard_time_to_first_byte_seconds", Buckets: latencyBuckets,
			Help: "Time from request received to the first response body byte sent to the client, by protocol and model.",
		}, []string{"protocol", "model"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_requests_in_flight",
			Help: "Requests being routed or relayed now, by protocol and model.",
		}, []string{"protocol", "model"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_upstream_retries_total",
			Help: "Requests retried on another endpoint after a failure before the first response byte.",
		}, []string{"protocol", "model"}),
	}
	m.decision = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_route_decisions_total",
		Help: "Requests routed, by the model asked for (route) and the concrete model chosen.",
	}, []string{"route", "model"})
	m.overflow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_overflow_total",
		Help: "Requests sent to an overflow pool because the preferred pool was saturated, by model and pool used.",
	}, []string{"model", "pool"})
	m.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_shed_total",
		Help: "Requests refused because their pool was saturated and their priority class is shed first.",
	}, []string{"model", "priority"})
	m.sessions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_session_picks_total",
		Help: "Picks for requests with a session key, by outcome: stuck (to the bound endpoint), bound (new binding), moved (binding moved off an unhealthy or saturated endpoint), adopted (another replica bound it first; its choice followed), unbound (another replica bound it first to an endpoint unfit here).",
	}, []string{"outcome"})
	reg.MustRegister(m.requests, m.duration, m.ttfb, m.inflight, m.retries, m.decision, m.overflow, m.shed, m.sessions)
	m.genai = newGenAIMetrics(reg)
	m.limits = newLimitMetrics(reg)
	m.outcomes.bind = m.bindOutcome
	m.inflights.bind = func(k [2]string) prometheus.Gauge { return m.inflight.WithLabelValues(k[:]...) }
	m.decisions.bind = func(k [2]string) prometheus.Counter { return m.decision.WithLabelValues(k[:]...) }
	return m
}

// bound caches the children of a metric vector by their label values, so that the request
// path finds one with a Go map lookup, allocating nothing, instead of hashing its labels
// through the vector. A child is bound when its labels are first used, as WithLabelValues
// would create it then. Label values are bounded (see Metrics), and so is the cache. Series
// are never deleted from the vectors; deleting one would mean clearing its cache too.
type bound[K comparable, M any] struct {
	mu       sync.RWMutex
	children map[K]M
	bind     func(K) M
}

func (b *bound[K, M]) get(k K) M {
	b.mu.RLock()
	c, ok := b.children[k]
	b.mu.RUnlock()
	if ok {
		return c
	}
	c = b.bind(k) // the vector returns the same child to racing binders
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.children == nil {
		b.children = make(map[K]M)
	}
	b.children[k] = c
	return c
}

// lazy is one child of a vector, bound when first used.
type lazy[M any] struct{ p atomic.Pointer[M] }

func (l *lazy[M]) get(bind func() M) M {
	if p := l.p.Load(); p != nil {
		return *p
	}
	c := bind()
	l.p.Store(&c)
	return c
}

// outcomeKey is what the series of a finished request are labeled by.
type outcomeKey struct {
	protocol                Protocol
	model, endpoint, status string
	op                      Operation
	served, tenant          string
	failed                  bool
}

// outcomeSeries are the children one outcomeKey records into. Those that not every request
// records into are bound when one first does, so that no series shows that nothing recorded.
type outcomeSeries struct {
	requests                                    prometheus.Counter
	duration                                    prometheus.Observer
	genaiDuration                               prometheus.Observer
	ttfb, ttft, tpot, inputTokens, outputTokens lazy[prometheus.Observer]
	genaiLabels                                 [5]string // operation, requested and served model, endpoint, tenant
}

func (m *Metrics) bindOutcome(k outcomeKey) *outcomeSeries {
	s := &outcomeSeries{genaiLabels: [5]string{genAIOperation(k.op), k.model, k.served, k.endpoint, k.tenant}}
	errType := ""
	if k.failed {
		errType = k.status
	}
	s.requests = m.requests.WithLabelValues(string(k.protocol), k.model, k.endpoint, k.status)
	s.duration = m.duration.WithLabelValues(string(k.protocol), k.model)
	s.genaiDuration = m.genai.duration.WithLabelValues(append(s.genaiLabels[:], errType)...)
	return s
}

// Outcome is what a front door reports about a finished request.
type Outcome struct {
	Protocol  Protocol
	Model     string // configured model name, or "" when the request named none known
	Endpoint  string // endpoint that answered, or "" when none did
	Status    string // protocol status, e.g. "200" or "NOT_FOUND"
	Duration  time.Duration
	FirstByte time.Duration // 0 when no body byte was sent

	// For the GenAI series: what was asked and what answered.
	Operation    Operation
	TargetModel  string // the concrete model served (a virtual model's choice); "" = Model
	Tenant       string // "" when unauthenticated or refused before identification
	Failed       bool   // the request did not succeed; Status says how
	InputTokens  int64  // as the model server reported them; 0 when it did not
	OutputTokens int64
}

// Observe records a finished request. Safe on a nil *Metrics.
func (m *Metrics) Observe(o Outcome) {
	if m == nil {
		return
	}
	model := o.Model
	if model == "" {
		model = "unknown"
	}
	served := o.TargetModel
	if served == "" {
		served = model
	}
	s := m.outcomes.get(outcomeKey{protocol: o.Protocol, model: model, endpoint: o.Endpoint, status: o.Status,
		op: o.Operation, served: served, tenant: o.Tenant, failed: o.Failed})
	s.requests.Inc()
	s.duration.Observe(o.Duration.Seconds())
	if o.FirstByte > 0 {
		s.ttfb.get(func() prometheus.Observer { return m.ttfb.WithLabelValues(string(o.Protocol), model) }).Observe(o.FirstByte.Seconds())
	}
	m.genai.observe(o, s)
}

func (m *Metrics) inflightGauge(p Protocol, model string) prometheus.Gauge {
	if m == nil {
		return nil
	}
	return m.inflights.get([2]string{string(p), model})
}

func (m *Metrics) retried(p Protocol, model string) {
	if m != nil {
		m.retries.WithLabelValues(string(p), model).Inc()
	}
}

func (m *Metrics) decided(route, model string) {
	if m != nil {
		m.decisions.get([2]string{route, model}).Inc()
	}
}

func (m *Metrics) overflowed(model, pool string) {
	if m != nil {
		m.overflow.WithLabelValues(model, pool).Inc()
	}
}

func (m *Metrics) shedded(model, priority string) {
	if m != nil {
		m.shed.WithLabelValues(model, priority).Inc()
	}
}

func (m *Metrics) session(outcome string) {
	if m != nil {
		m.sessions.WithLabelValues(outcome).Inc()
	}
}
