package backends_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
)

// rawServer answers each request read from a connection with what answer writes, raw. It
// counts the connections it accepted.
type rawServer struct {
	ln    net.Listener
	conns atomic.Int32
	wg    sync.WaitGroup
}

func startRawServer(t *testing.T, answer func(c net.Conn, req *http.Request, body []byte) (keep bool)) (*rawServer, *backends.Endpoint) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(req.Body)
					if !answer(c, req, body) {
						return
					}
				}
			})
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	ep, err := backends.NewEndpoint("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return s, ep
}

// connCounts counts a test server's connections: all it accepted, and those open now.
type connCounts struct{ accepted, open atomic.Int32 }

func countConns(srv *httptest.Server) *connCounts {
	c := &connCounts{}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			c.accepted.Add(1)
			c.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			c.open.Add(-1)
		}
	}
	return c
}

func newTestClient(t *testing.T, opts backends.HTTPOptions) *backends.HTTPClient {
	t.Helper()
	c, err := backends.NewHTTPClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func postRead(t *testing.T, c *backends.HTTPClient, ep *backends.Endpoint, body string) (*http.Response, string, error) {
	t.Helper()
	resp, err := c.Post(context.Background(), ep, "/v1/chat/completions", http.Header{"Content-Type": {"application/json"}}, []byte(body))
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// TestPostFraming reads every way an HTTP/1.1 response can frame its body, each followed by
// another request on the same connection where the framing allows it.
func TestPostFraming(t *testing.T) {
	for _, tt := range []struct {
		name     string
		answer   string
		want     string
		status   int
		reusable bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", 200, true},
		{"chunked with trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n", "hello", 200, true},
		{"interim responses first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 200, true},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", "", 204, true},
		{"error status with body", "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}", "{}", 503, true},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "ok", 200, false},
		{"HTTP/1.0 to the close", "HTTP/1.0 200 OK\r\n\r\nuntil close", "until close", 200, false},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", "ok", 200, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, ep := startRawServer(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
				io.WriteString(c, tt.answer)
				return tt.reusable
			})
			c := newTestClient(t, backends.HTTPOptions{FirstByteTimeout: 5 * time.Second})
			for i := range 3 {
				resp, body, err := postRead(t, c, ep, `{"model":"m"}`)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if resp.StatusCode != tt.status || body != tt.want {
					t.Fatalf("request %d: %d %q, want %d %q", i, resp.StatusCode, body, tt.status, tt.want)
				}
			}
			want := int32(3)
			if tt.reusable {
				want = 1
			}
			if n := srv.conns.Load(); n != want {
				t.Errorf("%d connections for 3 requests, want %d", n, want)
			}
		})
	}
}

// TestPostHeadersCanonical checks that response header names arrive as net/http names them,
// whatever case the server wrote them in (uvicorn writes them in lower case).
func TestPostHeadersCanonical(t *testing.T) {
	_, ep := startRawServer(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-REQUEST-id: abc\r\nX-Multi: 1\r\nx-multi: 2\r\ncontent-length:  0 \r\n\r\n")
		return true
	})
	c := newTestClient(t, backends.HTTPOptions{})
	resp, _, err := postRead(t, c, ep, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := resp.Header["X-Request-Id"]; len(got) != 1 || got[0] != "abc" {
		t.Errorf("X-Request-Id = %q", got)
	}
	if got := resp.Header["X-Multi"]; len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("X-Multi = %q", got)
	}
}

// TestPostBadResponses gets the error of each malformed or cut-short answer, never a hang.
func TestPostBadResponses(t *testing.T) {
	for _, tt := range []struct {
		name, answer string
		atPost       error // the error Post returns; nil when the body read fails instead
	}{
		{"malformed status line", "HTTP/1.1 OK\r\n\r\n", backends.ErrConnect},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", backends.ErrConnect},
		{"folded header", "HTTP/1.1 200 OK\r\nA: 1\r\n  2\r\n\r\n", backends.ErrConnect},
		{"bad header name", "HTTP/1.1 200 OK\r\nA B: 1\r\n\r\n", backends.ErrConnect},
		{"unsupported transfer coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", backends.ErrConnect},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", backends.ErrConnect},
		{"endless header", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 300), backends.ErrConnect},
		{"closed before answering", "", backends.ErrConnect},
		{"body cut short", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", nil},
		{"chunked body cut short", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, ep := startRawServer(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
				io.WriteString(c, tt.answer)
				return false
			})
			c := newTestClient(t, backends.HTTPOptions{FirstByteTimeout: 5 * time.Second})
			_, _, err := postRead(t, c, ep, `{}`)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.atPost != nil && !errors.Is(err, tt.atPost) {
				t.Errorf("%v, want %v", err, tt.atPost)
			}
			if tt.atPost == nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

// TestPostStaleConnection has a server close each connection right after its answer without
// saying so: the next request must find its kept-alive connection closed (a peek sees the
// FIN) and go on a new one, unseen by the caller.
func TestPostStaleConnection(t *testing.T) {
	srv, ep := startRawServer(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false
	})
	c := newTestClient(t, backends.HTTPOptions{})
	for i := range 20 {
		if _, body, err := postRead(t, c, ep, `{}`); err != nil || body != "ok" {
			t.Fatalf("request %d: %q %v", i, body, err)
		}
		time.Sleep(5 * time.Millisecond) // the FIN arrives before the next request, as an idle close's does
	}
	if n := srv.conns.Load(); n != 20 {
		t.Errorf("%d connections, want 20", n)
	}
}

// TestPostIdleConnectionClosedByServer leaves a kept-alive connection idle past the server's
// keep-alive timeout: the next request must not fail on it.
func TestPostIdleConnectionClosedByServer(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.IdleTimeout = 100 * time.Millisecond
	counts := countConns(srv)
	srv.Start()
	defer srv.Close()
	ep, _ := backends.NewEndpoint(srv.URL)
	c := newTestClient(t, backends.HTTPOptions{})
	for i := range 2 {
		if _, body, err := postRead(t, c, ep, `{}`); err != nil || body != "ok" {
			t.Fatalf("request %d: %q %v", i, body, err)
		}
		time.Sleep(1100 * time.Millisecond) // past the server's idle timeout and the client's probe age
	}
	if n := counts.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestPostCancelAndEarlyClose: canceling a request mid-body ends its read at once, and a
// body closed before its end closes the connection instead of reusing it.
func TestPostCancelAndEarlyClose(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			if _, err := io.WriteString(w, "data: x\n\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}))
	counts := countConns(srv)
	srv.Start()
	defer srv.Close()
	ep, _ := backends.NewEndpoint(srv.URL)
	c := newTestClient(t, backends.HTTPOptions{})

	ctx, cancel := context.WithCancel(context.Background())
	resp, err := c.Post(ctx, ep, "/", nil, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	for err == nil {
		_, err = resp.Body.Read(buf)
	}
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Errorf("read after cancel: %v after %v, want context.Canceled at once", err, time.Since(start))
	}
	resp.Body.Close()

	resp, err = c.Post(context.Background(), ep, "/", nil, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(buf)
	resp.Body.Close() // before the end: the connection cannot carry another request
	resp, err = c.Post(context.Background(), ep, "/", nil, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := counts.accepted.Load(); n != 3 {
		t.Errorf("%d connections for 3 requests each closed early, want 3", n)
	}
}

// TestPostRefusesHeaderInjection: a header value with a line break is an error, not a second
// header or request.
func TestPostRefusesHeaderInjection(t *testing.T) {
	var got atomic.Int32
	_, ep := startRawServer(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
		got.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	c := newTestClient(t, backends.HTTPOptions{})
	for _, h := range []http.Header{{"X-A": {"1\r\nX-Injected: 2"}}, {"X-A\r\nX-B": {"1"}}, {"X-A": {"1\n\nGET / HTTP/1.1"}}} {
		if resp, err := c.Post(context.Background(), ep, "/", h, []byte(`{}`)); err == nil {
			resp.Body.Close()
			t.Errorf("header %q sent", h)
		}
	}
	if n := got.Load(); n != 0 {
		t.Errorf("server got %d requests", n)
	}
}

// TestPostRequestOnTheWire checks the bytes a server receives: method, path under the
// endpoint's base path, Host, Content-Length and the caller's headers, and a body made of
// parts (one of them past the socket buffers).
func TestPostRequestOnTheWire(t *testing.T) {
	type seen struct {
		method, uri, host, ct string
		length                int64
		body                  string
	}
	got := make(chan seen, 1)
	srv, _ := startRawServer(t, func(c net.Conn, r *http.Request, body []byte) bool {
		got <- seen{r.Method, r.RequestURI, r.Host, r.Header.Get("Content-Type"), r.ContentLength, string(body)}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	ep, _ := backends.NewEndpoint("http://" + srv.ln.Addr().String() + "/base")
	c := newTestClient(t, backends.HTTPOptions{})
	big := strings.Repeat("x", 3<<20)
	resp, err := c.Post(context.Background(), ep, "/v1/completions", http.Header{"Content-Type": {"application/json"}, "Content-Length": {"999"}},
		[]byte(`{"a":"`), []byte(big), nil, []byte(`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := <-got
	want := seen{"POST", "/base/v1/completions", srv.ln.Addr().String(), "application/json", int64(len(big) + 8), `{"a":"` + big + `"}`}
	if s != want {
		t.Errorf("server saw %s %s host %s type %s length %d body of %d bytes; want %s %s host %s type %s length %d body of %d",
			s.method, s.uri, s.host, s.ct, s.length, len(s.body), want.method, want.uri, want.host, want.ct, want.length, len(want.body))
	}
}

// TestPostMutualTLS posts over TLS with a client certificate, on a kept-alive connection.
func TestPostMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCert, caPool := certs(t, dir)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: caPool}
	counts := countConns(srv)
	srv.StartTLS()
	defer srv.Close()
	ep, _ := backends.NewEndpoint(srv.URL)
	c := newTestClient(t, backends.HTTPOptions{TLS: &backends.TLSOptions{
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}})
	for range 3 {
		if _, body, err := postRead(t, c, ep, `{}`); err != nil || body != "client" {
			t.Fatalf("%q %v", body, err)
		}
	}
	if n := counts.accepted.Load(); n != 1 {
		t.Errorf("%d TLS connections for 3 requests, want 1", n)
	}
	noCert := newTestClient(t, backends.HTTPOptions{TLS: &backends.TLSOptions{CAFile: filepath.Join(dir, "ca.pem")}})
	if _, _, err := postRead(t, noCert, ep, `{}`); !errors.Is(err, backends.ErrConnect) {
		t.Errorf("without a client certificate: %v, want ErrConnect", err)
	}
}

// TestCloseKeepsNoConnection: Close closes the idle connections, and a request in flight at
// the Close gives its connection up when it ends.
func TestCloseKeepsNoConnection(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	counts := countConns(srv)
	srv.Start()
	defer srv.Close()
	ep, _ := backends.NewEndpoint(srv.URL)
	c, _ := backends.NewHTTPClient(backends.HTTPOptions{})
	done := make(chan error, 1)
	go func() {
		resp, err := c.Post(context.Background(), ep, "/slow", nil, []byte(`{}`))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for counts.open.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The slow request holds its connection: this one dials another, left idle.
	if _, _, err := postRead(t, c, ep, `{}`); err != nil {
		t.Fatal(err)
	}
	if n := counts.open.Load(); n != 2 {
		t.Fatalf("%d connections open, want 2", n)
	}
	c.Close()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for counts.open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := counts.open.Load(); n != 0 {
		t.Errorf("%d connections still open after Close and the last request", n)
	}
}

// TestPostResetConnections has a server reset each connection right after its answer, and
// the next request go at once: its write fails with nothing written, or its read finds the
// reset before any answer, and it goes again on a new connection, unseen by the caller.
func TestPostResetConnections(t *testing.T) {
	srv, ep := startRawServer(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.(*net.TCPConn).SetLinger(0) // close with a reset
		return false
	})
	c := newTestClient(t, backends.HTTPOptions{})
	for i := range 20 {
		if _, body, err := postRead(t, c, ep, `{}`); err != nil || body != "ok" {
			t.Fatalf("request %d: %q %v", i, body, err)
		}
	}
	if n := srv.conns.Load(); n != 20 {
		t.Errorf("%d connections, want 20", n)
	}
}

// TestPostAfterServerRestart restarts a server under a pool of kept-alive connections: every
// request after it must succeed, none on a dead connection.
func TestPostAfterServerRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond)
		io.WriteString(w, "ok")
	})
	first := &http.Server{Handler: handler}
	go first.Serve(ln)
	ep, _ := backends.NewEndpoint("http://" + addr)
	c := newTestClient(t, backends.HTTPOptions{})
	var wg sync.WaitGroup
	for range 4 { // four connections, then idle
		wg.Go(func() {
			if _, _, err := postRead(t, c, ep, `{}`); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	first.Close()
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	second := &http.Server{Handler: handler}
	go second.Serve(ln)
	defer second.Close()
	time.Sleep(20 * time.Millisecond)
	for i := range 6 {
		if _, body, err := postRead(t, c, ep, `{}`); err != nil || body != "ok" {
			t.Fatalf("request %d after the restart: %q %v", i, body, err)
		}
	}
}

// TestPostEarlyAnswer has a server answer 413 after reading only the head of a large
// request: the caller gets the 413, not a write error, both when the server closes and when
// it keeps the connection open without reading.
func TestPostEarlyAnswer(t *testing.T) {
	for _, closeAfter := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.(*net.TCPConn).SetReadBuffer(64 << 10)
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 5\r\nConnection: close\r\n\r\nlarge")
			if !closeAfter {
				<-release
			}
		}()
		ep, _ := backends.NewEndpoint("http://" + ln.Addr().String())
		c := newTestClient(t, backends.HTTPOptions{FirstByteTimeout: 10 * time.Second})
		start := time.Now()
		resp, err := c.Post(context.Background(), ep, "/", nil, make([]byte, 16<<20))
		if err != nil {
			t.Fatalf("close %v: %v", closeAfter, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || string(body) != "large" {
			t.Errorf("close %v: %d %q", closeAfter, resp.StatusCode, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("close %v: the answer took %v", closeAfter, d)
		}
		close(release)
		ln.Close()
	}
}

// TestIdleConnectionsExpire: connections to an endpoint no longer used (a pod gone from its
// pool) are closed once idle past the idle timeout, while requests go elsewhere.
func TestIdleConnectionsExpire(t *testing.T) {
	gone := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	counts := countConns(gone)
	gone.Start()
	defer gone.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer other.Close()
	goneEP, _ := backends.NewEndpoint(gone.URL)
	otherEP, _ := backends.NewEndpoint(other.URL)
	c := newTestClient(t, backends.HTTPOptions{IdleConnTimeout: 200 * time.Millisecond})
	if _, _, err := postRead(t, c, goneEP, `{}`); err != nil {
		t.Fatal(err)
	}
	if counts.open.Load() != 1 {
		t.Fatalf("%d connections to the first endpoint, want 1", counts.open.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for counts.open.Load() > 0 && time.Now().Before(deadline) {
		if _, _, err := postRead(t, c, otherEP, `{}`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := counts.open.Load(); n != 0 {
		t.Errorf("%d idle connections to the unused endpoint still open", n)
	}
}

// TestPostEscapesPath: a path with bytes a request line cannot carry (a space, a tab,
// non-ASCII, a percent sign) goes percent-encoded and reaches the server as it was.
func TestPostEscapesPath(t *testing.T) {
	got := make(chan [2]string, 1)
	_, ep := startRawServer(t, func(c net.Conn, r *http.Request, _ []byte) bool {
		got <- [2]string{r.RequestURI, r.URL.Path}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	c := newTestClient(t, backends.HTTPOptions{})
	for _, path := range []string{"/v2/models/my model/versions/1\t2/infer", "/v2/models/modèle%/infer", "/v1/chat/completions"} {
		resp, err := c.Post(context.Background(), ep, path, nil, []byte(`{}`))
		if err != nil {
			t.Fatalf("%q: %v", path, err)
		}
		resp.Body.Close()
		g := <-got
		if g[1] != path || strings.ContainsAny(g[0], " \t") {
			t.Errorf("%q reached the server as %q (request target %q)", path, g[1], g[0])
		}
	}
}
