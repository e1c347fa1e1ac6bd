package router

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-ai/switchyard/backends"
)

// Route maps a model name clients use onto a pool's scheduler and the name the pool's servers
// know.
type Route struct {
	Protocol    Protocol   // protocol of the pool's servers, and so of the clients it serves
	Model       string     // name clients ask for
	TargetModel string     // name sent upstream; equal to Model when not rewritten
	Scheduler   *Scheduler // the pool that serves it and how requests are placed there
	// Overflow are pools to spill to, in order, while Scheduler's pool is saturated (premium
	// GPUs first, cheaper ones after). Requests return to the first pool as soon as it has room.
	Overflow []*Scheduler
}

// Pool is the pool that serves the route.
func (r *Route) Pool() *backends.Pool { return r.Scheduler.Pool }

// Table is an immutable routing snapshot. Build one with NewTable and publish it with
// Router.Swap; never modify it afterwards.
type Table struct {
	routes  map[string]*Route
	virtual map[string]*Virtual
	models  map[Protocol][]string
}

// NewTable indexes routes and virtual models by name. Later entries with the same name
// replace earlier ones; a virtual model hides a route of its name.
func NewTable(routes []*Route, virtual ...*Virtual) *Table {
	t := &Table{routes: make(map[string]*Route, len(routes)), virtual: map[string]*Virtual{}, models: map[Protocol][]string{}}
	for _, r := range routes {
		if r.Protocol == "" {
			r.Protocol = ProtocolOpenAI
		}
		t.routes[r.Model] = r
	}
	for _, v := range virtual {
		if v.Protocol == "" {
			v.Protocol = ProtocolOpenAI
		}
		t.virtual[v.Name] = v
		delete(t.routes, v.Name)
	}
	for name, r := range t.routes {
		t.models[r.Protocol] = append(t.models[r.Protocol], name)
	}
	for name, v := range t.virtual {
		t.models[v.Protocol] = append(t.models[v.Protocol], name)
	}
	for _, names := range t.models {
		slices.Sort(names)
	}
	return t
}

// Target is where one attempt of a request goes.
type Target struct {
	Route *Route
	// Pool is the pool the endpoint belongs to: the route's own, or an overflow pool.
	Pool     *backends.Pool
	Endpoint *backends.Endpoint
	// Last is true when no retry follows this attempt: the attempt should relay an upstream
	// failure as it is rather than report it as retryable.
	Last bool
}

// AttemptFunc sends a request to one target. It returns an error marked Retryable only when
// nothing has been written to the client yet.
type AttemptFunc func(ctx context.Context, t Target) error

// Router resolves models and picks endpoints. It is safe for concurrent use; its routing
// table is swapped atomically and never locked on the request path.
type Router struct {
	table        atomic.Pointer[Table]
	shed         map[string]bool
	metrics      *Metrics
	ranks        map[string]int
	defaultClass string
	gate         atomic.Pointer[gate] // never nil after New
	// maxAttempts bounds tries per request: the first plus one retry on another endpoint.
	maxAttempts int
	tracer      trace.Tracer // nil: no tracing
}

// Option configures a Router.
type Option func(*Router)

// WithShedClasses names the priority classes refused at once (429, RESOURCE_EXHAUSTED) while
// their pool is saturated, instead of waiting. Default sheddable.
func WithShedClasses(classes []string) Option {
	return func(r *Router) {
		r.shed = map[string]bool{}
		for _, c := range classes {
			r.shed[c] = true
		}
	}
}

// WithPriorityClasses names the priority classes, most urgent first, so that requests waiting
// for capacity are served in that order. Default critical, standard, sheddable.
func WithPriorityClasses(classes []string) Option {
	return func(r *Router) {
		r.ranks = make(map[string]int, len(classes))
		for i, c := range classes {
			r.ranks[c] = i
		}
	}
}

// WithMetrics records in-flight requests and retries in m.
func WithMetrics(m *Metrics) Option { return func(r *Router) { r.metrics = m } }

// New returns a Router with an empty table.
func New(opts ...Option) *Router {
	r := &Router{maxAttempts: 2, defaultClass: "standard", shed: map[string]bool{"sheddable": true}}
	r.SetPolicy(nil, nil, 0)
	WithPriorityClasses([]string{"critical", "standard", "sheddable"})(r)
	for _, o := range opts {
		o(r)
	}
	r.table.Store(NewTable(nil))
	return r
}

// Swap publishes a new routing table. Requests already routed keep the old one.
func (r *Router) Swap(t *Table) { r.table.Store(t) }

// Models lists the model names clients of protocol p may ask for, sorted.
func (r *Router) Models(p Protocol) []string { return r.table.Load().models[p] }

// Resolve returns the route for a concrete model served over protocol p, or a CodeNotFound
// error. A virtual model resolves only per request (see Route).
func (r *Router) Resolve(p Protocol, model string) (*Route, error) {
	t := r.table.Load()
	if rt, ok := t.routes[model]; ok && rt.Protocol == p {
		return rt, nil
	}
	if v, ok := t.virtual[model]; ok && v.Protocol == p {
		return nil, nil // exists, but which route depends on the request
	}
	return nil, notFound(model)
}

func notFound(model string) error {
	return &Error{Code: CodeNotFound, Param: "model", Reason: "model_not_found",
		Message: "The model `" + model + "` does not exist."}
}

// Known reports whether model is configured for protocol p, concrete or virtual.
func (r *Router) Known(p Protocol, model string) bool {
	_, err := r.Resolve(p, model)
	return err == nil
}

// Route resolves req to a concrete route once: a virtual model's rules are evaluated on the
// request's size, priority, tenant and headers, and the decision is kept on the request, so
// admission and routing agree.
func (r *Router) Route(req *Request) (*Route, error) {
	if req.route != nil {
		return req.route, nil
	}
	t := r.table.Load()
	rt, ok := t.routes[req.Model]
	if !ok || rt.Protocol != req.Protocol {
		v, vok := t.virtual[req.Model]
		if !vok || v.Protocol != req.Protocol {
			return nil, notFound(req.Model)
		}
		if rt = v.resolve(req); rt == nil {
			return nil, &Error{Code: CodeNotFound, Param: "model", Reason: "no_route",
				Message: "No rule of model `" + req.Model + "` matches this request."}
		}
	}
	req.route = rt
	r.metrics.decided(req.Model, rt.Model)
	return rt, nil
}

// Serve routes req and runs attempt against picked endpoints: once, and once more on a
// different endpoint when the first attempt fails retryably before any response byte. While
// every endpoint is saturated, the request waits in the pool's queue.
func (r *Router) Serve(ctx context.Context, req *Request, attempt AttemptFunc) error {
	route, err := r.Route(req)
	if err != nil {
		return err
	}
	annotate(ctx, req, route)
	if g := r.metrics.inflightGauge(req.Protocol, route.Model); g != nil {
		g.Inc()
		defer g.Dec()
	}
	rank, ok := r.ranks[req.Priority]
	if !ok {
		rank = r.ranks[r.defaultClass]
	}
	var triedBuf [2]*backends.Endpoint
	tried := triedBuf[:0]
	// skip leaves out the endpoints tried already; nil, and allocated for nothing, until an
	// attempt has failed.
	var skip func(*backends.Endpoint) bool
	var lastErr error
	for n := 1; n <= r.maxAttempts; n++ {
		pctx, pick := r.startSpan(ctx, "switchyard.pick", trace.SpanKindInternal, func() []attribute.KeyValue {
			return []attribute.KeyValue{attribute.String("switchyard.route", route.Model)}
		})
		res, sched, err := r.place(pctx, req, route, rank, skip)
		if err == nil && pick.IsRecording() {
			pick.SetAttributes(attribute.String("server.address", res.Endpoint.Name), attribute.String("switchyard.pool", sched.Pool.Name))
		}
		endSpan(pick, err)
		if err != nil {
			if lastErr != nil {
				return lastErr // the earlier failure says more than "nothing left to try"
			}
			return err
		}
		tried = append(tried, res.Endpoint)
		last := n == r.maxAttempts || len(tried) == len(sched.Pool.Endpoints)
		target := Target{Route: route, Pool: sched.Pool, Endpoint: res.Endpoint, Last: last}
		actx, up := r.startSpan(ctx, "switchyard.upstream", trace.SpanKindClient, func() []attribute.KeyValue { return attemptAttrs(target, n) })
		err = runAttempt(actx, attempt, target, func() {
			res.Done()
			sched.Wake()
		})
		endSpan(up, err)
		if err == nil || !IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		lastErr = err
		if n < r.maxAttempts {
			r.metrics.retried(req.Protocol, route.Model)
			skipped := slices.Clone(tried)
			skip = func(ep *backends.Endpoint) bool { return slices.Contains(skipped, ep) }
		}
	}
	return lastErr
}

// place finds an endpoint for req: in the route's pool if it has room, else in the first
// overflow pool that has; while all are saturated, a request of a shed class is refused at
// once and any other waits in the route's own pool's queue, in priority order.
func (r *Router) place(ctx context.Context, req *Request, route *Route, rank int, skip func(*backends.Endpoint) bool) (PickResult, *Scheduler, error) {
	res, err := route.Scheduler.tryPick(req, skip)
	if err == nil {
		return res, route.Scheduler, nil
	}
	first := err
	for _, o := range route.Overflow {
		if res, err := o.tryPick(req, skip); err == nil {
			r.metrics.overflowed(route.Model, o.Pool.Name)
			return res, o, nil
		}
	}
	if !errors.Is(first, ErrSaturated) {
		return PickResult{}, nil, first
	}
	if r.shed[req.Priority] {
		r.metrics.shedded(route.Model, req.Priority)
		return PickResult{}, nil, &Error{Code: CodeResourceExhausted, Reason: "shed", RetryAfter: time.Second,
			Message: "Model " + route.Model + " is saturated and " + req.Priority + " requests are shed first; retry later.", Err: ErrSaturated}
	}
	res, err = route.Scheduler.pick(ctx, req, rank, skip)
	return res, route.Scheduler, err
}

// runAttempt runs one attempt and ends its in-flight accounting even if the attempt panics.
func runAttempt(ctx context.Context, attempt AttemptFunc, t Target, done func()) error {
	defer done()
	return attempt(ctx, t)
}
