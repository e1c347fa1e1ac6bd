package router

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/policy"
)

// Route maps a model name clients use onto a pool's scheduler and the name the pool's servers
// know.
type Route struct {
	Protocol    Protocol   // protocol of the pool's servers, and so of the clients it serves
	Model       string     // name clients ask for
	TargetModel string     // name sent upstream; equal to Model when not rewritten
	Scheduler   *Scheduler // the pool that serves it and how requests are placed there
}

// Pool is the pool that serves the route.
func (r *Route) Pool() *backends.Pool { return r.Scheduler.Pool }

// Table is an immutable routing snapshot. Build one with NewTable and publish it with
// Router.Swap; never modify it afterwards.
type Table struct {
	routes map[string]*Route
	models map[Protocol][]string
}

// NewTable indexes routes by model name. Later routes with the same name replace earlier ones.
func NewTable(routes []*Route) *Table {
	t := &Table{routes: make(map[string]*Route, len(routes)), models: map[Protocol][]string{}}
	for _, r := range routes {
		if r.Protocol == "" {
			r.Protocol = ProtocolOpenAI
		}
		t.routes[r.Model] = r
	}
	for name, r := range t.routes {
		t.models[r.Protocol] = append(t.models[r.Protocol], name)
	}
	for _, names := range t.models {
		slices.Sort(names)
	}
	return t
}

// Target is where one attempt of a request goes.
type Target struct {
	Route    *Route
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
	metrics      *Metrics
	ranks        map[string]int
	defaultClass string
	auth         *policy.Authenticator
	limits       *policy.Limiter
	outputTokens int
	// maxAttempts bounds tries per request: the first plus one retry on another endpoint.
	maxAttempts int
}

// Option configures a Router.
type Option func(*Router)

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
	r := &Router{maxAttempts: 2, defaultClass: "standard", outputTokens: defaultOutputTokens}
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

// Resolve returns the route for a model served over protocol p, or a CodeNotFound error.
func (r *Router) Resolve(p Protocol, model string) (*Route, error) {
	if rt, ok := r.table.Load().routes[model]; ok && rt.Protocol == p {
		return rt, nil
	}
	return nil, &Error{Code: CodeNotFound, Param: "model", Reason: "model_not_found",
		Message: "The model `" + model + "` does not exist."}
}

// Serve routes req and runs attempt against picked endpoints: once, and once more on a
// different endpoint when the first attempt fails retryably before any response byte. While
// every endpoint is saturated, the request waits in the pool's queue.
func (r *Router) Serve(ctx context.Context, req *Request, attempt AttemptFunc) error {
	route, err := r.Resolve(req.Protocol, req.Model)
	if err != nil {
		return err
	}
	if g := r.metrics.inflightGauge(req.Protocol, route.Model); g != nil {
		g.Inc()
		defer g.Dec()
	}
	sched := route.Scheduler
	rank, ok := r.ranks[req.Priority]
	if !ok {
		rank = r.ranks[r.defaultClass]
	}
	var tried []*backends.Endpoint
	skip := func(ep *backends.Endpoint) bool { return slices.Contains(tried, ep) }
	var lastErr error
	for n := 1; n <= r.maxAttempts; n++ {
		res, err := sched.pick(ctx, req, rank, skip)
		if err != nil {
			if lastErr != nil {
				return lastErr // the earlier failure says more than "nothing left to try"
			}
			return err
		}
		tried = append(tried, res.Endpoint)
		last := n == r.maxAttempts || len(tried) == len(sched.Pool.Endpoints)
		err = runAttempt(ctx, attempt, Target{Route: route, Endpoint: res.Endpoint, Last: last}, func() {
			res.Done()
			sched.Wake()
		})
		if err == nil || !IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		lastErr = err
		if n < r.maxAttempts {
			r.metrics.retried(req.Protocol, route.Model)
		}
	}
	return lastErr
}

// runAttempt runs one attempt and ends its in-flight accounting even if the attempt panics.
func runAttempt(ctx context.Context, attempt AttemptFunc, t Target, done func()) error {
	defer done()
	return attempt(ctx, t)
}
