package openai

import (
	"bytes"
	"context"
	"net/http"

	"github.com/switchyard-ai/switchyard/router"
)

// Passthrough is a server-specific path of OpenAI-compatible model servers (vLLM's /tokenize,
// /detokenize, /v1/rerank, /v1/score, ...) that the front door relays as it is. A request is
// routed by its model, taken from ModelHeader when that header is set, else from the JSON
// body's "model"; a request naming no model, or one not configured, is refused, never sent
// to an arbitrary endpoint. Authentication, authorization and request limits apply as
// everywhere; tokens are charged from the usage the answer reports, if any.
type Passthrough struct {
	Path        string   // exact request path, e.g. /tokenize
	Methods     []string // methods allowed; default POST
	ModelHeader string   // header that names the model; default none (body only)
}

// WithPassthrough relays the given paths. A path the front door serves itself is ignored.
func WithPassthrough(paths ...Passthrough) Option {
	return func(h *Handler) {
		h.passthrough = make(map[string]Passthrough, len(paths))
		for _, p := range paths {
			if BuiltinPath(p.Path) {
				continue
			}
			if len(p.Methods) == 0 {
				p.Methods = []string{http.MethodPost}
			}
			h.passthrough[p.Path] = p
		}
	}
}

// servePassthrough relays a request on a configured passthrough path to an endpoint serving
// its model. The body is forwarded as received, except that a JSON body's model is renamed
// when the route maps it onto another upstream name.
func (h *Handler) servePassthrough(x *exchange, r *http.Request, id string, pt Passthrough) error {
	if err := allowMethod(x, r, pt.Methods...); err != nil {
		return err
	}
	body, err := h.readBody(x, r)
	if err != nil {
		return err
	}
	var p peeked
	var peekErr error
	if len(bytes.TrimSpace(body)) > 0 {
		p, peekErr = peek(body)
	}
	model := p.model
	if pt.ModelHeader != "" && r.Header.Get(pt.ModelHeader) != "" {
		model = r.Header.Get(pt.ModelHeader)
	}
	if model == "" {
		if peekErr != nil && pt.ModelHeader == "" {
			return peekFailure(peekErr)
		}
		msg := "you must provide a model parameter"
		if pt.ModelHeader != "" {
			msg += " in the body or the " + pt.ModelHeader + " header"
		}
		return &router.Error{Code: router.CodeInvalidArgument, Param: "model", Reason: "invalid_request", Message: msg}
	}
	req := p.request()
	req.ID, req.Protocol, req.Operation, req.Model, req.Body = id, router.ProtocolOpenAI, opPassthrough, model, body
	if err := h.classify(r, &req); err != nil {
		return err
	}
	path := r.URL.RequestURI()
	u := usage{}
	return h.admitAndServe(x, r, &req, &u, nil, func(ctx context.Context, t router.Target) (*http.Response, error) {
		out := body
		if p.model != "" && p.model == model {
			out = bytes.Join(p.forTarget(body, model, t, false), nil)
		}
		return t.Pool.Client.Send(ctx, t.Endpoint, r.Method, path, upstreamHeader(r, id), bytes.NewReader(out), int64(len(out)))
	})
}
