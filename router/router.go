package router

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/switchyard-ai/switchyard/backends"
)

// Route maps a model name clients use onto a pool and the name the pool's servers know.
type Route struct {
	Model       string         // name clients ask for
	TargetModel string         // name sent upstream; equal to Model when not rewritten
	Pool        *backends.Pool // where it is served
}

// Table is an immutable routing snapshot. Build one with NewTable and publish it with
// Router.Swap; never modify it afterwards.
type Table struct {
	routes map[string]*Route
	models []string
}

// NewTable indexes routes by model name. Later routes with the same name replace earlier ones.
func NewTable(routes []*Route) *Table {
	t := &Table{routes: make(map[string]*Route, len(routes))}
	for _, r := range routes {
		t.routes[r.Model] = r
	}
	for name := range t.routes {
		t.models = append(t.models, name)
	}
	slices.Sort(t.models)
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
	table   atomic.Pointer[Table]
	picker  Picker
	metrics *Metrics
	// maxAttempts bounds tries per request: the first plus one retry on another endpoint.
	maxAttempts int
}

// Option configures a Router.
type Option func(*Router)

// WithPicker sets the endpoint picker; the default is LeastInFlight.
func WithPicker(p Picker) Option { return func(r *Router) { r.picker = p } }

// WithMetrics records in-flight requests and retries in m.
func WithMetrics(m *Metrics) Option { return func(r *Router) { r.metrics = m } }

// New returns a Router with an empty table.
func New(opts ...Option) *Router {
	r := &Router{picker: &LeastInFlight{}, maxAttempts: 2}
	for _, o := range opts {
		o(r)
	}
	r.table.Store(NewTable(nil))
	return r
}

// Swap publishes a new routing table. Requests already routed keep the old one.
func (r *Router) Swap(t *Table) { r.table.Store(t) }

// Models lists the model names clients may ask for, sorted.
func (r *Router) Models() []string { return r.table.Load().models }

// Resolve returns the route for a model name, or a CodeNotFound error.
func (r *Router) Resolve(model string) (*Route, error) {
	if rt, ok := r.table.Load().routes[model]; ok {
		return rt, nil
	}
	return nil, &Error{Code: CodeNotFound, Param: "model", Reason: "model_not_found",
		Message: "The model `" + model + "` does not exist."}
}

// Serve routes req and runs attempt against picked endpoints: once, and once more on a
// different endpoint when the first attempt fails retryably before any response byte.
func (r *Router) Serve(ctx context.Context, req *Request, attempt AttemptFunc) error {
	route, err := r.Resolve(req.Model)
	if err != nil {
		return err
	}
	if g := r.metrics.inflightGauge(req.Protocol, route.Model); g != nil {
		g.Inc()
		defer g.Dec()
	}
	var tried []*backends.Endpoint
	skip := func(ep *backends.Endpoint) bool { return slices.Contains(tried, ep) }
	var lastErr error
	for n := 1; n <= r.maxAttempts; n++ {
		res, err := r.picker.Pick(route.Pool, req, skip)
		if err != nil {
			if lastErr != nil {
				return lastErr // the earlier failure says more than "nothing left to try"
			}
			return err
		}
		tried = append(tried, res.Endpoint)
		last := n == r.maxAttempts || len(tried) == len(route.Pool.Endpoints)
		err = runAttempt(ctx, attempt, Target{Route: route, Endpoint: res.Endpoint, Last: last}, res.Done)
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
