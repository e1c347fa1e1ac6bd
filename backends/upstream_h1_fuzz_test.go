package backends

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// replayConn is a connection whose reads come from a fixed answer and whose writes vanish.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReadResponse feeds arbitrary bytes to the upstream client as a server's answer. It must
// never panic; a body framed by Content-Length must read as exactly that many bytes or fail;
// and a connection goes back to the idle list only after a response read to its end with no
// byte left over.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nto the close",
		"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: x\n\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 999 X\r\nA:\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		c := &h1Client{maxIdle: 1, idle: map[string][]*h1Conn{}}
		pc := &h1Conn{Conn: &replayConn{r: bytes.NewReader(answer)}, key: "k"}
		pc.br = bufio.NewReaderSize(pc.Conn, 512)
		var resp *http.Response
		var err error
		for {
			if resp, err = readResponseHead(pc); err != nil {
				return
			}
			if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
				break
			}
		}
		if err := c.frame(pc, func() bool { return true }, http.MethodPost, resp, true); err != nil {
			return
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err == nil && resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
			t.Fatalf("read %d bytes of a %d-byte body", len(body), resp.ContentLength)
		}
		if len(body) > len(answer) {
			t.Fatalf("read %d body bytes from a %d-byte answer", len(body), len(answer))
		}
		if n := len(c.idle["k"]); n > 0 && (err != nil || pc.br.Buffered() > 0) {
			t.Fatalf("connection kept after a read error (%v) or with %d bytes left over", err, pc.br.Buffered())
		}
	})
}
