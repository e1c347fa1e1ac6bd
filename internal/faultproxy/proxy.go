package faultproxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a kind of fault.
type Kind int

// The faults a Proxy injects. Byte counts are of the response: bytes from the server since
// the client last sent bytes, which for HTTP/1.1 is the current response.
const (
	// Pass forwards bytes both ways untouched.
	Pass Kind = iota
	// ResetBeforeFirstByte resets the client connection as soon as it sends anything, before
	// the server sees it or any response byte comes back.
	ResetBeforeFirstByte
	// ResetMidStream forwards the first Fault.After bytes of each response, then resets the
	// client connection.
	ResetMidStream
	// Stall forwards the first Fault.After bytes of each response, then holds the rest back
	// (reading nothing more from the server) until the fault changes or the connection closes.
	Stall
	// Delay waits Fault.Delay before forwarding each chunk of a response.
	Delay
)

// Fault is what the proxy does to connections, now and until it is changed.
type Fault struct {
	Kind  Kind
	After int64         // ResetMidStream, Stall: response bytes forwarded first
	Delay time.Duration // Delay: wait before each response chunk
}

// Proxy is a TCP proxy with faults. It is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	fault  Fault
	change chan struct{} // closed and replaced when the fault changes
	conns  map[*pair]struct{}
	closed bool

	wg       sync.WaitGroup
	accepted atomic.Int64
	resets   atomic.Int64
}

// pair is one proxied connection.
type pair struct {
	client, server net.Conn
	responseBytes  atomic.Int64  // since the client last sent bytes
	clientGone     chan struct{} // closed when the client side stops
}

// New starts a proxy on a loopback port that forwards to target (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, change: make(chan struct{}), conns: map[*pair]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's listening address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set changes the fault for every connection, open or future.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
	close(p.change)
	p.change = make(chan struct{})
}

// current returns the fault and a channel closed when it next changes.
func (p *Proxy) current() (Fault, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault, p.change
}

// Accepted is how many client connections the proxy has accepted.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Resets is how many client connections the proxy has reset.
func (p *Proxy) Resets() int64 { return p.resets.Load() }

// Open is how many proxied connections are open now, for leak checks.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops accepting, closes every connection and waits for the proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
	close(p.change) // wake stalled copies
	p.change = make(chan struct{})
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			reset(client)
			continue
		}
		c := &pair{client: client, server: server, clientGone: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			client.Close()
			server.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		var both sync.WaitGroup
		both.Go(func() { p.requests(c) })
		both.Go(func() { p.responses(c) })
		p.wg.Go(func() {
			both.Wait()
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		})
	}
}

// requests copies client to server; a reset-before-first-byte fault resets the client instead.
func (p *Proxy) requests(c *pair) {
	defer close(c.clientGone)
	defer c.server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			if f, _ := p.current(); f.Kind == ResetBeforeFirstByte {
				p.reset(c)
				return
			}
			c.responseBytes.Store(0)
			if _, werr := c.server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// responses copies server to client, applying mid-stream faults.
func (p *Proxy) responses(c *pair) {
	defer c.client.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		chunk := buf[:n]
		for len(chunk) > 0 {
			f, changed := p.current()
			sent := c.responseBytes.Load()
			switch f.Kind {
			case ResetBeforeFirstByte:
				p.reset(c)
				return
			case ResetMidStream, Stall:
				if room := f.After - sent; room > 0 {
					k := min(int64(len(chunk)), room)
					if !p.forward(c, chunk[:k]) {
						return
					}
					chunk = chunk[k:]
					continue
				}
				if f.Kind == ResetMidStream {
					p.reset(c)
					return
				}
				select { // hold the rest until the fault changes
				case <-changed:
				case <-c.clientGone:
					return
				}
				if p.isClosed() {
					return
				}
				continue
			case Delay:
				select {
				case <-time.After(f.Delay):
				case <-changed:
				}
			}
			if !p.forward(c, chunk) {
				return
			}
			chunk = nil
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) forward(c *pair, b []byte) bool {
	_, err := c.client.Write(b)
	c.responseBytes.Add(int64(len(b)))
	return err == nil
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// reset aborts the client connection with a TCP RST and closes the server side.
func (p *Proxy) reset(c *pair) {
	p.resets.Add(1)
	reset(c.client)
	c.server.Close()
}

func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // close sends RST instead of FIN
	}
	conn.Close()
}

var _ io.Closer = (*Proxy)(nil)
