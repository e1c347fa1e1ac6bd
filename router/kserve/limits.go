package kserve

import (
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/switchyard-ai/switchyard/router"
)

// WithMaxMessageBytes bounds one gRPC, gRPC-Web or Connect request message; a larger one gets
// RESOURCE_EXHAUSTED. Default 32 MiB.
func WithMaxMessageBytes(n int64) Option { return func(h *Handler) { h.maxMessage = n } }

// Refuse answers a request the server turned away before routing it (a limit it broke), in
// the caller's protocol: a gRPC, gRPC-Web or Connect error on the service's path, KServe REST
// {"error": ...} elsewhere (431 for oversized headers). err is mapped like any router error.
func (h *Handler) Refuse(w http.ResponseWriter, r *http.Request, err error) {
	if strings.HasPrefix(r.URL.Path, h.grpcPath) {
		if ew := connect.NewErrorWriter(); ew.IsSupported(r) {
			ew.Write(w, r, connectError(err))
			return
		}
	}
	if router.AsError(err).Reason == router.ReasonHeaderTooLarge {
		writeJSON(w, http.StatusRequestHeaderFieldsTooLarge, map[string]string{"error": router.AsError(err).Message})
		return
	}
	writeRESTError(w, err)
}
