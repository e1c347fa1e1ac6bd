package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard-ai/switchyard/router"
)

// RealtimeLimits bound a Realtime session: it is closed with 1001 (going away) after Idle
// without a message either way, and after MaxDuration in all.
type RealtimeLimits struct {
	Idle        time.Duration // default 5m
	MaxDuration time.Duration // default 1h
}

// WithRealtimeLimits sets the idle and maximum-duration timeouts of Realtime sessions; a zero
// field keeps its default.
func WithRealtimeLimits(l RealtimeLimits) Option {
	return func(h *Handler) {
		if l.Idle > 0 {
			h.realtime.Idle = l.Idle
		}
		if l.MaxDuration > 0 {
			h.realtime.MaxDuration = l.MaxDuration
		}
	}
}

// keyProtocol is the WebSocket subprotocol prefix that carries an API key for clients that
// cannot set headers (browsers): "openai-insecure-api-key.<key>".
const keyProtocol = "openai-insecure-api-key."

// serveRealtime serves GET /v1/realtime?model=…: after authentication, authorization and a
// request-limit check at the handshake, the upstream WebSocket is dialled on the picked
// endpoint first, so that its refusal reaches the client as an HTTP error, and only then is
// the client's upgrade accepted. Messages are then relayed both ways frame by frame, never
// gathered whole, until either side closes; its close code and reason are passed on to the
// other side. The session counts as one request in flight on its endpoint while it lasts.
func (h *Handler) serveRealtime(x *exchange, r *http.Request, id string) error {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return &router.Error{Code: router.CodeInvalidArgument, Reason: "invalid_request",
			Message: "/v1/realtime takes a WebSocket upgrade."}
	}
	model := r.URL.Query().Get("model")
	if model == "" {
		return &router.Error{Code: router.CodeInvalidArgument, Param: "model", Reason: "invalid_request",
			Message: "you must provide a model parameter"}
	}
	protocols, key := splitProtocols(r.Header.Values("Sec-WebSocket-Protocol"))
	if key != "" && router.BearerToken(r.Header) == "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	req := router.Request{ID: id, Protocol: router.ProtocolOpenAI, Operation: opRealtime, Model: model, Stream: true}
	if err := h.classify(r, &req); err != nil {
		return err
	}
	adm, err := h.admit(x, r, &req)
	if err != nil {
		return err
	}
	x.op = req.Operation
	if adm.Identity != nil {
		x.tenant = adm.Identity.Tenant
	}
	// The handshake reserved a token, to be admitted only with room in the token limits;
	// the session's usage is charged as each response.done reports it.
	defer adm.Settle(0)
	meter := func(msg []byte) *closing {
		in, out, ok := realtimeUsage(msg)
		if !ok {
			return nil
		}
		x.input, x.output = x.input+in, x.output+out
		if adm.Charge(in + out) {
			return nil
		}
		return &closing{websocket.StatusPolicyViolation, "token rate limit reached"}
	}
	return h.rt.Serve(r.Context(), &req, func(ctx context.Context, t router.Target) error {
		x.endpoint = t.Endpoint.Name
		x.attempts++
		up, resp, err := dialUpstream(ctx, r, id, t, protocols)
		if err != nil {
			return h.dialFailed(ctx, x, t, resp, err)
		}
		defer up.CloseNow()
		if h.routingHeaders {
			x.Header().Set("x-switchyard-model", t.Route.TargetModel)
			x.Header().Set("x-switchyard-endpoint", t.Endpoint.Name)
		}
		var accept []string
		if p := up.Subprotocol(); p != "" {
			accept = []string{p}
		}
		down, err := websocket.Accept(x, r, &websocket.AcceptOptions{Subprotocols: accept,
			// Callers are authenticated by their credentials, not by the page they come from.
			InsecureSkipVerify: true})
		if err != nil {
			up.Close(websocket.StatusGoingAway, "client handshake failed")
			return &router.Error{Code: router.CodeInvalidArgument, Reason: "invalid_request", Message: "WebSocket handshake failed", Err: err}
		}
		defer down.CloseNow()
		x.target = t.Route.TargetModel
		h.relayRealtime(ctx, down, up, h.maxBody, meter)
		return nil
	})
}

// splitProtocols separates the API-key subprotocol from the ones to offer upstream.
func splitProtocols(values []string) (offer []string, key string) {
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			switch {
			case p == "":
			case strings.HasPrefix(p, keyProtocol):
				key = strings.TrimPrefix(p, keyProtocol)
			default:
				offer = append(offer, p)
			}
		}
	}
	return offer, key
}

// dialUpstream opens the WebSocket to t's endpoint, with the client's query (model renamed
// for the upstream) and headers.
func dialUpstream(ctx context.Context, r *http.Request, id string, t router.Target, protocols []string) (*websocket.Conn, *http.Response, error) {
	u := *t.Endpoint.URL
	u.Scheme = map[string]string{"https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		u.Scheme = "ws"
	}
	u.Path += r.URL.Path
	q := r.URL.Query()
	q.Set("model", t.Route.TargetModel)
	u.RawQuery = q.Encode()
	hdr := upstreamHeader(r, id)
	for k := range hdr {
		if strings.HasPrefix(k, "Sec-Websocket-") {
			delete(hdr, k) // the dialer writes its own handshake
		}
	}
	return websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient: t.Pool.Client.HTTP(), HTTPHeader: hdr, Subprotocols: protocols,
	})
}

// dialFailed maps a failed upstream handshake onto the client's answer: an HTTP refusal from
// the server is relayed as it is (retried elsewhere while a retry remains), a connection
// failure is retryable.
func (h *Handler) dialFailed(ctx context.Context, x *exchange, t router.Target, resp *http.Response, err error) error {
	if resp == nil || resp.StatusCode == 0 {
		if ctx.Err() != nil {
			return &router.Error{Code: router.CodeCanceled, Message: "client canceled the request", Err: err}
		}
		t.Endpoint.MarkFailed(time.Now())
		return router.Retryable(&router.Error{Code: router.CodeUpstream, Reason: "upstream_unreachable",
			Message: "Upstream " + t.Endpoint.Name + " could not be reached.", Err: err})
	}
	t.Endpoint.MarkOK()
	if !t.Last && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests) {
		return router.Retryable(&router.Error{Code: router.CodeUpstream, Err: err,
			Message: "upstream " + t.Endpoint.Name + " refused the WebSocket handshake"})
	}
	copyResponseHeader(x.Header(), resp.Header)
	x.Header().Del("Content-Length")
	x.Header().Set("Content-Type", "application/json")
	x.WriteHeader(resp.StatusCode)
	var b []byte
	if resp.Body != nil {
		b, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	}
	x.Write(normalizeUpstreamError(b, resp.StatusCode))
	return nil
}

// closing is a close code and reason to pass on.
type closing struct {
	code   websocket.StatusCode
	reason string
}

// relayRealtime pumps messages between the client (down) and the model server (up) until one
// side closes, a pump fails, the idle or duration limit is reached, or meter, which sees each
// text message from the server once relayed, returns a close; then it closes both sides with
// the first close code seen, so each side learns how the other ended.
func (h *Handler) relayRealtime(ctx context.Context, down, up *websocket.Conn, maxMessage int64, meter func([]byte) *closing) {
	// The request's context ends with the handler; the session owns its own.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	down.SetReadLimit(maxMessage)
	up.SetReadLimit(maxMessage)
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var once sync.Once
	var first closing
	ended := make(chan struct{})
	end := func(c closing) {
		once.Do(func() {
			first = c
			close(ended)
		})
	}
	session, open := h.live.add(end)
	defer h.live.remove(session)
	if !open {
		end(closing{websocket.StatusServiceRestart, "server shutting down"})
	}
	var wg sync.WaitGroup
	wg.Go(func() { pump(ctx, down, up, &last, end, nil) })
	wg.Go(func() { pump(ctx, up, down, &last, end, meter) })
	start := time.Now()
	timer := time.NewTimer(min(h.realtime.Idle, h.realtime.MaxDuration))
	defer timer.Stop()
	for done := false; !done; {
		select {
		case <-ended:
			done = true
		case now := <-timer.C:
			idleFor := now.Sub(time.Unix(0, last.Load()))
			switch {
			case now.Sub(start) >= h.realtime.MaxDuration:
				end(closing{websocket.StatusGoingAway, "maximum session duration reached"})
			case idleFor >= h.realtime.Idle:
				end(closing{websocket.StatusGoingAway, "idle timeout"})
			default:
				timer.Reset(min(h.realtime.Idle-idleFor, h.realtime.MaxDuration-now.Sub(start)))
			}
		}
	}
	// Close both sides at once (each waits up to 5s for its peer's close frame); closing ends
	// the pumps' reads.
	code := sendable(first.code)
	wg.Go(func() { down.Close(code, first.reason) })
	wg.Go(func() { up.Close(code, first.reason) })
	wg.Wait()
}

// liveSessions are the Realtime sessions being relayed, for shutdown to close. Their
// connections are hijacked, so the HTTP server neither waits for them nor closes them.
type liveSessions struct {
	mu       sync.Mutex
	sessions map[*liveSession]struct{}
	closing  bool
	wg       sync.WaitGroup
}

// liveSession is one relayed session: end closes it.
type liveSession struct{ end func(closing) }

// add registers a session by its end function; once shutdown has begun it registers
// nothing and returns open false.
func (l *liveSessions) add(end func(closing)) (s *liveSession, open bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return nil, false
	}
	if l.sessions == nil {
		l.sessions = map[*liveSession]struct{}{}
	}
	s = &liveSession{end: end}
	l.sessions[s] = struct{}{}
	l.wg.Add(1)
	return s, true
}

func (l *liveSessions) remove(s *liveSession) {
	if s == nil {
		return
	}
	l.mu.Lock()
	delete(l.sessions, s)
	l.mu.Unlock()
	l.wg.Done()
}

// CloseRealtime ends every Realtime session being relayed, and any that starts from now
// on, with 1012 (service restart) on both sides, so that clients reconnect, through another
// replica; it waits until their relays have ended or ctx is done. Shutdown calls it once
// the HTTP server has stopped taking requests.
func (h *Handler) CloseRealtime(ctx context.Context) error {
	h.live.mu.Lock()
	h.live.closing = true
	for s := range h.live.sessions {
		s.end(closing{websocket.StatusServiceRestart, "server shutting down"})
	}
	h.live.mu.Unlock()
	done := make(chan struct{})
	go func() { h.live.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendable maps close codes that must not be sent in a close frame (RFC 6455 section 7.4.1)
// onto ones that may: no status becomes normal closure, an abnormal end going away.
func sendable(c websocket.StatusCode) websocket.StatusCode {
	switch c {
	case websocket.StatusNoStatusRcvd:
		return websocket.StatusNormalClosure
	case websocket.StatusAbnormalClosure, websocket.StatusTLSHandshake, -1:
		return websocket.StatusGoingAway
	}
	return c
}

// pump copies messages from src to dst, one frame at a time as they arrive, until src ends
// or either side fails, or inspect returns a close. It then calls end with the close to pass
// on: src's own close code and reason, or going away when src broke off without one. inspect,
// when not nil, sees each text message of up to maxInspected bytes once it is relayed.
func pump(ctx context.Context, src, dst *websocket.Conn, last *atomic.Int64, end func(closing), inspect func([]byte) *closing) {
	buf := make([]byte, 32<<10)
	var seen boundedBuffer
	for {
		typ, rd, err := src.Reader(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				end(closing{ce.Code, ce.Reason})
			} else {
				end(closing{websocket.StatusGoingAway, "peer went away"})
			}
			return
		}
		last.Store(time.Now().UnixNano())
		in := io.Reader(rd)
		teed := inspect != nil && typ == websocket.MessageText
		if teed {
			seen.reset()
			in = io.TeeReader(rd, &seen)
		}
		w, err := dst.Writer(ctx, typ)
		if err == nil {
			_, err = io.CopyBuffer(w, in, buf)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			end(closing{websocket.StatusInternalError, "relay failed"})
			return
		}
		last.Store(time.Now().UnixNano())
		if teed && !seen.over {
			if c := inspect(seen.b); c != nil {
				end(*c)
				return
			}
		}
	}
}

// maxInspected bounds the text messages a pump keeps a copy of for inspection: Realtime
// events are JSON of a few KiB, response.done with its transcripts somewhat more.
const maxInspected = 1 << 20

// boundedBuffer keeps up to maxInspected bytes written to it, and drops the rest.
type boundedBuffer struct {
	b    []byte
	over bool
}

func (w *boundedBuffer) reset() { w.b, w.over = w.b[:0], false }

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > maxInspected {
		w.over = true
	} else {
		w.b = append(w.b, p...)
	}
	return len(p), nil
}

// realtimeUsage reads the token usage from a Realtime response.done event.
func realtimeUsage(msg []byte) (input, output int64, ok bool) {
	if !bytes.Contains(msg, []byte(`"response.done"`)) {
		return 0, 0, false
	}
	var ev struct {
		Type     string `json:"type"`
		Response struct {
			Usage *tokenUsage `json:"usage"`
		} `json:"response"`
	}
	if json.Unmarshal(msg, &ev) != nil || ev.Type != "response.done" || ev.Response.Usage == nil {
		return 0, 0, false
	}
	u := ev.Response.Usage
	input, output = u.Input+u.Prompt, u.Output+u.Completion
	if input+output == 0 {
		input = u.Total
	}
	return input, output, true
}
