package openai

import (
	"net/http"

	"github.com/switchyard-ai/switchyard/router"
)

// WithMaxJSONDepth bounds how deeply objects and arrays may nest in a request body; deeper
// gets 400. Default DefaultMaxJSONDepth.
func WithMaxJSONDepth(n int) Option { return func(h *Handler) { h.maxJSONDepth = n } }

// Refuse answers a request the server turned away before routing it (a limit it broke) as
// OpenAI error JSON, with the status err's code maps to, or 431 for oversized headers.
func (h *Handler) Refuse(w http.ResponseWriter, _ *http.Request, err error) {
	e := router.AsError(err)
	if e.Reason != router.ReasonHeaderTooLarge {
		writeError(w, e)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
	w.Write(append(encodeError(e), '\n'))
}
