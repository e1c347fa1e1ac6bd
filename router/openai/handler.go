package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/policy"
	"github.com/switchyard-ai/switchyard/router"
)

// Handler serves the OpenAI-compatible API under /v1/. It is safe for concurrent use.
type Handler struct {
	rt              *router.Router
	maxBody         int64
	sessionHeader   string
	sessionFromUser bool
	priorityHeader  string
	priorities      []string
	defaultClass    string
	routingHeaders  bool
	log             *slog.Logger
	metrics         *router.Metrics
	created         int64
}

// Option configures a Handler.
type Option func(*Handler)

// WithMaxBodyBytes bounds request bodies; larger ones get 413. Default 32 MiB.
func WithMaxBodyBytes(n int64) Option { return func(h *Handler) { h.maxBody = n } }

// WithSessionHeader names the header that carries the session key. Default x-session-id.
func WithSessionHeader(name string) Option { return func(h *Handler) { h.sessionHeader = name } }

// WithSessionFromUser uses the body's `user` field as the session key when the header is
// absent. Default off.
func WithSessionFromUser(on bool) Option { return func(h *Handler) { h.sessionFromUser = on } }

// WithPriorities names the header carrying the priority class, the classes allowed, and the
// class of requests without the header. Default x-priority; critical, standard, sheddable;
// standard.
func WithPriorities(header string, classes []string, def string) Option {
	return func(h *Handler) { h.priorityHeader, h.priorities, h.defaultClass = header, classes, def }
}

// WithRoutingHeaders turns the x-switchyard-model and x-switchyard-endpoint response headers
// on or off. Default on.
func WithRoutingHeaders(on bool) Option { return func(h *Handler) { h.routingHeaders = on } }

// WithLogger sets where the one line per request goes. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithMetrics records each request in m.
func WithMetrics(m *router.Metrics) Option { return func(h *Handler) { h.metrics = m } }

// NewHandler returns the OpenAI front door over rt.
func NewHandler(rt *router.Router, opts ...Option) *Handler {
	h := &Handler{
		rt: rt, maxBody: 32 << 20, sessionHeader: "x-session-id", priorityHeader: "x-priority",
		priorities: []string{"critical", "standard", "sheddable"}, defaultClass: "standard",
		routingHeaders: true, log: slog.Default(), created: time.Now().Unix(),
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

// The routes the front door serves, each with its method and operation.
var routes = map[string]struct {
	method string
	op     router.Operation
}{
	"/v1/chat/completions": {http.MethodPost, router.OpChat},
	"/v1/completions":      {http.MethodPost, router.OpCompletion},
	"/v1/embeddings":       {http.MethodPost, router.OpEmbedding},
	"/v1/models":           {http.MethodGet, ""},
}

// exchange is one request's progress, for the log line and metrics.
type exchange struct {
	http.ResponseWriter
	start     time.Time
	status    int
	firstByte time.Duration
	bytes     int64
	model     string
	endpoint  string
	attempts  int
}

func (x *exchange) WriteHeader(code int) {
	if x.status == 0 {
		x.status = code
	}
	x.ResponseWriter.WriteHeader(code)
}

func (x *exchange) Write(p []byte) (int, error) {
	if x.status == 0 {
		x.status = http.StatusOK
	}
	if x.firstByte == 0 && len(p) > 0 {
		x.firstByte = time.Since(x.start)
	}
	n, err := x.ResponseWriter.Write(p)
	x.bytes += int64(n)
	return n, err
}

func (x *exchange) Flush() {
	if f, ok := x.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (x *exchange) Unwrap() http.ResponseWriter { return x.ResponseWriter }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{ResponseWriter: w, start: time.Now()}
	id := r.Header.Get("x-request-id")
	if id == "" || len(id) > 128 {
		id = strconv.FormatUint(rand.Uint64(), 16)
	}
	w.Header().Set("x-request-id", id)
	var err error
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			err = fmt.Errorf("panic: %v", v)
			h.log.Error("panic serving request", "id", id, "panic", v)
			if x.status == 0 {
				writeError(x, &router.Error{Code: router.CodeInternal, Message: "internal error"})
			}
		}
		h.finish(x, r, id, err)
	}()
	err = h.serve(x, r, id)
	if err != nil && x.status == 0 {
		writeError(x, err)
	}
}

func (h *Handler) serve(x *exchange, r *http.Request, id string) error {
	rt, ok := routes[r.URL.Path]
	if !ok {
		return &router.Error{Code: router.CodeNotFound, Reason: "unknown_url",
			Message: "Unknown request URL: " + r.Method + " " + r.URL.Path + "."}
	}
	if r.Method != rt.method {
		x.Header().Set("Allow", rt.method)
		return &router.Error{Code: router.CodeMethodNotAllowed, Reason: "method_not_allowed",
			Message: "Method " + r.Method + " is not allowed on " + r.URL.Path + "; use " + rt.method + "."}
	}
	creds := credentials(r)
	if rt.op == "" {
		return h.listModels(x, r, creds)
	}
	body, err := h.readBody(x, r)
	if err != nil {
		return err
	}
	p, err := peek(body)
	if err != nil {
		var pe *peekError
		errors.As(err, &pe)
		return &router.Error{Code: router.CodeInvalidArgument, Param: pe.param, Reason: "invalid_request", Message: pe.msg}
	}
	req := p.request()
	req.ID, req.Protocol, req.Operation, req.Body, req.Header = id, router.ProtocolOpenAI, rt.op, body, r.Header
	req.SessionKey = r.Header.Get(h.sessionHeader)
	if req.SessionKey == "" && h.sessionFromUser && req.User != "" {
		req.SessionKey = "user:" + req.User
	}
	req.Priority = r.Header.Get(h.priorityHeader)
	if req.Priority != "" && !slices.Contains(h.priorities, req.Priority) {
		return &router.Error{Code: router.CodeInvalidArgument, Param: h.priorityHeader, Reason: "invalid_priority",
			Message: "Unknown priority class " + strconv.Quote(req.Priority) + "; known classes: " + strings.Join(h.priorities, ", ") + "."}
	}
	adm, err := h.rt.Admit(r.Context(), &req, creds)
	if err != nil {
		var d *policy.Denial
		if errors.As(err, &d) {
			router.SetQuotaHeaders(x.Header(), d.Quota)
		}
		return err
	}
	x.model = req.Model
	router.SetQuotaHeaders(x.Header(), adm.Quota())
	// Token limits are settled with the real usage, which a stream reports only when asked.
	u := usage{askUsage: h.rt.LimitsTokens() && req.Stream && !req.IncludeUsage}
	err = h.rt.Serve(r.Context(), &req, func(ctx context.Context, t router.Target) error {
		x.endpoint = t.Endpoint.Name
		x.attempts++
		return h.forward(ctx, x, r, &req, &p, t, &u)
	})
	switch {
	case u.total > 0:
		adm.Settle(u.total)
	case u.events > 0: // an aborted stream keeps what it consumed
		adm.Settle(int64(req.PromptTokens) + u.events)
	case (err != nil && x.status == 0) || x.status >= 400: // refused or failed: nothing generated
		adm.Settle(0)
	default:
		adm.Settle(h.rt.ReservedTokens(&req))
	}
	return err
}

// usage is what a response reported of its token usage.
type usage struct {
	askUsage bool  // the upstream was asked for a usage chunk the client did not ask for
	total    int64 // usage.total_tokens, once seen
	events   int64 // stream events relayed, a floor for output tokens when no usage came
}

// scan reads usage.total_tokens from a response body or stream event, if it has any.
func (u *usage) scan(b []byte) {
	i := bytes.Index(b, []byte(`"usage":{`))
	if i < 0 {
		return
	}
	var v struct {
		Usage struct {
			Total int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	if j := bytes.IndexByte(b, '{'); j >= 0 && json.Unmarshal(bytes.TrimSpace(trimData(b[j:])), &v) == nil && v.Usage.Total > 0 {
		u.total = v.Usage.Total
	}
}

// trimData cuts an SSE event's trailing blank lines so its JSON payload parses.
func trimData(b []byte) []byte { return bytes.TrimRight(b, "\r\n") }

// usageOnly reports whether a stream event is the usage chunk (no choices).
func usageOnly(ev []byte) bool { return bytes.Contains(ev, []byte(`"choices":[]`)) }

// credentials reads what the request presented: a bearer token and a verified client
// certificate chain.
func credentials(r *http.Request) policy.Credentials {
	c := policy.Credentials{Bearer: router.BearerToken(r.Header)}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		c.Certs = r.TLS.VerifiedChains[0]
	}
	return c
}

// readBody reads the whole body, refusing anything over the limit with 413.
func (h *Handler) readBody(x *exchange, r *http.Request) ([]byte, error) {
	tooLarge := &router.Error{Code: router.CodeRequestTooLarge, Reason: "request_too_large",
		Message: fmt.Sprintf("Request body is larger than the limit of %d bytes.", h.maxBody)}
	if r.ContentLength > h.maxBody {
		return nil, tooLarge
	}
	size := r.ContentLength
	if size < 0 {
		size = 4096
	}
	buf := make([]byte, 0, size+1)
	rd := http.MaxBytesReader(x, r.Body, h.maxBody)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge
			}
			return nil, &router.Error{Code: router.CodeCanceled, Message: "reading request body failed", Err: err}
		}
	}
}

// forward sends one attempt upstream and relays the answer. It returns a Retryable error only
// while nothing has been written to the client.
func (h *Handler) forward(ctx context.Context, x *exchange, r *http.Request, req *router.Request, p *peeked, t router.Target, u *usage) error {
	body := req.Body
	if rename := t.Route.TargetModel != req.Model; rename || u.askUsage {
		model := ""
		if rename {
			model = t.Route.TargetModel
		}
		body = p.rewrite(body, model, u.askUsage)
	}
	sent := time.Now()
	load := backends.Sent{PrefillAhead: t.Endpoint.StartPrefill(req.PromptTokens), InFlight: t.Endpoint.InFlight()}
	var prefillOnce sync.Once
	endPrefill := func() { prefillOnce.Do(func() { t.Endpoint.EndPrefill(req.PromptTokens) }) }
	defer endPrefill()
	flight := t.Endpoint.Fly(req.MaxTokens)
	defer flight.Land()
	resp, err := t.Pool.Client.Post(ctx, t.Endpoint, r.URL.Path, upstreamHeader(r, req.ID), body)
	if err != nil {
		return upstreamError(ctx, t.Endpoint, err)
	}
	defer resp.Body.Close()
	t.Endpoint.MarkOK()
	if !t.Last && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests) {
		return router.Retryable(&router.Error{Code: router.CodeUpstream,
			Message: fmt.Sprintf("upstream %s answered %d", t.Endpoint.Name, resp.StatusCode)})
	}
	hdr := x.Header()
	copyResponseHeader(hdr, resp.Header)
	if h.routingHeaders {
		hdr.Set("x-switchyard-model", t.Route.TargetModel)
		hdr.Set("x-switchyard-endpoint", t.Endpoint.Name)
	}
	if resp.StatusCode >= 400 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return upstreamError(ctx, t.Endpoint, err)
		}
		b = normalizeUpstreamError(b, resp.StatusCode)
		hdr.Set("Content-Length", strconv.Itoa(len(b)))
		x.WriteHeader(resp.StatusCode)
		x.Write(b)
		return nil
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		hdr.Del("Content-Length")
		x.WriteHeader(resp.StatusCode)
		x.Flush()
		rs, err := relaySSE(x, resp.Body, func(i int, ev []byte) bool {
			if i == 0 {
				endPrefill()
			}
			flight.Token()
			u.events++
			if bytes.Contains(ev, []byte(`"usage":{`)) {
				u.scan(ev)
				return !(u.askUsage && usageOnly(ev))
			}
			return true
		})
		if err != nil && ctx.Err() == nil && !errors.Is(err, errClientWrite) {
			x.Write(streamErrorEvent("The upstream stream from " + t.Endpoint.Name + " failed: " + errCause(err)))
			x.Flush()
			return fmt.Errorf("openai: stream relay: %w", err)
		}
		if err == nil && rs.sawDone {
			t.Endpoint.ObserveStream(req.PromptTokens, load, rs.first.Sub(sent), rs.last.Sub(rs.first), rs.events)
		}
		if err == nil && !rs.sawDone && req.Stream {
			h.log.Warn("upstream stream ended without [DONE]", "id", req.ID, "endpoint", t.Endpoint.Name)
		}
		return err
	}
	// A whole answer is read before it is written, so its usage settles the token limits.
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return upstreamError(ctx, t.Endpoint, err)
	}
	u.scan(b)
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	x.WriteHeader(resp.StatusCode)
	x.Write(b)
	return nil
}

// maxResponseBytes bounds a non-streamed response body read from a model server.
const maxResponseBytes = 256 << 20

// errCause is the short reason shown to clients for a failed stream.
func errCause(err error) string {
	switch {
	case errors.Is(err, backends.ErrIdleTimeout):
		return "no data within the idle stream timeout"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed mid-stream"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset mid-stream"
	}
	return "connection error"
}

// upstreamError maps an upstream call failure onto a router error.
func upstreamError(ctx context.Context, ep *backends.Endpoint, err error) error {
	switch {
	case ctx.Err() != nil:
		return &router.Error{Code: router.CodeCanceled, Message: "client canceled the request", Err: err}
	case errors.Is(err, backends.ErrConnect):
		ep.MarkFailed(time.Now())
		return router.Retryable(&router.Error{Code: router.CodeUpstream, Reason: "upstream_unreachable",
			Message: "Upstream " + ep.Name + " could not be reached.", Err: err})
	case errors.Is(err, backends.ErrFirstByteTimeout):
		return &router.Error{Code: router.CodeDeadlineExceeded, Reason: "upstream_timeout",
			Message: "Upstream " + ep.Name + " did not answer in time.", Err: err}
	}
	return &router.Error{Code: router.CodeUpstream, Reason: "upstream_error",
		Message: "Upstream " + ep.Name + " failed.", Err: err}
}

// hopHeaders are connection-scoped and never forwarded (RFC 9110 section 7.6.1), plus the ones
// a proxy replaces.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Host": true, "Content-Length": true, "Accept-Encoding": true,
	// The client's credentials are for Switchyard, not for the model server.
	"Authorization": true, "Cookie": true,
}

func upstreamHeader(r *http.Request, id string) http.Header {
	h := make(http.Header, len(r.Header)+2)
	for k, v := range r.Header {
		if !hopHeaders[k] {
			h[k] = v
		}
	}
	h.Set("X-Request-Id", id)
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header.Get("X-Forwarded-For"); prior != "" {
			host = prior + ", " + host
		}
		h.Set("X-Forwarded-For", host)
	}
	return h
}

func copyResponseHeader(dst, src http.Header) {
	for k, v := range src {
		if strings.HasPrefix(k, "X-Ratelimit-") {
			continue // Switchyard's limits are the ones the client is subject to
		}
		if !hopHeaders[k] || k == "Content-Length" {
			dst[k] = v
		}
	}
}

type modelList struct {
	Object string       `json:"object"`
	Data   []modelEntry `json:"data"`
}

type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// listModels lists the models the caller may use.
func (h *Handler) listModels(x *exchange, r *http.Request, creds policy.Credentials) error {
	id, err := h.rt.Identify(r.Context(), creds)
	if err != nil {
		return err
	}
	l := modelList{Object: "list", Data: []modelEntry{}}
	for _, m := range h.rt.Models(router.ProtocolOpenAI) {
		if !id.Allows(m) {
			continue
		}
		l.Data = append(l.Data, modelEntry{ID: m, Object: "model", Created: h.created, OwnedBy: "switchyard"})
	}
	b, _ := json.Marshal(l)
	x.Header().Set("Content-Type", "application/json")
	x.Write(b)
	return nil
}

// finish writes the request's log line and metrics.
func (h *Handler) finish(x *exchange, r *http.Request, id string, err error) {
	d := time.Since(x.start)
	status := x.status
	if status == 0 {
		status = 499 // nothing written: the client left first
	}
	h.metrics.Observe(router.Outcome{Protocol: router.ProtocolOpenAI, Model: x.model, Endpoint: x.endpoint,
		Status: strconv.Itoa(status), Duration: d, FirstByte: x.firstByte})
	attrs := []slog.Attr{
		slog.String("id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.Duration("duration", d), slog.Duration("ttfb", x.firstByte),
		slog.Int64("bytes", x.bytes),
	}
	if x.model != "" {
		attrs = append(attrs, slog.String("model", x.model))
	}
	if x.endpoint != "" {
		attrs = append(attrs, slog.String("endpoint", x.endpoint), slog.Int("attempts", x.attempts))
	}
	level := slog.LevelInfo
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		if status >= 500 {
			level = slog.LevelWarn
		}
	}
	h.log.LogAttrs(context.Background(), level, "request", attrs...)
}
