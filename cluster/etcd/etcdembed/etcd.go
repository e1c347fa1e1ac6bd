package etcdembed

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is a set of in-process etcd members. Its methods are safe for concurrent use.
type Cluster struct {
	mu      sync.Mutex
	dir     string
	tls     *ClientTLS
	members []*member
}

// ClientTLS serves the members' client URLs over TLS from these PEM files. With
// ClientCertAuth, clients must present a certificate signed by TrustedCAFile; the server
// certificate then needs the client-auth usage too, for the member's own gateway.
type ClientTLS struct {
	CertFile, KeyFile, TrustedCAFile string
	ClientCertAuth                   bool
}

type member struct {
	closed     chan struct{} // closed when a stopped member has finished closing
	name       string
	client     url.URL
	peer       url.URL
	cfgCluster string
	etcd       *embed.Etcd
}

// Start runs n members (1 or 3 are usual) with their data under dir and waits until they
// are ready. Close stops them.
func Start(dir string, n int) (*Cluster, error) { return start(dir, n, nil) }

// StartTLS is Start with the members' client URLs served over TLS.
func StartTLS(dir string, n int, tls ClientTLS) (*Cluster, error) { return start(dir, n, &tls) }

func start(dir string, n int, tls *ClientTLS) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("etcdembed: need at least one member")
	}
	c := &Cluster{dir: dir, tls: tls}
	var initial []string
	for i := range n {
		cl, err := freeURL()
		if err != nil {
			return nil, err
		}
		pe, err := freeURL()
		if err != nil {
			return nil, err
		}
		if tls != nil {
			cl.Scheme = "https"
		}
		m := &member{name: fmt.Sprintf("m%d", i), client: cl, peer: pe}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+pe.String())
	}
	errs := make(chan error, n)
	for _, m := range c.members {
		m.cfgCluster = strings.Join(initial, ",")
		go func() { errs <- c.startMember(m, true) }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		c.Close()
		return nil, first
	}
	return c, nil
}

func freeURL() (url.URL, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return url.URL{Scheme: "http", Host: addr}, nil
}

func (c *Cluster) startMember(m *member, fresh bool) error {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = filepath.Join(c.dir, m.name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{m.client}, []url.URL{m.client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{m.peer}, []url.URL{m.peer}
	cfg.InitialCluster = m.cfgCluster
	cfg.InitialClusterToken = "switchyard-test"
	if t := c.tls; t != nil {
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.TrustedCAFile,
			ClientCertAuth: t.ClientCertAuth}
	}
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "periodic", "5m"
	if !fresh {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcdembed: starting %s: %w", m.name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcdembed: %s: %w", m.name, err)
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("etcdembed: %s not ready after 30s", m.name)
	}
	c.mu.Lock()
	m.etcd = e
	c.mu.Unlock()
	return nil
}

// Endpoints returns every member's client address, host:port, comma-separated: the form of
// the --etcd flag.
func (c *Cluster) Endpoints() string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.client.Host)
	}
	return strings.Join(out, ",")
}

// List returns every member's client address.
func (c *Cluster) List() []string { return strings.Split(c.Endpoints(), ",") }

// Size returns the number of members, running or not.
func (c *Cluster) Size() int { return len(c.members) }

// Leader returns the index of the member that leads, or -1 when no running member knows one.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if m.etcd != nil && m.etcd.Server.Leader() == m.etcd.Server.MemberID() {
			return i
		}
	}
	return -1
}

// Stop stops member i as a crash would: its raft node halts at once, so the others see it
// gone and elect a new leader if it led; its connections close a few seconds later. Its data
// stays for Restart.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	m := c.members[i]
	e := m.etcd
	m.etcd = nil
	if e != nil {
		m.closed = make(chan struct{})
	}
	closed := m.closed
	c.mu.Unlock()
	if e != nil {
		e.Server.HardStop()
		go func() {
			e.Close()
			close(closed)
		}()
	}
}

// wait blocks until stopped member i has finished closing.
func (c *Cluster) wait(i int) {
	c.mu.Lock()
	closed := c.members[i].closed
	c.mu.Unlock()
	if closed != nil {
		<-closed
	}
}

// Restart starts a stopped member i again from its data.
func (c *Cluster) Restart(i int) error {
	c.mu.Lock()
	running := c.members[i].etcd != nil
	c.mu.Unlock()
	if running {
		return nil
	}
	c.wait(i)
	return c.startMember(c.members[i], false)
}

// RestartAsync starts member i again without waiting for it to be ready, which a member
// that cannot reach a quorum on its own never is; the returned channel reports the outcome.
func (c *Cluster) RestartAsync(i int) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.Restart(i) }()
	return done
}

// Close stops every running member gracefully, in parallel, and waits for members stopped
// earlier to finish closing. It removes nothing: the caller owns dir.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for i, m := range c.members {
		c.mu.Lock()
		e := m.etcd
		m.etcd = nil
		c.mu.Unlock()
		if e != nil {
			wg.Go(e.Close)
		}
		wg.Go(func() { c.wait(i) })
	}
	wg.Wait()
}

// TempDir makes a directory for Start under the system temporary directory.
func TempDir() (string, error) { return os.MkdirTemp("", "switchyard-etcd-") }
