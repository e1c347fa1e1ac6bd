package kserve

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/switchyard-ai/switchyard/router"
)

// nowFunc is the clock used to time endpoint cool-offs.
var nowFunc = time.Now

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// restMux routes the KServe v2 REST API. Paths follow the protocol: health, server metadata,
// and per model (optionally per version) metadata, readiness and inference.
func (h *Handler) restMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !h.ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "error": "switchyard is not ready"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, _ *http.Request) {
		md := h.serverMetadata()
		writeJSON(w, http.StatusOK, map[string]any{"name": md.Name, "version": md.Version, "extensions": md.Extensions})
	})
	mux.HandleFunc("GET /v2/models", func(w http.ResponseWriter, _ *http.Request) {
		models := []map[string]string{}
		for _, m := range h.rt.Models(router.ProtocolKServe) {
			models = append(models, map[string]string{"name": m})
		}
		writeJSON(w, http.StatusOK, map[string]any{"models": models})
	})
	for _, prefix := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		mux.HandleFunc("GET "+prefix, h.restMetadata)
		mux.HandleFunc("GET "+prefix+"/ready", h.restReady)
		mux.HandleFunc("POST "+prefix+"/infer", h.restInfer)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeRESTError(w, &router.Error{Code: router.CodeNotFound, Message: "unknown path " + r.Method + " " + r.URL.Path})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// restExchange carries one REST call's outcome to its log line and metrics.
type restExchange struct {
	start  time.Time
	status int
	target router.Target
}

func (h *Handler) restDone(r *http.Request, x *restExchange, err error) {
	hdr := http.Header{}
	if x.target.Route != nil {
		hdr.Set(hdrModel, x.target.Route.Model)
		hdr.Set(hdrEndpoint, x.target.Endpoint.Name)
	}
	h.finish(r.Method+" "+r.URL.Path, "rest", hdr, x.start, err)
}

func (h *Handler) restMetadata(w http.ResponseWriter, r *http.Request) {
	x := &restExchange{start: time.Now()}
	md, t, err := h.modelMetadata(r.Context(), r.PathValue("name"), r.PathValue("version"), r.Header)
	x.target = t
	defer func() { h.restDone(r, x, err) }()
	h.setRouting(w.Header(), t)
	if err != nil {
		writeRESTError(w, err)
		return
	}
	b, err := EncodeModelMetadata(md)
	if err != nil {
		writeRESTError(w, &router.Error{Code: router.CodeUpstream, Message: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// restReady answers 200 {"name","ready":true} when the model can serve, else 400
// {"error"...} for an unknown model name and 503 when no endpoint is ready, as KServe
// servers do.
func (h *Handler) restReady(w http.ResponseWriter, r *http.Request) {
	x := &restExchange{start: time.Now()}
	name := r.PathValue("name")
	ready, t, err := h.modelReady(r.Context(), name, r.PathValue("version"), r.Header)
	x.target = t
	defer func() { h.restDone(r, x, err) }()
	h.setRouting(w.Header(), t)
	switch {
	case err != nil:
		writeRESTError(w, err)
	case !ready:
		writeRESTError(w, &router.Error{Code: router.CodeUnavailable, Message: "model " + name + " is not ready"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "ready": true})
	}
}

func (h *Handler) restInfer(w http.ResponseWriter, r *http.Request) {
	x := &restExchange{start: time.Now()}
	var err error
	defer func() { h.restDone(r, x, err) }()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = &router.Error{Code: router.CodeRequestTooLarge, Message: "request body is larger than the limit"}
		} else {
			err = &router.Error{Code: router.CodeCanceled, Message: "reading the request body failed", Err: err}
		}
		writeRESTError(w, err)
		return
	}
	m, err := DecodeInferRequest(r.PathValue("name"), r.PathValue("version"), body, r.Header)
	if err != nil {
		if _, rerr := h.rt.Resolve(router.ProtocolKServe, r.PathValue("name")); rerr != nil {
			err = rerr // an unknown model is the first thing wrong
		} else {
			err = &router.Error{Code: router.CodeInvalidArgument, Message: err.Error()}
		}
		writeRESTError(w, err)
		return
	}
	resp, t, q, err := h.infer(r.Context(), m, r.Header)
	x.target = t
	h.setRouting(w.Header(), t)
	router.SetQuotaHeaders(w.Header(), q)
	if err != nil {
		writeRESTError(w, err)
		return
	}
	out, err := EncodeInferResponse(resp)
	if err != nil {
		err = &router.Error{Code: router.CodeUpstream, Message: "the model's response cannot be written as JSON: " + err.Error()}
		writeRESTError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}
