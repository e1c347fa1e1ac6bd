package app

import (
	"io"
	"net/http"
	"strings"
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
		if rc.SetReadDeadline(time.Now().Add(l.readBody)) == nil {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		}
	}
	if l.write > 0 {
		dw := &deadlineWriter{ResponseWriter: w, rc: rc, d: l.write}
		dw.extend(time.Now())
		defer dw.extend(time.Now()) // bounds the server's final flush of the response
		w = dw
	}
	l.next.ServeHTTP(w, r)
}

// deadlineBody lifts the read deadline once the body has been read to its end, so that the
// rest of the exchange (a long stream, the server's check for a vanished client) is not cut
// by it. After a failed read the deadline stays, so the server's discarding of an unread
// body stays bounded too.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
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
