package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/router"
)

// storedPrefix is where the Responses API keeps the responses it created:
// /v1/responses/{id}, and paths below it such as /v1/responses/{id}/input_items.
const storedPrefix = "/v1/responses/"

// Bindings remembers which endpoint created each stored response, so that reading, deleting
// or continuing it reaches the one server that holds it. cluster.Sessions satisfies it, so
// response bindings live, and are shared across replicas, wherever session bindings are.
// Implementations are safe for concurrent use and answer lookups from local state.
type Bindings interface {
	// Get returns the value bound to key and refreshes its TTL, or false when none is.
	Get(now time.Time, key string) (string, bool)
	// Bind binds key to value for ttl when key is unbound or bound to prev, and returns the
	// value key is bound to afterwards.
	Bind(now time.Time, key, value, prev string, ttl time.Duration) string
}

// WithResponseBindings keeps the endpoint that created each response in store for ttl after
// its last use (default 24h). Without it, /v1/responses/{id} answers 404: no response can be
// found again.
func WithResponseBindings(store Bindings, ttl time.Duration) Option {
	return func(h *Handler) {
		h.bindings = store
		if ttl > 0 {
			h.bindingTTL = ttl
		}
	}
}

// binding is what is kept of a created response: who created it, the model they asked for,
// the concrete model that served it and the endpoint that holds it.
type binding struct {
	tenant, model, route, endpoint string
}

const bindingSep = "\x1f"

func (b binding) String() string {
	return strings.Join([]string{b.tenant, b.model, b.route, b.endpoint}, bindingSep)
}

func parseBinding(v string) (binding, bool) {
	f := strings.Split(v, bindingSep)
	if len(f) != 4 {
		return binding{}, false
	}
	return binding{tenant: f[0], model: f[1], route: f[2], endpoint: f[3]}, true
}

func bindingKey(id string) string { return "response|" + id }

// bind remembers that t's endpoint created the response id for req's caller.
func (h *Handler) bind(id string, req *router.Request, t router.Target) {
	if h.bindings == nil {
		return
	}
	b := binding{tenant: req.Identity, model: req.Model, route: t.Route.Model, endpoint: t.Endpoint.Name}
	h.bindings.Bind(time.Now(), bindingKey(id), b.String(), "", h.bindingTTL)
}

// lookup returns the binding of the response id, if one is kept.
func (h *Handler) lookup(id string) (binding, bool) {
	if h.bindings == nil {
		return binding{}, false
	}
	v, ok := h.bindings.Get(time.Now(), bindingKey(id))
	if !ok {
		return binding{}, false
	}
	return parseBinding(v)
}

// pinPrevious sends a Responses request that continues response prev to the endpoint that
// holds prev, when the same tenant created it with the same model: only that server has the
// conversation. Otherwise the router picks as usual.
func (h *Handler) pinPrevious(prev string) pinner {
	return func(req *router.Request) (*router.Target, error) {
		b, ok := h.lookup(prev)
		if !ok || b.tenant != req.Identity || b.model != req.Model {
			return nil, nil
		}
		if t, ok := h.boundTarget(b); ok {
			return &t, nil
		}
		return nil, nil
	}
}

// serveStored serves /v1/responses/{id}[/...]: the request goes to the endpoint that created
// the response, as the tenant that created it, with that tenant's limits. Anything else, an
// unknown id or another tenant's, is 404, as the Responses API answers for a response that
// does not exist.
func (h *Handler) serveStored(x *exchange, r *http.Request, id string) error {
	if err := allowMethod(x, r, http.MethodGet, http.MethodDelete, http.MethodPost); err != nil {
		return err
	}
	rid, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, storedPrefix), "/")
	if rid == "" {
		return &router.Error{Code: router.CodeNotFound, Reason: "unknown_url",
			Message: "Unknown request URL: " + r.Method + " " + r.URL.Path + "."}
	}
	// Callers without valid credentials learn nothing about which ids exist.
	who, err := h.rt.Identify(r.Context(), credentials(r))
	if err != nil {
		return err
	}
	b, ok := h.lookup(rid)
	if !ok || b.tenant != who.Tenant {
		return &router.Error{Code: router.CodeNotFound, Param: "response_id", Reason: "not_found",
			Message: "No response found with id '" + rid + "'."}
	}
	var body []byte
	if r.Method == http.MethodPost {
		if body, err = h.readBody(x, r); err != nil {
			return err
		}
	}
	req := router.Request{ID: id, Protocol: router.ProtocolOpenAI, Operation: opStored, Model: b.model}
	if err := h.classify(r, &req); err != nil {
		return err
	}
	path := r.URL.RequestURI()
	pin := func(*router.Request) (*router.Target, error) {
		if t, ok := h.boundTarget(b); ok {
			return &t, nil
		}
		return nil, &router.Error{Code: router.CodeNotFound, Param: "response_id", Reason: "not_found",
			Message: "Response '" + rid + "' was created by endpoint " + b.endpoint + ", which is no longer configured."}
	}
	u := usage{}
	return h.admitAndServe(x, r, &req, &u, pin, func(ctx context.Context, t router.Target) (*http.Response, error) {
		return t.Pool.Client.Send(ctx, t.Endpoint, r.Method, path, upstreamHeader(r, id), bytes.NewReader(body), int64(len(body)))
	})
}

// boundTarget finds the endpoint a binding names among the pools of its route, overflow
// pools included. The endpoint is used even while it cools off after failures: no other
// server holds the response.
func (h *Handler) boundTarget(b binding) (router.Target, bool) {
	route, err := h.rt.Resolve(router.ProtocolOpenAI, b.route)
	if err != nil || route == nil {
		return router.Target{}, false
	}
	pools := []*backends.Pool{route.Pool()}
	for _, o := range route.Overflow {
		pools = append(pools, o.Pool)
	}
	for _, p := range pools {
		for _, ep := range p.Endpoints {
			if ep.Name == b.endpoint {
				return router.Target{Route: route, Pool: p, Endpoint: ep, Last: true}, true
			}
		}
	}
	return router.Target{}, false
}

// The Responses API's events that end a stream: the final state of the response, with its
// usage.
var terminalEvents = [][]byte{[]byte(`"response.completed"`), []byte(`"response.incomplete"`), []byte(`"response.failed"`)}

// event reads what settlement and bindings need from one relayed stream event and reports
// whether the client should see it.
func (u *usage) event(ev []byte) bool {
	if !u.responses {
		if bytes.Contains(ev, []byte(`"usage":{`)) {
			u.scan(ev)
			return !(u.askUsage && usageOnly(ev))
		}
		return true
	}
	if u.created == "" && bytes.Contains(ev, []byte(`"response.created"`)) {
		u.created = responseID(eventJSON(ev), "response")
	}
	for _, t := range terminalEvents {
		if bytes.Contains(ev, t) && eventType(ev) == string(t[1:len(t)-1]) {
			u.finished = true
			var v struct {
				Response struct {
					Usage tokenUsage `json:"usage"`
				} `json:"response"`
			}
			if json.Unmarshal(eventJSON(ev), &v) == nil && v.Response.Usage.sum() > 0 {
				u.total = v.Response.Usage.sum()
			}
		}
	}
	return true
}

// eventJSON is the data of an SSE event that carries one JSON object.
func eventJSON(ev []byte) []byte {
	i := bytes.IndexByte(ev, '{')
	if i < 0 {
		return nil
	}
	return bytes.TrimSpace(trimData(ev[i:]))
}

// eventType is the type field of a Responses API event.
func eventType(ev []byte) string {
	var v struct {
		Type string `json:"type"`
	}
	json.Unmarshal(eventJSON(ev), &v)
	return v.Type
}

// responseID returns the id of a response object, found at the given path of nested keys
// (none: the top level). It is empty when b is not such an object.
func responseID(b []byte, path ...string) string {
	var v map[string]json.RawMessage
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	for _, k := range path {
		if json.Unmarshal(v[k], &v) != nil {
			return ""
		}
	}
	var obj, id string
	json.Unmarshal(v["object"], &obj)
	json.Unmarshal(v["id"], &id)
	if obj != "response" {
		return ""
	}
	return id
}

// responsesErrorEvent is the Responses API's error event, ending a stream whose upstream
// failed after the first byte.
func responsesErrorEvent(msg string, seq int64) []byte {
	b, _ := json.Marshal(struct {
		Type     string  `json:"type"`
		Code     string  `json:"code"`
		Message  string  `json:"message"`
		Param    *string `json:"param"`
		Sequence int64   `json:"sequence_number"`
	}{Type: "error", Code: "upstream_error", Message: msg, Sequence: seq})
	out := make([]byte, 0, len(b)+24)
	out = append(out, "event: error\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}
