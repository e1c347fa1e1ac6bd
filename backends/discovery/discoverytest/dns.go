// Package discoverytest runs a small authoritative DNS server on loopback for tests of
// endpoint discovery: A, AAAA and SRV records that a test changes while the server runs,
// and a switch that makes every answer SERVFAIL.
package discoverytest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// SRV is one SRV record's target and port.
type SRV struct {
	Target string // a host name, resolved through the same server's A records
	Port   uint16
}

// DNSServer answers UDP DNS queries from records held in memory. Safe for concurrent use.
type DNSServer struct {
	conn net.PacketConn

	mu      sync.Mutex
	addrs   map[string][]netip.Addr
	srv     map[string][]SRV
	failing bool
	queries int
}

// NewDNSServer starts a server on a loopback UDP port and stops it when the test ends.
func NewDNSServer(t testing.TB) *DNSServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &DNSServer{conn: conn, addrs: map[string][]netip.Addr{}, srv: map[string][]SRV{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// Addr is the server's host:port.
func (s *DNSServer) Addr() string { return s.conn.LocalAddr().String() }

// Resolver returns a resolver that asks only this server.
func (s *DNSServer) Resolver() *net.Resolver {
	var d net.Dialer
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "udp", s.Addr())
	}}
}

// SetAddrs sets the A and AAAA records of name; none removes them.
func (s *DNSServer) SetAddrs(name string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []netip.Addr
	for _, a := range addrs {
		list = append(list, netip.MustParseAddr(a))
	}
	s.addrs[fqdn(name)] = list
}

// SetSRV sets the SRV records of name; none removes them.
func (s *DNSServer) SetSRV(name string, recs ...SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv[fqdn(name)] = recs
}

// Fail makes every answer SERVFAIL while on is true.
func (s *DNSServer) Fail(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing = on
}

// Queries counts the queries answered so far.
func (s *DNSServer) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

func fqdn(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

func (s *DNSServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, ok := s.answer(buf[:n]); ok {
			s.conn.WriteTo(resp, from)
		}
	}
}

// answer builds the response to one query; ok is false for a packet that is not one.
func (s *DNSServer) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries++
	name := strings.ToLower(q.Name.String())
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	addrs, hasAddrs := s.addrs[name]
	srvs, hasSRV := s.srv[name]
	switch {
	case s.failing:
		rh.RCode = dnsmessage.RCodeServerFailure
	case !hasAddrs && !hasSRV || len(addrs) == 0 && len(srvs) == 0:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if rh.RCode == dnsmessage.RCodeSuccess {
		hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
		switch q.Type {
		case dnsmessage.TypeA:
			for _, a := range addrs {
				if a.Is4() {
					b.AResource(hdr, dnsmessage.AResource{A: a.As4()})
				}
			}
		case dnsmessage.TypeAAAA:
			for _, a := range addrs {
				if a.Is6() {
					b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: a.As16()})
				}
			}
		case dnsmessage.TypeSRV:
			for _, r := range srvs {
				b.SRVResource(hdr, dnsmessage.SRVResource{Priority: 0, Weight: 1, Port: r.Port,
					Target: dnsmessage.MustNewName(fqdn(r.Target))})
			}
		}
	}
	resp, err := b.Finish()
	return resp, err == nil
}
