package kserve

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/switchyard-ai/switchyard/gen/inference/inferenceconnect"
	"github.com/switchyard-ai/switchyard/policy"
	"github.com/switchyard-ai/switchyard/router"
)

// Handler serves the KServe v2 protocol on the data-plane port: the GRPCInferenceService at
// /inference.GRPCInferenceService/ for gRPC, gRPC-Web and Connect clients, and the REST API
// under /v2/. It is safe for concurrent use.
type Handler struct {
	rt             *router.Router
	log            *slog.Logger
	metrics        *router.Metrics
	version        string
	ready          func() bool
	sessionHeader  string
	priorityHeader string
	priorities     []string
	defaultClass   string
	routingHeaders bool
	maxElements    int64
	maxBody        int64
	maxMessage     int64

	grpcPath string
	grpc     http.Handler
	rest     *http.ServeMux
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets where the one line per request goes. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithMetrics records each request in m.
func WithMetrics(m *router.Metrics) Option { return func(h *Handler) { h.metrics = m } }

// WithServerInfo sets the version ServerMetadata reports and the readiness ServerReady and
// /v2/health/ready report. Default "dev" and always ready.
func WithServerInfo(version string, ready func() bool) Option {
	return func(h *Handler) { h.version, h.ready = version, ready }
}

// WithSessionHeader names the metadata key carrying a session key when the request has no
// sequence_id. Default x-session-id.
func WithSessionHeader(name string) Option { return func(h *Handler) { h.sessionHeader = name } }

// WithPriorities names the header carrying the priority class, the classes (most urgent
// first) and the default class. Default x-priority; critical, standard, sheddable; standard.
func WithPriorities(header string, classes []string, def string) Option {
	return func(h *Handler) { h.priorityHeader, h.priorities, h.defaultClass = header, classes, def }
}

// WithRoutingHeaders turns the x-switchyard-model and x-switchyard-endpoint response headers
// (gRPC response metadata) on or off. Default on.
func WithRoutingHeaders(on bool) Option { return func(h *Handler) { h.routingHeaders = on } }

// WithLimits bounds a request's tensor elements (default DefaultMaxElements) and body or
// message bytes (default 32 MiB).
func WithLimits(maxElements, maxBody int64) Option {
	return func(h *Handler) { h.maxElements, h.maxBody = maxElements, maxBody }
}

// NewHandler returns the KServe v2 front door over rt.
func NewHandler(rt *router.Router, opts ...Option) *Handler {
	h := &Handler{
		rt: rt, log: slog.Default(), version: "dev", ready: func() bool { return true },
		sessionHeader: "x-session-id", priorityHeader: "x-priority",
		priorities: []string{"critical", "standard", "sheddable"}, defaultClass: "standard",
		routingHeaders: true, maxElements: DefaultMaxElements, maxBody: 32 << 20, maxMessage: 32 << 20,
	}
	for _, o := range opts {
		o(h)
	}
	h.grpcPath, h.grpc = inferenceconnect.NewGRPCInferenceServiceHandler(&service{h: h},
		connect.WithReadMaxBytes(int(h.maxMessage)), connect.WithInterceptors(h.observe()))
	h.rest = h.restMux()
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		// connect-go hands handlers no *http.Request; the client certificate rides the context.
		r = r.WithContext(context.WithValue(r.Context(), peerCertsKey{}, r.TLS.VerifiedChains[0]))
	}
	if strings.HasPrefix(r.URL.Path, h.grpcPath) {
		h.grpc.ServeHTTP(w, r)
		return
	}
	h.rest.ServeHTTP(w, r)
}

type peerCertsKey struct{}

// credentials reads what a call presented: the authorization header or gRPC metadata (Bearer),
// and a verified client certificate.
func credentials(ctx context.Context, hdr http.Header) policy.Credentials {
	c := policy.Credentials{Bearer: router.BearerToken(hdr)}
	c.Certs, _ = ctx.Value(peerCertsKey{}).([]*x509.Certificate)
	return c
}

// GRPCPath is the path prefix of the gRPC service, for mounting the handler.
func (h *Handler) GRPCPath() string { return h.grpcPath }

// observe is the interceptor that writes one log line and the metrics per gRPC, gRPC-Web or
// Connect call.
func (h *Handler) observe() connect.Interceptor {
	return &observer{h: h}
}

type observer struct{ h *Handler }

func (o *observer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		resp, err := next(ctx, req)
		var hdr http.Header
		if resp != nil {
			hdr = resp.Header()
		} else if ce := connectError(err); ce != nil {
			hdr = ce.Meta()
		}
		o.h.finish(req.Spec().Procedure, req.Peer().Protocol, hdr, start, err)
		return resp, err
	}
}

func (o *observer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (o *observer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		o.h.finish(conn.Spec().Procedure, conn.Peer().Protocol, conn.ResponseHeader(), start, err)
		return err
	}
}

// finish writes a call's log line and metrics. The model and endpoint come from the routing
// headers set on the response.
func (h *Handler) finish(what, wire string, hdr http.Header, start time.Time, err error) {
	d := time.Since(start)
	code := "ok"
	if err != nil {
		code = connectError(err).Code().String()
	}
	model, endpoint := hdr.Get(hdrModel), hdr.Get(hdrEndpoint)
	if _, rerr := h.rt.Resolve(router.ProtocolKServe, model); rerr != nil {
		model = "" // only configured models become metric labels
	}
	op := router.OpMetadata
	if strings.Contains(strings.ToLower(what), "infer") {
		op = router.OpInfer
	}
	h.metrics.Observe(router.Outcome{Protocol: router.ProtocolKServe, Model: model, Endpoint: endpoint,
		Status: code, Duration: d, Operation: op, Failed: err != nil})
	attrs := []slog.Attr{slog.String("call", what), slog.String("wire", wire), slog.String("status", code),
		slog.Duration("duration", d)}
	if id := hdr.Get("x-request-id"); id != "" {
		attrs = append(attrs, slog.String("id", id))
	}
	if endpoint != "" {
		attrs = append(attrs, slog.String("model", model), slog.String("endpoint", endpoint))
	}
	level := slog.LevelInfo
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	h.log.LogAttrs(context.Background(), level, "request", attrs...)
}
