package router

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-ai/switchyard/policy"
)

// defaultOutputTokens is reserved for a request that sets no output budget.
const defaultOutputTokens = 256

// WithPolicy puts authentication, authorization and rate limits in front of every request.
// Either may be nil: no authenticator admits everyone anonymously, no limiter limits nothing.
// outputTokens is reserved for requests that set no max tokens (default 256).
func WithPolicy(auth *policy.Authenticator, limits *policy.Limiter, outputTokens int) Option {
	return func(r *Router) { r.SetPolicy(auth, limits, outputTokens) }
}

// gate is one immutable policy snapshot; requests load it once and keep it.
type gate struct {
	auth         *policy.Authenticator
	limits       *policy.Limiter
	outputTokens int
}

// SetPolicy replaces the policy that WithPolicy set, atomically: requests admitted before
// keep the old one, later ones see the new one. Arguments are as for WithPolicy. Safe for
// concurrent use.
func (r *Router) SetPolicy(auth *policy.Authenticator, limits *policy.Limiter, outputTokens int) {
	if outputTokens <= 0 {
		outputTokens = defaultOutputTokens
	}
	r.gate.Store(&gate{auth: auth, limits: limits, outputTokens: outputTokens})
}

// WithDefaultPriority names the class of requests that name none and whose caller has no
// default. Default standard.
func WithDefaultPriority(class string) Option { return func(r *Router) { r.defaultClass = class } }

// Admission is the policy's decision for one admitted request: who the caller is, and the
// rate-limit reservation to settle with the real usage.
type Admission struct {
	Identity    *policy.Identity
	reservation *policy.Reservation
}

// Settle charges the request's actual token usage in place of its reservation. Safe on nil.
func (a *Admission) Settle(tokens int64) {
	if a != nil && a.reservation != nil {
		a.reservation.Settle(tokens)
	}
}

// Charge adds tokens a long-lived request has used to its token limits, in their current
// windows, and reports whether they all still have room. Safe on nil.
func (a *Admission) Charge(tokens int64) bool {
	if a == nil || a.reservation == nil {
		return true
	}
	return a.reservation.Charge(tokens)
}

// Quota is the caller's remaining quota after this request, for rate-limit headers.
func (a *Admission) Quota() policy.Quota {
	if a == nil || a.reservation == nil {
		return policy.Quota{}
	}
	return a.reservation.Status()
}

var anonymous = &policy.Identity{Tenant: "anonymous", Subject: "anonymous", Method: "anonymous"}

// Identify authenticates a caller without admitting a request (model listings).
func (r *Router) Identify(ctx context.Context, creds policy.Credentials) (*policy.Identity, error) {
	return r.gate.Load().identify(ctx, creds)
}

func (g *gate) identify(ctx context.Context, creds policy.Credentials) (*policy.Identity, error) {
	if g.auth == nil {
		return anonymous, nil
	}
	id, err := g.auth.Authenticate(ctx, creds)
	if err != nil {
		return nil, &Error{Code: CodeUnauthenticated, Reason: "invalid_api_key", Message: err.Error(), Err: err}
	}
	return id, nil
}

// Admit runs the policy chain for req: authenticate the caller, check the model exists and
// the caller may use it, settle the priority class (the request's, else the caller's default,
// else the router's), and reserve rate-limit quota: one request, and for text operations the
// estimated prompt tokens plus the output budget. Metadata calls are authenticated and
// authorized but not charged. Everything runs on local state; nothing waits on the network
// except a JWT whose signing key is unknown (see policy.JWTVerifier).
func (r *Router) Admit(ctx context.Context, req *Request, creds policy.Credentials) (a *Admission, err error) {
	ctx, span := r.startSpan(ctx, "switchyard.policy", trace.SpanKindInternal, nil)
	defer func() { endSpan(span, err) }()
	g := r.gate.Load()
	id, err := g.identify(ctx, creds)
	if err != nil {
		return nil, err
	}
	req.Identity = id.Tenant
	if !r.Known(req.Protocol, req.Model) {
		return nil, notFound(req.Model)
	}
	if err := policy.Authorize(id, req.Model); err != nil {
		return nil, &Error{Code: CodePermissionDenied, Reason: "model_not_allowed", Param: "model", Message: err.Error(), Err: err}
	}
	if req.Priority == "" {
		req.Priority = r.defaultClass
		if _, ok := r.ranks[id.Priority]; ok {
			req.Priority = id.Priority
		}
	}
	// A virtual model's rules see the settled priority and tenant.
	route, err := r.Route(req)
	if err != nil {
		return nil, err
	}
	a = &Admission{Identity: id}
	if g.limits == nil || req.Operation == OpMetadata {
		return a, nil
	}
	var tokens int64
	switch req.Operation {
	case OpChat, OpCompletion:
		out := req.MaxTokens
		if out <= 0 {
			out = g.outputTokens
		}
		tokens = int64(req.PromptTokens + out)
	case OpEmbedding:
		tokens = int64(req.PromptTokens)
	case OpRealtime:
		tokens = 1 // room in the token limits; the session's usage is charged as it happens
	}
	res, err := g.limits.Reserve(policy.Subject{Tenant: id.Tenant, Model: route.TargetModel, Route: route.Model}, tokens)
	if err != nil {
		var d *policy.Denial
		if errors.As(err, &d) {
			r.metrics.limited(d.Limit.Name)
			return nil, &Error{Code: CodeResourceExhausted, Reason: "rate_limit_exceeded", RetryAfter: d.RetryAfter,
				Message: "Rate limit " + d.Limit.Name + " reached for tenant " + id.Tenant + "; retry later.", Err: d}
		}
		return nil, err
	}
	a.reservation = res
	r.metrics.limited("")
	return a, nil
}

// ReservedTokens reports what Admit reserved for req, so a front door can settle a stream that
// ended without a usage report.
func (r *Router) ReservedTokens(req *Request) int64 {
	out := req.MaxTokens
	if out <= 0 {
		out = r.gate.Load().outputTokens
	}
	return int64(req.PromptTokens + out)
}

// LimitsTokens reports whether token limits may apply, so a front door knows to ask streaming
// upstreams for their usage.
func (r *Router) LimitsTokens() bool { return r.gate.Load().limits != nil }
