package backends

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Errors an upstream call reports, for the front doors to map onto their protocol's errors.
var (
	// ErrConnect means no request reached the server (dial refused, reset before any
	// response byte); the request may be retried on another endpoint.
	ErrConnect = errors.New("backends: upstream connection failed")
	// ErrFirstByteTimeout means the server accepted the request but sent no response
	// headers within the first-byte timeout.
	ErrFirstByteTimeout = errors.New("backends: upstream first-byte timeout")
	// ErrIdleTimeout means a response body stalled for longer than the idle stream timeout.
	ErrIdleTimeout = errors.New("backends: upstream stream idle timeout")
)

// TLSOptions configures TLS to upstream servers. The zero value uses the system roots.
type TLSOptions struct {
	CAFile             string // PEM bundle to verify servers with; default system roots
	CertFile, KeyFile  string // client certificate for mutual TLS; default none
	ServerName         string // overrides the name verified in the server certificate
	InsecureSkipVerify bool   // never verify the server; for tests only
}

// HTTPOptions configures an HTTPClient. Zero fields take the documented defaults.
type HTTPOptions struct {
	ConnectTimeout    time.Duration // dial + TLS handshake; default 5s
	FirstByteTimeout  time.Duration // request written to response headers; default 5m (non-streaming LLM calls answer only when done)
	IdleStreamTimeout time.Duration // longest gap between body reads; default 2m
	MaxIdleConns      int           // idle keep-alive connections kept per endpoint; default 256
	IdleConnTimeout   time.Duration // a keep-alive connection idle this long is closed; default 90s
	TLS               *TLSOptions   // nil: plain http endpoints only need none
	// Propagate, when set, adds headers from a request's context to every request sent
	// (trace context, for one); default none.
	Propagate func(ctx context.Context, h http.Header)
}

// HTTPClient sends requests to HTTP model servers over pooled HTTP/1.1 keep-alive
// connections. It is safe for concurrent use.
type HTTPClient struct {
	transport *http.Transport
	h1        *h1Client
	idle      time.Duration
	propagate func(context.Context, http.Header)
}

// NewHTTPClient builds a client from opts, loading any TLS files now so that a bad file is a
// startup error rather than a failed request.
func NewHTTPClient(opts HTTPOptions) (*HTTPClient, error) {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.FirstByteTimeout <= 0 {
		opts.FirstByteTimeout = 5 * time.Minute
	}
	if opts.IdleStreamTimeout <= 0 {
		opts.IdleStreamTimeout = 2 * time.Minute
	}
	if opts.MaxIdleConns <= 0 {
		opts.MaxIdleConns = 256
	}
	if opts.IdleConnTimeout <= 0 {
		opts.IdleConnTimeout = 90 * time.Second
	}
	tlsConf, err := buildTLS(opts.TLS)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.FirstByteTimeout,
		MaxIdleConns:          0, // no global cap; the per-host cap below bounds it
		MaxIdleConnsPerHost:   opts.MaxIdleConns,
		IdleConnTimeout:       opts.IdleConnTimeout,
		// Bytes pass through untouched: no transparent gzip, which would also break SSE framing.
		DisableCompression: true,
		// Prompts run to hundreds of KiB: 64 KiB buffers send one in a few writes, not one
		// syscall per 4 KiB, and read streamed answers in fewer calls.
		WriteBufferSize: 64 << 10,
		ReadBufferSize:  64 << 10,
		// Model servers speak HTTP/1.1 in cleartext; one connection per concurrent request
		// keeps one slow stream from delaying others.
		ForceAttemptHTTP2:     false,
		ExpectContinueTimeout: 0,
	}
	h1 := &h1Client{dialer: dialer, tls: tlsConf, handshake: opts.ConnectTimeout, firstByte: opts.FirstByteTimeout,
		maxIdle: opts.MaxIdleConns, idleTimeout: opts.IdleConnTimeout, idle: map[string][]*h1Conn{}}
	return &HTTPClient{transport: t, h1: h1, idle: opts.IdleStreamTimeout, propagate: opts.Propagate}, nil
}

func buildTLS(o *TLSOptions) (*tls.Config, error) {
	if o == nil {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("backends: tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("backends: tls ca_file %s: no PEM certificates", o.CAFile)
		}
		c.RootCAs = pool
	}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("backends: tls client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Close drops the client's idle connections, and those of requests still in flight once they
// finish: a closed client keeps no connection. It may still send requests, each on a
// connection of its own.
func (c *HTTPClient) Close() {
	c.transport.CloseIdleConnections()
	c.h1.closeIdle(true)
}

// Get fetches path from the endpoint and returns the whole body (at most limit bytes).
func (c *HTTPClient) Get(ctx context.Context, ep *Endpoint, path string, limit int64) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.URL.String()+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return 0, nil, classify(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	return resp.StatusCode, b, err
}

// Post sends body to path on the endpoint with header and returns the response once its
// headers arrive. The body is the slices of body one after another, written (on a cleartext
// connection in one writev with the request's head) before Post returns and not referenced
// after, so the caller may reuse their memory at once. The response body enforces the idle
// stream timeout and must be closed. Errors wrap ErrConnect (safe to retry elsewhere),
// ErrFirstByteTimeout, or the context's.
func (c *HTTPClient) Post(ctx context.Context, ep *Endpoint, path string, header http.Header, body ...[]byte) (*http.Response, error) {
	if !h1Eligible(ep) {
		joined := bytes.Join(body, nil) // the transport may read it after returning
		return c.Send(ctx, ep, http.MethodPost, path, header, bytes.NewReader(joined), int64(len(joined)))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	resp, err := c.h1.do(ctx, ep, http.MethodPost, path, c.withPropagated(ctx, header), body)
	if err != nil {
		err = classify(ctx, err)
		cancel(nil)
		return nil, err
	}
	resp.Body = newIdleBody(resp.Body, c.idle, cancel, ctx)
	return resp, nil
}

// classify sorts a RoundTrip error into the package's sentinels.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w: %w", ErrConnect, err)
		}
		return fmt.Errorf("%w: %w", ErrFirstByteTimeout, err)
	}
	// Refused, reset, EOF before headers: the server produced no response.
	return fmt.Errorf("%w: %w", ErrConnect, err)
}

// idleBody cancels its request when no Read completes within the idle timeout, so a stalled
// upstream cannot pin a client stream forever.
type idleBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   time.Duration
	timer  *time.Timer
	once   sync.Once
}

func newIdleBody(rc io.ReadCloser, idle time.Duration, cancel context.CancelCauseFunc, ctx context.Context) *idleBody {
	b := &idleBody{rc: rc, ctx: ctx, cancel: cancel, idle: idle}
	b.timer = time.AfterFunc(idle, func() { cancel(ErrIdleTimeout) })
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.timer.Reset(b.idle)
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); cause != nil {
			return n, fmt.Errorf("%w: %w", cause, err)
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.once.Do(func() { b.timer.Stop() })
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
