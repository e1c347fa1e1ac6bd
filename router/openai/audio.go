package openai

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/switchyard-ai/switchyard/router"
)

// WithSpoolDir sets where an upload's bytes that precede its model field are kept while the
// request is routed (see serveMultipart). Default the system's temporary directory.
func WithSpoolDir(dir string) Option { return func(h *Handler) { h.spoolDir = dir } }

// serveMultipart serves a multipart upload (/v1/audio/transcriptions and translations): the
// model is the form field "model", and the file streams through to the model server without
// being held in memory. The body is read only as far as the model field; when a client sends
// the file first, as the official SDKs do, the bytes before the field are spooled to disk and
// sent from there. Only the model's value is rewritten when a route maps it to another
// upstream name; every other byte passes as received.
func (h *Handler) serveMultipart(x *exchange, r *http.Request, id string) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return &router.Error{Code: router.CodeInvalidArgument, Reason: "invalid_request",
			Message: "This endpoint takes a multipart/form-data body with a boundary."}
	}
	if r.ContentLength > h.maxBody {
		return tooLarge(h.maxBody)
	}
	// Nothing is read, let alone spooled, for a caller without valid credentials.
	if _, err := h.rt.Identify(r.Context(), credentials(r)); err != nil {
		return err
	}
	body := &guardedBody{r: http.MaxBytesReader(x, r.Body, h.maxBody)}
	head := newSpool(h.spoolDir, h.maxBody)
	defer head.Close()
	form, err := scanForm(bufio.NewReaderSize(body, 32<<10), params["boundary"], "model", head)
	switch {
	case errors.Is(err, errFieldMissing):
		return &router.Error{Code: router.CodeInvalidArgument, Param: "model", Reason: "invalid_request",
			Message: "you must provide a model parameter"}
	case body.tooLarge() || errors.Is(err, errSpoolFull):
		return tooLarge(h.maxBody)
	case err != nil && body.failed() != nil:
		return &router.Error{Code: router.CodeCanceled, Message: "reading request body failed", Err: err}
	case err != nil:
		return &router.Error{Code: router.CodeInvalidArgument, Param: "model", Reason: "invalid_request", Message: err.Error()}
	}
	req := router.Request{ID: id, Protocol: router.ProtocolOpenAI, Operation: opAudio, Model: strings.TrimSpace(string(form.value))}
	if req.Model == "" {
		return &router.Error{Code: router.CodeInvalidArgument, Param: "model", Reason: "invalid_request",
			Message: "you must provide a model parameter"}
	}
	if err := h.classify(r, &req); err != nil {
		return err
	}
	u := usage{}
	sent := &countingReader{}
	err = h.admitAndServe(x, r, &req, &u, nil, func(ctx context.Context, t router.Target) (*http.Response, error) {
		if sent.n.Load() > 0 {
			// The upload cannot be sent twice: a second attempt is refused rather than sent
			// truncated.
			return nil, errors.New("openai: upload already sent")
		}
		value := form.value
		if t.Route.TargetModel != req.Model {
			value = []byte(t.Route.TargetModel)
		}
		up, size := form.body(value, r.ContentLength)
		sent.r = up
		resp, err := t.Pool.Client.Send(ctx, t.Endpoint, http.MethodPost, r.URL.Path, upstreamHeader(r, id), sent, size)
		if err != nil && sent.n.Load() > 0 {
			// Part of the upload went out, so it cannot be retried elsewhere.
			return nil, fmt.Errorf("openai: upload interrupted: %w", err)
		}
		return resp, err
	})
	if body.tooLarge() && x.status == 0 {
		return tooLarge(h.maxBody)
	}
	return err
}

func tooLarge(limit int64) error {
	return &router.Error{Code: router.CodeRequestTooLarge, Reason: "request_too_large",
		Message: fmt.Sprintf("Request body is larger than the limit of %d bytes.", limit)}
}

// guardedBody keeps the error that ended a request body, so that a failed upload is told
// from a failed upstream. The transport reads it on its own goroutine.
type guardedBody struct {
	r   io.Reader
	err atomic.Pointer[error]
}

func (g *guardedBody) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		g.err.Store(&err)
	}
	return n, err
}

// failed reports the error that ended the body, if any.
func (g *guardedBody) failed() error {
	if e := g.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (g *guardedBody) tooLarge() bool {
	var mbe *http.MaxBytesError
	return errors.As(g.failed(), &mbe)
}

// countingReader counts the bytes read through it; the count is safe to read while the
// transport reads on its own goroutine.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
