package backends

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Client sends the data path's requests, a method and an in-memory body, over HTTP/1.1
// connections of its own. Compared with http.Transport, which hands each request to a
// writer goroutine and each response from a reader goroutine, the caller's goroutine writes
// the request (head and body in one writev on cleartext connections) and reads the answer
// itself, and a request costs a handful of allocations instead of forty. A connection goes
// back to its endpoint's idle list once its response has been read to the end.
type h1Client struct {
	dialer      *net.Dialer
	tls         *tls.Config // nil: no https endpoints
	handshake   time.Duration
	firstByte   time.Duration
	maxIdle     int
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   map[string][]*h1Conn // by endpoint host, most recently used last
	swept  time.Time            // when idle connections were last swept for expiry
	closed bool
}

// h1Conn is one connection and its read buffer.
type h1Conn struct {
	net.Conn
	key       string
	br        *bufio.Reader
	idleSince time.Time

	mu       sync.Mutex
	canceled bool // the request's context ended: the deadline is in the past for good
}

// cancel makes every pending and future read and write fail at once. It runs when the
// request's context ends.
func (pc *h1Conn) cancel() {
	pc.mu.Lock()
	pc.canceled = true
	pc.Conn.SetDeadline(time.Unix(1, 0))
	pc.mu.Unlock()
}

// clearDeadline lifts the first-byte deadline unless the request was canceled meanwhile.
func (pc *h1Conn) clearDeadline() {
	pc.mu.Lock()
	if !pc.canceled {
		pc.Conn.SetDeadline(time.Time{})
	}
	pc.mu.Unlock()
}

// h1Eligible reports whether h1Client can reach ep: http or https, without user info or a
// query in its URL.
func h1Eligible(ep *Endpoint) bool {
	u := ep.URL
	return (u.Scheme == "http" || u.Scheme == "https") && u.User == nil && u.RawQuery == "" && u.Host != ""
}

// errStale marks a failure on a kept-alive connection before any byte of a response: the
// server closed it while it was idle, and the request can go again on a new connection.
type errStale struct{ err error }

func (e errStale) Error() string { return e.err.Error() }
func (e errStale) Unwrap() error { return e.err }

// do sends method path with header and the body's parts to ep. The body is written before do
// returns and not referenced after. The response body must be closed; reading it to its end
// returns the connection to the idle list.
func (c *h1Client) do(ctx context.Context, ep *Endpoint, method, path string, header http.Header, body [][]byte) (*http.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size := 0
	for _, b := range body {
		size += len(b)
	}
	headp := headPool.Get().(*[]byte)
	head, err := appendHead((*headp)[:0], method, ep.URL.EscapedPath()+escapePath(path), ep.URL.Host, header, size)
	defer func() { *headp = head[:0]; headPool.Put(headp) }()
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		// The one retry goes on a new connection: the idle ones may have died together (a
		// server restart), and each would fail the same way.
		pc, reused, err := c.get(ctx, ep, attempt == 0)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(ctx, pc, reused, method, head, body, size)
		if err == nil {
			return resp, nil
		}
		var stale errStale
		if attempt == 0 && errors.As(err, &stale) && ctx.Err() == nil {
			c.dropIdle(pc.key)
			continue
		}
		return nil, err
	}
}

// escapePath returns path as a request target may carry it: as is when every byte may stand
// in one, else percent-encoded. The paths the router sends (API routes, model names) rarely
// need it.
func escapePath(path string) string {
	for i := 0; i < len(path); i++ {
		if c := path[i]; !pathByte(c) {
			return (&url.URL{Path: path}).EscapedPath()
		}
	}
	return path
}

// pathByte reports whether c may appear unescaped in a path (RFC 3986 pchar and '/').
func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0
}

var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendHead appends the request line and header section of a request to b. Host,
// Content-Length, Transfer-Encoding and Connection come from the request itself, not header;
// a header whose name or value could split the head is an error.
func appendHead(b []byte, method, uri, host string, header http.Header, size int) ([]byte, error) {
	if uri == "" || uri[0] != '/' {
		return b, fmt.Errorf("backends: invalid request path %q", uri)
	}
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; !pathByte(c) && c != '%' {
			return b, fmt.Errorf("backends: invalid request path %q", uri)
		}
	}
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, uri...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(size), 10)
	b = append(b, "\r\n"...)
	for k, vs := range header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return b, fmt.Errorf("backends: invalid header name %q", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return b, fmt.Errorf("backends: invalid value for header %s", k)
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...), nil
}

// get takes an idle connection to ep, or dials one; with idleOK false it dials.
func (c *h1Client) get(ctx context.Context, ep *Endpoint, idleOK bool) (pc *h1Conn, reused bool, err error) {
	key := ep.URL.Host
	if ep.URL.Scheme == "https" {
		key = "https://" + key
	}
	if !idleOK {
		pc, err = c.dial(ctx, ep, key)
		return pc, false, err
	}
	now := time.Now()
	c.mu.Lock()
	for conns := c.idle[key]; len(conns) > 0; conns = c.idle[key] {
		pc = conns[len(conns)-1]
		conns[len(conns)-1] = nil
		c.idle[key] = conns[:len(conns)-1]
		if idle := now.Sub(pc.idleSince); idle < c.idleTimeout {
			c.mu.Unlock()
			// A connection in steady use is taken as is; one idle for longer may have been
			// closed by its server, which a peek finds without waiting.
			if idle < time.Millisecond || alive(pc.Conn) {
				return pc, true, nil
			}
			pc.Close()
			c.mu.Lock()
			continue
		}
		pc.Close()
	}
	c.mu.Unlock()
	pc, err = c.dial(ctx, ep, key)
	return pc, false, err
}

// put keeps pc for the next request to its endpoint, or closes it if enough are idle.
func (c *h1Client) put(pc *h1Conn) {
	if pc.br.Buffered() > 0 { // bytes past the response: the stream is out of step
		pc.Close()
		return
	}
	now := time.Now()
	pc.idleSince = now
	c.mu.Lock()
	if c.closed || len(c.idle[pc.key]) >= c.maxIdle {
		c.mu.Unlock()
		pc.Close()
		return
	}
	c.idle[pc.key] = append(c.idle[pc.key], pc)
	var expired []*h1Conn
	if now.Sub(c.swept) >= c.idleTimeout/4 {
		c.swept = now
		expired = c.sweep(now)
	}
	c.mu.Unlock()
	for _, pc := range expired {
		pc.Close()
	}
}

// sweep takes out of the idle lists the connections idle for longer than the idle timeout,
// to be closed, and forgets endpoints left without any: an endpoint gone from its pool (a
// deleted pod) keeps no connection for long. Called with c.mu held.
func (c *h1Client) sweep(now time.Time) (expired []*h1Conn) {
	for key, conns := range c.idle {
		kept := conns[:0]
		for _, pc := range conns {
			if now.Sub(pc.idleSince) >= c.idleTimeout {
				expired = append(expired, pc)
			} else {
				kept = append(kept, pc)
			}
		}
		clear(conns[len(kept):])
		if len(kept) == 0 {
			delete(c.idle, key)
		} else {
			c.idle[key] = kept
		}
	}
	return expired
}

// dropIdle closes the idle connections to one endpoint, after one of them was found closed
// by the server: the others most likely were too.
func (c *h1Client) dropIdle(key string) {
	c.mu.Lock()
	conns := c.idle[key]
	delete(c.idle, key)
	c.mu.Unlock()
	for _, pc := range conns {
		pc.Close()
	}
}

// closeIdle closes every idle connection; with final, connections returned later are
// closed too.
func (c *h1Client) closeIdle(final bool) {
	c.mu.Lock()
	idle := c.idle
	c.idle = map[string][]*h1Conn{}
	c.closed = c.closed || final
	c.mu.Unlock()
	for _, conns := range idle {
		for _, pc := range conns {
			pc.Close()
		}
	}
}

func (c *h1Client) dial(ctx context.Context, ep *Endpoint, key string) (*h1Conn, error) {
	host, port := ep.URL.Hostname(), ep.URL.Port()
	if port == "" {
		port = "80"
		if ep.URL.Scheme == "https" {
			port = "443"
		}
	}
	conn, err := c.dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	if ep.URL.Scheme == "https" {
		cfg := &tls.Config{}
		if c.tls != nil {
			cfg = c.tls.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, c.handshake)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	return &h1Conn{Conn: conn, key: key, br: bufio.NewReaderSize(conn, 32<<10)}, nil
}

// roundTrip writes the request on pc and reads the response head. On an error pc is closed.
func (c *h1Client) roundTrip(ctx context.Context, pc *h1Conn, reused bool, method string, head []byte, body [][]byte, size int) (*http.Response, error) {
	// The deadline first: a cancel that runs at once must find it set, to replace it.
	pc.SetDeadline(time.Now().Add(c.firstByte))
	stop := context.AfterFunc(ctx, pc.cancel)
	fail := func(err error, stale bool) (*http.Response, error) {
		stop()
		pc.Close()
		if stale && reused && !isTimeout(err) {
			return nil, errStale{err}
		}
		return nil, err
	}
	var resp *http.Response
	var err error
	reuse := true
	if size <= concurrentWriteAbove {
		var n int64
		if n, err = writeRequest(pc, head, body); err != nil {
			// Nothing written on a kept-alive connection: its server had closed it.
			if n == 0 {
				return fail(err, true)
			}
			// A server may answer before reading the whole body (413, 401) and close; the
			// answer is worth more than the write error.
			if resp = earlyAnswer(pc); resp == nil {
				return fail(err, false)
			}
			reuse = false
		} else if resp, err = readFinalHead(pc); err != nil {
			// A reset before any byte of an answer: the server closed the connection with
			// our request unread (a close with data unread resets), so it never ran.
			return fail(err, errors.Is(err, errNoResponse) && errors.Is(err, syscall.ECONNRESET))
		}
	} else {
		var wrote bool
		if resp, reuse, wrote, err = exchangeLarge(pc, head, body); err != nil {
			return fail(err, !wrote)
		}
	}
	pc.clearDeadline()
	if err := c.frame(pc, stop, method, resp, reuse); err != nil {
		return fail(err, false)
	}
	return resp, nil
}

// concurrentWriteAbove is the body size past which the request is written while its answer
// is awaited: a write that fills the socket buffers blocks until the server reads, and a
// server that answers first (413, 401) and stops reading would otherwise hold it until the
// first-byte timeout.
const concurrentWriteAbove = 64 << 10

// exchangeLarge writes a large request on its own goroutine while reading the response head.
// When the head comes first, the write is cut short (the connection is then not reused); the
// write has ended, and the body is no longer referenced, when it returns.
func exchangeLarge(pc *h1Conn, head []byte, body [][]byte) (resp *http.Response, reuse, wrote bool, err error) {
	type result struct {
		n   int64
		err error
	}
	written := make(chan result, 1)
	go func() {
		n, err := writeRequest(pc, head, body)
		written <- result{n, err}
	}()
	resp, rerr := readFinalHead(pc)
	var w result
	select {
	case w = <-written:
	default:
		pc.SetWriteDeadline(time.Unix(1, 0)) // answered mid-write: stop writing
		w = <-written
	}
	switch {
	case rerr != nil && w.err != nil:
		return nil, false, w.n > 0, w.err
	case rerr != nil:
		return nil, false, true, rerr
	}
	return resp, w.err == nil, true, nil
}

// earlyAnswer reads a response head that a server sent before the request write failed, if
// one arrives within a moment.
func earlyAnswer(pc *h1Conn) *http.Response {
	pc.mu.Lock()
	if pc.canceled {
		pc.mu.Unlock()
		return nil
	}
	pc.Conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	pc.mu.Unlock()
	resp, err := readFinalHead(pc)
	if err != nil {
		return nil
	}
	return resp
}

// readFinalHead reads response heads until one that is not interim (100 Continue, 103 Early
// Hints).
func readFinalHead(pc *h1Conn) (*http.Response, error) {
	for {
		resp, err := readResponseHead(pc)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

// frame sets resp.Body to a reader of the body as the response frames it (RFC 9112 §6.3).
// With reuse false the connection is closed after the body, whatever the framing.
func (c *h1Client) frame(pc *h1Conn, stop func() bool, method string, resp *http.Response, reuse bool) error {
	b := &h1Body{c: c, pc: pc, stop: stop, remaining: -1, reuse: reuse}
	switch {
	case method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified:
		b.remaining = 0
		resp.ContentLength = 0
	case resp.Header.Get("Transfer-Encoding") != "":
		// Model servers chunk streams and code nothing else; as net/http, other transfer
		// codings are refused rather than passed on undecoded.
		te := resp.Header["Transfer-Encoding"]
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return fmt.Errorf("backends: unsupported Transfer-Encoding %q", te)
		}
		b.chunked = httputil.NewChunkedReader(pc.br)
		resp.TransferEncoding = []string{"chunked"}
		resp.Header.Del("Transfer-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	case len(resp.Header["Content-Length"]) > 0:
		cl := resp.Header["Content-Length"]
		n, err := strconv.ParseInt(strings.TrimSpace(cl[0]), 10, 64)
		for _, v := range cl[1:] {
			if strings.TrimSpace(v) != strings.TrimSpace(cl[0]) {
				err = errors.New("conflicting Content-Length values")
			}
		}
		if err != nil || n < 0 {
			return fmt.Errorf("backends: bad Content-Length %q: %v", cl, err)
		}
		b.remaining = n
		resp.ContentLength = n
	default:
		b.reuse = false // the body runs to the connection's close
		resp.ContentLength = -1
	}
	if resp.Close || resp.ProtoMinor == 0 && !strings.EqualFold(resp.Header.Get("Connection"), "keep-alive") {
		b.reuse = false
	}
	resp.Body = b
	if b.remaining == 0 {
		b.finish()
	}
	return nil
}

// writeRequest writes head and body on conn: in one writev on a TCP connection, one TLS
// record per slice otherwise. It returns the bytes written.
func writeRequest(conn net.Conn, head []byte, body [][]byte) (int64, error) {
	var arr [8][]byte
	bufs := net.Buffers(append(append(arr[:0], head), body...))
	return bufs.WriteTo(conn)
}

// errNoResponse means the connection ended before any byte of a response.
var errNoResponse = errors.New("backends: connection closed before a response")

// readResponseHead reads a status line and header section.
func readResponseHead(pc *h1Conn) (*http.Response, error) {
	line, err := pc.br.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return nil, fmt.Errorf("%w: %w", errNoResponse, err)
		}
		if err == bufio.ErrBufferFull {
			err = errors.New("backends: status line too long")
		}
		return nil, err
	}
	line = trimEOL(line)
	proto, rest, ok := strings.Cut(string(line), " ")
	major, minor, okProto := http.ParseHTTPVersion(proto)
	if !ok || !okProto || major != 1 || len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return nil, fmt.Errorf("backends: malformed status line %q", line)
	}
	code, err := strconv.Atoi(rest[:3])
	if err != nil || code < 100 {
		return nil, fmt.Errorf("backends: malformed status line %q", line)
	}
	h, err := readHeader(pc.br)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		Status:     rest,
		StatusCode: code,
		Proto:      proto,
		ProtoMajor: major,
		ProtoMinor: minor,
		Header:     h,
		Close:      httpguts.HeaderValuesContainsToken(h["Connection"], "close"),
	}, nil
}

// maxResponseHeaderBytes bounds a response's header section (and a chunked body's trailers),
// so that a server cannot grow the router's memory with an endless one.
const maxResponseHeaderBytes = 256 << 10

// readHeader reads header fields up to the empty line that ends them, canonicalizing names
// as net/http does. Obsolete line folding is refused (RFC 9112 §5.2).
func readHeader(br *bufio.Reader) (http.Header, error) {
	h := make(http.Header, 8)
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if err == bufio.ErrBufferFull || total > maxResponseHeaderBytes {
			return nil, errors.New("backends: response header too large")
		}
		if err != nil {
			return nil, fmt.Errorf("backends: reading response header: %w", err)
		}
		line = trimEOL(line)
		if len(line) == 0 {
			return h, nil
		}
		i := bytesIndexColon(line)
		if i <= 0 || line[0] == ' ' || line[0] == '\t' {
			return nil, fmt.Errorf("backends: malformed response header line %q", line)
		}
		name := canonicalName(line[:i])
		if name == "" {
			return nil, fmt.Errorf("backends: malformed response header name %q", line[:i])
		}
		v := trimOWS(line[i+1:])
		h[name] = append(h[name], string(v))
	}
}

func trimEOL(b []byte) []byte {
	b = b[:len(b)-1] // the '\n'
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func bytesIndexColon(b []byte) int {
	for i, c := range b {
		if c == ':' {
			return i
		}
	}
	return -1
}

// canonicalName rewrites name in place to its canonical form (Content-Type) and returns it,
// without allocating for the fields model servers send; "" when it is not a token.
func canonicalName(name []byte) string {
	upper := true
	for i, c := range name {
		if !httpguts.IsTokenRune(rune(c)) {
			return ""
		}
		switch {
		case upper && 'a' <= c && c <= 'z':
			name[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			name[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	switch string(name) {
	case "Content-Type":
		return "Content-Type"
	case "Content-Length":
		return "Content-Length"
	case "Date":
		return "Date"
	case "Server":
		return "Server"
	case "Transfer-Encoding":
		return "Transfer-Encoding"
	case "Connection":
		return "Connection"
	case "X-Request-Id":
		return "X-Request-Id"
	case "Cache-Control":
		return "Cache-Control"
	case "Keep-Alive":
		return "Keep-Alive"
	}
	return string(name)
}

// h1Body reads a response body framed by Content-Length, chunked encoding or the
// connection's close. Read to its end it returns the connection for reuse; closed before,
// it closes the connection.
type h1Body struct {
	c         *h1Client
	pc        *h1Conn
	stop      func() bool // deregisters the cancel on the request's context
	chunked   io.Reader
	remaining int64 // Content-Length bytes left; -1 when not framed by one
	reuse     bool
	state     atomic.Int32 // 0 open, 1 read to its end, 2 closed
	err       error        // sticky read error
}

func (b *h1Body) Read(p []byte) (int, error) {
	switch b.state.Load() {
	case 1:
		return 0, io.EOF
	case 2:
		if b.err != nil {
			return 0, b.err
		}
		return 0, errBodyClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	var n int
	var err error
	switch {
	case b.chunked != nil:
		n, err = b.chunked.Read(p)
		if err == io.EOF {
			// The trailer section ends the message; its fields are not passed on.
			if _, terr := readHeader(b.pc.br); terr != nil {
				err = fmt.Errorf("backends: reading trailers: %w", terr)
			}
		}
	case b.remaining >= 0:
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err = b.pc.br.Read(p)
		b.remaining -= int64(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err == nil && b.remaining == 0 {
			err = io.EOF
		}
	default:
		n, err = b.pc.br.Read(p)
	}
	switch {
	case err == io.EOF:
		b.finish()
	case err != nil:
		b.err = err
		b.Close()
	}
	return n, err
}

// finish marks the body read to its end and releases the connection.
func (b *h1Body) finish() {
	if !b.state.CompareAndSwap(0, 1) {
		return
	}
	if b.stop() && b.reuse {
		b.c.put(b.pc)
		return
	}
	b.pc.Close()
}

func (b *h1Body) Close() error {
	if b.state.CompareAndSwap(0, 2) {
		b.stop()
		b.pc.Close()
	}
	return nil
}

var errBodyClosed = errors.New("backends: read on closed response body")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
