package app

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/router"
)

// refuser answers a request turned away before routing in its front door's protocol.
type refuser interface {
	Refuse(w http.ResponseWriter, r *http.Request, err error)
}

// clientLimits guards the data plane against oversized headers and slow clients before a
// front door sees the request: header count and size, a deadline for reading the request
// body, and a deadline on every write to the client, moved forward as writes succeed.
type clientLimits struct {
	next           http.Handler
	openai, kserve refuser
	grpcPath       string
	maxHeaderBytes int
	maxHeaderCount int
	readBody       time.Duration
	write          time.Duration
}

func newClientLimits(next http.Handler, s config.Server, openai, kserve refuser, grpcPath string) *clientLimits {
	return &clientLimits{next: next, openai: openai, kserve: kserve, grpcPath: grpcPath,
		maxHeaderBytes: s.MaxHeaderBytes, maxHeaderCount: s.MaxHeaderCount,
		readBody: s.ReadBodyTimeout.D(), write: s.WriteTimeout.D()}
}

func (l *clientLimits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rpc := strings.HasPrefix(r.URL.Path, l.grpcPath)
	if err := router.CheckHeaders(r.Header, l.maxHeaderBytes, l.maxHeaderCount); err != nil {
		if rpc || strings.HasPrefix(r.URL.Path, "/v2") {
			l.kserve.Refuse(w, r, err)
		} else {
			l.openai.Refuse(w, r, err)
		}
		return
	}
	rc := http.NewResponseController(w)
	if r.Header.Get("Upgrade") != "" {
		// A WebSocket keeps the connection for its own protocol and deadlines; clear any left
		// by an earlier request on this connection.
		rc.SetWriteDeadline(time.Time{})
		l.next.ServeHTTP(w, r)
		return
	}
	// gRPC streams may send for as long as the call lasts; other bodies are sent at once.
	if !rpc && l.readBody > 0 && r.Body != nil && r.Body != http.NoBody {
		body := newDeadlineBody(r.Body, rc, l.readBody)
		defer body.finish()
		r.Body = body
	}
	if l.write > 0 {
		dw := &deadlineWriter{ResponseWriter: w, rc: rc, d: l.write}
		dw.extend(time.Now())
		defer dw.extend(time.Now()) // bounds the server's final flush of the response
		w = dw
	}
	l.next.ServeHTTP(w, r)
}

// deadlineBody cuts off a body that is still being sent after its timeout by moving the read
// deadline to the past then, and only then: a deadline set up front would still be pending
// when the server starts its background read for a vanished client after the body's end,
// and would cancel a long stream that follows.
type deadlineBody struct {
	io.ReadCloser
	mu    sync.Mutex
	done  bool
	timer *time.Timer
}

func newDeadlineBody(body io.ReadCloser, rc *http.ResponseController, d time.Duration) *deadlineBody {
	b := &deadlineBody{ReadCloser: body}
	b.timer = time.AfterFunc(d, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.done {
			rc.SetReadDeadline(time.Now())
		}
	})
	return b
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.finish()
	}
	return n, err
}

// finish stops the timer: the body has been read, or its handler is done.
func (b *deadlineBody) finish() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
	b.timer.Stop()
}

// deadlineWriter keeps a write deadline d ahead of the latest write or flush, so that a
// client that stops reading fails the write after d instead of blocking its handler (and the
// upstream request behind it) forever. It moves the deadline at most every d/8.
type deadlineWriter struct {
	http.ResponseWriter
	rc  *http.ResponseController
	d   time.Duration
	set time.Time // when the deadline was last moved
}

func (w *deadlineWriter) extend(now time.Time) {
	if now.Sub(w.set) < w.d/8 {
		return
	}
	w.set = now
	w.rc.SetWriteDeadline(now.Add(w.d))
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.extend(time.Now())
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() {
	w.extend(time.Now())
	w.rc.Flush()
}

// FlushError is what http.ResponseController calls for Flush.
func (w *deadlineWriter) FlushError() error {
	w.extend(time.Now())
	return w.rc.Flush()
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
