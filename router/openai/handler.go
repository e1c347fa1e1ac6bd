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
	maxJSONDepth    int
	sessionHeader   string
	sessionKey      string // sessionHeader in canonical form, which Get looks up without allocating
	sessionFromUser bool
	priorityHeader  string
	priorityKey     string // priorityHeader in canonical form
	priorities      []string
	defaultClass    string
	routingHeaders  bool
	log             *slog.Logger
	metrics         *router.Metrics
	created         int64
	bindings        Bindings
	bindingTTL      time.Duration
	realtime        RealtimeLimits
	live            liveSessions
	passthrough     map[string]Passthrough
	spoolDir        string
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
		rt: rt, maxBody: 32 << 20, maxJSONDepth: DefaultMaxJSONDepth, sessionHeader: "x-session-id", priorityHeader: "x-priority",
		priorities: []string{"critical", "standard", "sheddable"}, defaultClass: "standard",
		routingHeaders: true, log: slog.Default(), created: time.Now().Unix(),
		bindingTTL: 24 * time.Hour, realtime: RealtimeLimits{Idle: 5 * time.Minute, MaxDuration: time.Hour},
	}
	for _, o := range opts {
		o(h)
	}
	h.sessionKey, h.priorityKey = http.CanonicalHeaderKey(h.sessionHeader), http.CanonicalHeaderKey(h.priorityHeader)
	return h
}

// Operations of the OpenAI surface that the core knows no name for. Admission charges them one
// request and no tokens up front (a Realtime session one token, so that it needs room in its
// token limits); whatever usage their answers report is settled or charged afterwards.
const (
	opAudio       router.Operation = "audio"           // speech, transcription, translation
	opRealtime    router.Operation = router.OpRealtime // a Realtime WebSocket session
	opStored      router.Operation = "stored"          // reading or deleting a stored response
	opPassthrough router.Operation = "passthrough"     // a configured server-specific path
)

// kind says how a route's request is read and its answer relayed.
type kind uint8

const (
	kindJSON      kind = iota // a JSON body, peeked; a JSON or SSE answer
	kindModels                // the configured model list, answered here
	kindResponses             // the Responses API: JSON body, typed SSE events, a stored response
	kindMultipart             // a multipart upload, streamed through
	kindRealtime              // a WebSocket upgrade
)

// The routes the front door serves, each with its method, operation and kind. Stored
// responses (/v1/responses/{id}) and configured passthrough paths are matched before these.
var routes = map[string]struct {
	method string
	op     router.Operation
	kind   kind
}{
	"/v1/chat/completions":     {http.MethodPost, router.OpChat, kindJSON},
	"/v1/completions":          {http.MethodPost, router.OpCompletion, kindJSON},
	"/v1/embeddings":           {http.MethodPost, router.OpEmbedding, kindJSON},
	"/v1/models":               {http.MethodGet, "", kindModels},
	"/v1/responses":            {http.MethodPost, router.OpChat, kindResponses},
	"/v1/audio/speech":         {http.MethodPost, opAudio, kindJSON},
	"/v1/audio/transcriptions": {http.MethodPost, opAudio, kindMultipart},
	"/v1/audio/translations":   {http.MethodPost, opAudio, kindMultipart},
	"/v1/realtime":             {http.MethodGet, opRealtime, kindRealtime},
}

// BuiltinPath reports whether path is served by the front door itself, so that a passthrough
// path never shadows it.
func BuiltinPath(path string) bool {
	_, ok := routes[path]
	return ok || strings.HasPrefix(path, storedPrefix)
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
	// For the GenAI metrics.
	op            router.Operation
	target        string // concrete model served
	tenant        string
	input, output int64 // tokens the answer reported
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
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 128 {
		id = strconv.FormatUint(rand.Uint64(), 16)
	}
	w.Header()["X-Request-Id"] = []string{id}
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
	if strings.HasPrefix(r.URL.Path, storedPrefix) {
		return h.serveStored(x, r, id)
	}
	if pt, ok := h.passthrough[r.URL.Path]; ok {
		return h.servePassthrough(x, r, id, pt)
	}
	rt, ok := routes[r.URL.Path]
	if !ok {
		return &router.Error{Code: router.CodeNotFound, Reason: "unknown_url",
			Message: "Unknown request URL: " + r.Method + " " + r.URL.Path + "."}
	}
	if err := allowMethod(x, r, rt.method); err != nil {
		return err
	}
	switch rt.kind {
	case kindModels:
		return h.listModels(x, r, credentials(r))
	case kindRealtime:
		return h.serveRealtime(x, r, id)
	case kindMultipart:
		return h.serveMultipart(x, r, id)
	}
	held := holdBody(r.ContentLength)
	var buf []byte
	if held != nil {
		buf = held.buf
		defer held.release()
	}
	body, err := h.readBodyInto(x, r, buf)
	if err != nil {
		return err
	}
	if held != nil && !held.holds(body) {
		held = nil // read elsewhere; the buffer goes back when this returns
	}
	p, err := peekLimit(body, h.maxJSONDepth)
	if err != nil {
		return peekFailure(err)
	}
	req := p.request()
	req.ID, req.Protocol, req.Operation, req.Body = id, router.ProtocolOpenAI, rt.op, body
	if err := h.classify(r, &req); err != nil {
		return err
	}
	// Token limits are settled with the real usage, which a chat stream reports only when
	// asked; a Responses stream always ends with it.
	u := usage{askUsage: h.rt.LimitsTokens() && req.Stream && !req.IncludeUsage && rt.kind == kindJSON && rt.op != opAudio,
		responses: rt.kind == kindResponses}
	var pin pinner
	if rt.kind == kindResponses && p.previous != "" {
		pin = h.pinPrevious(p.previous)
	}
	return h.admitAndServe(x, r, &req, &u, pin, func(ctx context.Context, t router.Target) (*http.Response, error) {
		// Post is done with the body when it returns: a held buffer goes back when serve does.
		parts := p.forTarget(req.Body, req.Model, t, u.askUsage)
		return t.Pool.Client.Post(ctx, t.Endpoint, r.URL.Path, upstreamHeader(r, req.ID), parts...)
	})
}

// allowMethod refuses a request whose method is not the route's with 405 and Allow.
func allowMethod(x *exchange, r *http.Request, methods ...string) error {
	if slices.Contains(methods, r.Method) {
		return nil
	}
	allow := strings.Join(methods, ", ")
	x.Header().Set("Allow", allow)
	return &router.Error{Code: router.CodeMethodNotAllowed, Reason: "method_not_allowed",
		Message: "Method " + r.Method + " is not allowed on " + r.URL.Path + "; use " + allow + "."}
}

// peekFailure turns a peek error into the 400 that names the offending field.
func peekFailure(err error) error {
	var pe *peekError
	errors.As(err, &pe)
	return &router.Error{Code: router.CodeInvalidArgument, Param: pe.param, Reason: "invalid_request", Message: pe.msg}
}

// classify fills what the headers say about req: the header set for routing rules, the
// session key and the priority class.
func (h *Handler) classify(r *http.Request, req *router.Request) error {
	req.Header = r.Header
	req.SessionKey = r.Header.Get(h.sessionKey)
	if req.SessionKey == "" && h.sessionFromUser && req.User != "" {
		req.SessionKey = "user:" + req.User
	}
	req.Priority = r.Header.Get(h.priorityKey)
	if req.Priority != "" && !slices.Contains(h.priorities, req.Priority) {
		return &router.Error{Code: router.CodeInvalidArgument, Param: h.priorityHeader, Reason: "invalid_priority",
			Message: "Unknown priority class " + strconv.Quote(req.Priority) + "; known classes: " + strings.Join(h.priorities, ", ") + "."}
	}
	return nil
}

// admit runs the policy chain for req and writes the rate-limit headers of its answer.
func (h *Handler) admit(x *exchange, r *http.Request, req *router.Request) (*router.Admission, error) {
	adm, err := h.rt.Admit(r.Context(), req, credentials(r))
	if err != nil {
		var d *policy.Denial
		if errors.As(err, &d) {
			router.SetQuotaHeaders(x.Header(), d.Quota)
		}
		return nil, err
	}
	x.model = req.Model
	router.SetQuotaHeaders(x.Header(), adm.Quota())
	return adm, nil
}

// sender sends one attempt's request upstream and returns the response once its headers
// arrive.
type sender func(ctx context.Context, t router.Target) (*http.Response, error)

// pinner names the one endpoint an admitted request must go to, or nil to let the router pick.
type pinner func(req *router.Request) (*router.Target, error)

// admitAndServe admits req, runs it with send on the endpoint pin names, or else on picked
// endpoints, relays the answer, and settles the token reservation with the usage the answer
// reported. pin may be nil.
func (h *Handler) admitAndServe(x *exchange, r *http.Request, req *router.Request, u *usage, pin pinner, send sender) error {
	adm, err := h.admit(x, r, req)
	if err != nil {
		return err
	}
	x.op = req.Operation
	if adm.Identity != nil {
		x.tenant = adm.Identity.Tenant
	}
	attempt := func(ctx context.Context, t router.Target) error {
		x.endpoint = t.Endpoint.Name
		x.target = t.Route.TargetModel
		x.attempts++
		return h.forward(ctx, x, req, t, u, send)
	}
	var t *router.Target
	if pin != nil {
		t, err = pin(req)
	}
	switch {
	case err != nil:
	case t != nil:
		release := t.Endpoint.Acquire()
		err = attempt(r.Context(), *t)
		release()
	default:
		err = h.rt.Serve(r.Context(), req, attempt)
	}
	h.settle(adm, x, req, u, err)
	x.input, x.output = u.input, u.output
	return err
}

// settle charges the request's real token usage in place of its reservation.
func (h *Handler) settle(adm *router.Admission, x *exchange, req *router.Request, u *usage, err error) {
	switch {
	case u.total > 0:
		adm.Settle(u.total)
	case u.events > 0: // an aborted stream keeps what it consumed
		adm.Settle(int64(req.PromptTokens) + u.events)
	case (err != nil && x.status == 0) || x.status >= 400: // refused or failed: nothing generated
		adm.Settle(0)
	case req.Operation == router.OpChat || req.Operation == router.OpCompletion || req.Operation == router.OpEmbedding:
		adm.Settle(h.rt.ReservedTokens(req))
	default: // reserved nothing and reported nothing
		adm.Settle(0)
	}
}

// usage is what a response reported of its token usage, and for the Responses API the id of
// the response it created.
type usage struct {
	askUsage  bool  // the upstream was asked for a usage chunk the client did not ask for
	responses bool  // the answer is the Responses API's: usage in its final event
	total     int64 // usage.total_tokens (or input plus output tokens), once seen
	input     int64 // prompt or input tokens, once seen
	output    int64 // completion or output tokens, once seen
	events    int64 // stream events relayed, a floor for output tokens when no usage came
	// finished is set by a Responses stream's terminal event, which stands for [DONE].
	finished bool
	// created is the id of the response an upstream created, once seen; bound once it is
	// remembered for later requests naming it.
	created string
	bound   bool
}

// scan reads usage.total_tokens from a response body or stream event, if it has any. A usage
// without a total counts its input and output tokens (prompt and completion tokens).
func (u *usage) scan(b []byte) {
	if !bytes.Contains(b, []byte(`"usage":{`)) {
		return
	}
	j := bytes.IndexByte(b, '{')
	if t, ok := topUsage(bytes.TrimSpace(trimData(b[j:]))); ok {
		if sum := t.sum(); sum > 0 {
			u.total = sum
			u.input, u.output = t.Prompt+t.Input, t.Completion+t.Output
		}
	}
}

// tokenUsage is a usage object of any OpenAI API: chat's prompt and completion tokens, the
// Responses API's input and output tokens, and a total when given.
type tokenUsage struct {
	Total      int64 `json:"total_tokens"`
	Prompt     int64 `json:"prompt_tokens"`
	Completion int64 `json:"completion_tokens"`
	Input      int64 `json:"input_tokens"`
	Output     int64 `json:"output_tokens"`
}

func (t tokenUsage) sum() int64 {
	if t.Total > 0 {
		return t.Total
	}
	return t.Prompt + t.Completion + t.Input + t.Output
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
	return h.readBodyInto(x, r, nil)
}

// readBodyInto is readBody reading into buf, when it has room for the whole body and one byte
// more, instead of a new slice.
func (h *Handler) readBodyInto(x *exchange, r *http.Request, buf []byte) ([]byte, error) {
	tooLarge := func() error {
		return &router.Error{Code: router.CodeRequestTooLarge, Reason: "request_too_large",
			Message: fmt.Sprintf("Request body is larger than the limit of %d bytes.", h.maxBody)}
	}
	if r.ContentLength > h.maxBody {
		return nil, tooLarge()
	}
	size := r.ContentLength
	// A body of known length within the limit cannot pass it: the server stops reading
	// there. Only one of unknown length needs counting.
	rd := r.Body
	if size < 0 {
		size = 4096
		rd = http.MaxBytesReader(x, r.Body, h.maxBody)
	}
	if int64(cap(buf)) < size+1 {
		buf = make([]byte, 0, size+1)
	}
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
				return nil, tooLarge()
			}
			return nil, &router.Error{Code: router.CodeCanceled, Message: "reading request body failed", Err: err}
		}
	}
}

// forward sends one attempt upstream with send and relays the answer. It returns a Retryable
// error only while nothing has been written to the client.
func (h *Handler) forward(ctx context.Context, x *exchange, req *router.Request, t router.Target, u *usage, send sender) error {
	sent := time.Now()
	load := backends.Sent{PrefillAhead: t.Endpoint.StartPrefill(req.PromptTokens), InFlight: t.Endpoint.InFlight()}
	var prefillOnce sync.Once
	endPrefill := func() { prefillOnce.Do(func() { t.Endpoint.EndPrefill(req.PromptTokens) }) }
	defer endPrefill()
	flight := t.Endpoint.Fly(req.MaxTokens)
	defer flight.Land()
	resp, err := send(ctx, t)
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
		vals := []string{t.Route.TargetModel, t.Endpoint.Name}
		hdr["X-Switchyard-Model"], hdr["X-Switchyard-Endpoint"] = vals[0:1:1], vals[1:2:2]
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
	ct := resp.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "text/event-stream") {
		hdr.Del("Content-Length")
		x.WriteHeader(resp.StatusCode)
		x.Flush()
		rs, err := relaySSE(x, resp.Body, func(i int, ev []byte) bool {
			if i == 0 {
				endPrefill()
			}
			flight.Token()
			u.events++
			keep := u.event(ev)
			if u.created != "" && !u.bound {
				u.bound = true
				h.bind(u.created, req, t)
			}
			return keep
		})
		if err != nil && ctx.Err() == nil && !errors.Is(err, errClientWrite) {
			t.Endpoint.MarkFailed(time.Now()) // a broken stream counts against the endpoint like a refused connection
			msg := "The upstream stream from " + t.Endpoint.Name + " failed: " + errCause(err)
			if u.responses {
				x.Write(responsesErrorEvent(msg, u.events))
			} else {
				x.Write(streamErrorEvent(msg))
			}
			x.Flush()
			return fmt.Errorf("openai: stream relay: %w", err)
		}
		complete := rs.sawDone || u.finished
		if err == nil && complete {
			t.Endpoint.ObserveStream(req.PromptTokens, load, rs.first.Sub(sent), rs.last.Sub(rs.first), rs.events)
		}
		if err == nil && !complete && req.Stream {
			h.log.Warn("upstream stream ended without its final event", "id", req.ID, "endpoint", t.Endpoint.Name)
		}
		return err
	}
	if !isJSON(ct) {
		// Audio and other binary answers stream through as they arrive; they carry no usage.
		x.WriteHeader(resp.StatusCode)
		if _, err := copyFlushing(x, resp.Body); err != nil && ctx.Err() == nil && !errors.Is(err, errClientWrite) {
			return fmt.Errorf("openai: relay: %w", err)
		}
		return nil
	}
	// A whole answer is read before it is written, so its usage settles the token limits.
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return upstreamError(ctx, t.Endpoint, err)
	}
	u.scan(b)
	if u.responses {
		if id := responseID(b); id != "" {
			h.bind(id, req, t)
		}
	}
	if resp.ContentLength != int64(len(b)) || len(hdr["Content-Length"]) != 1 { // else the upstream's, copied above, is right
		hdr["Content-Length"] = []string{strconv.Itoa(len(b))}
	}
	x.WriteHeader(resp.StatusCode)
	x.Write(b)
	return nil
}

// isJSON reports whether a content type is JSON (application/json or a +json type).
func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "" || mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// copyFlushing copies src to dst, flushing after every read so that streamed audio reaches
// the client as the upstream produces it.
func copyFlushing(dst sseWriter, src io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		m, err := src.Read(buf)
		if m > 0 {
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return n, fmt.Errorf("%w: %w", errClientWrite, werr)
			}
			dst.Flush()
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
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
	// Set in canonical form directly, as Header.Set would store them: this runs per attempt.
	vals := []string{id, ""}
	h["X-Request-Id"] = vals[0:1:1]
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header.Get("X-Forwarded-For"); prior != "" {
			host = prior + ", " + host
		}
		vals[1] = host
		h["X-Forwarded-For"] = vals[1:2:2]
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
		Status: strconv.Itoa(status), Duration: d, FirstByte: x.firstByte,
		Operation: x.op, TargetModel: x.target, Tenant: x.tenant, Failed: status >= 400 || err != nil,
		InputTokens: x.input, OutputTokens: x.output})
	level := slog.LevelInfo
	if err != nil && status >= 500 {
		level = slog.LevelWarn
	}
	if !h.log.Enabled(context.Background(), level) {
		return // the line is not wanted: build none of it
	}
	attrs := make([]slog.Attr, 0, 11)
	attrs = append(attrs,
		slog.String("id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.Duration("duration", d), slog.Duration("ttfb", x.firstByte),
		slog.Int64("bytes", x.bytes))
	if x.model != "" {
		attrs = append(attrs, slog.String("model", x.model))
	}
	if x.endpoint != "" {
		attrs = append(attrs, slog.String("endpoint", x.endpoint), slog.Int("attempts", x.attempts))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	h.log.LogAttrs(context.Background(), level, "request", attrs...)
}
