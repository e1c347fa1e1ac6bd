package etcd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/switchyard-ai/switchyard/cluster"
)

// Config is what a replica needs to join the shared state.
type Config struct {
	Endpoints          []string // etcd members; required
	Prefix             string   // key prefix ending in /; default /switchyard/
	Username, Password string
	TLS                *tls.Config // nil for plaintext
	// DialTimeout bounds Open's first exchange; default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds each background exchange; default 2s.
	RequestTimeout time.Duration
	// SyncInterval is how often limit usage is flushed; default 100ms.
	SyncInterval time.Duration
	// MemberTTL is the membership lease; default 10s.
	MemberTTL time.Duration
	// BindTimeout bounds how long a new session's binding waits for etcd; default 250ms.
	BindTimeout time.Duration
	// ReplicaID names this replica; default host name plus a random suffix.
	ReplicaID string
	// Addr and AdminAddr are advertised in the membership record.
	Addr, AdminAddr string
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "/switchyard/"
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&c.DialTimeout, 5 * time.Second}, {&c.RequestTimeout, 2 * time.Second}, {&c.SyncInterval, 100 * time.Millisecond},
		{&c.MemberTTL, 10 * time.Second}, {&c.BindTimeout, 250 * time.Millisecond}} {
		if *d.p <= 0 {
			*d.p = d.v
		}
	}
	if c.ReplicaID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "replica"
		}
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.ReplicaID = host + "-" + hex.EncodeToString(b[:])
	}
}

// Option configures Open.
type Option func(*Cluster)

// WithLogger logs background trouble (etcd unreachable, reconciliation) to l.
func WithLogger(l *slog.Logger) Option { return func(c *Cluster) { c.log = l } }

// Cluster is a replica's handle on the shared state: it owns the etcd client and the
// background loops behind Sessions, Counters and membership. Safe for concurrent use.
type Cluster struct {
	cfg      Config
	cli      *clientv3.Client
	log      *slog.Logger
	id       string
	health   health
	members  *membership
	sessions *Sessions
	counters *Counters
	drains   *Drains
	writes   atomic.Int64 // write requests sent to etcd: txns, puts, lease grants
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closed   sync.Once
}

var (
	_ cluster.Members  = (*Cluster)(nil)
	_ cluster.Reporter = (*Cluster)(nil)
)

// ErrUnavailable reports that etcd could not be reached at start.
var ErrUnavailable = errors.New("cluster/etcd: etcd unavailable")

// Open connects to etcd, registers this replica, loads the current sessions, limit usage,
// members and drained endpoints, and starts the background loops. It fails when that takes longer than
// cfg.DialTimeout. Close stops everything and leaves the membership.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Cluster, error) {
	cfg.setDefaults()
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("cluster/etcd: no endpoints")
	}
	c := &Cluster{cfg: cfg, id: cfg.ReplicaID, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(c)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints, Username: cfg.Username, Password: cfg.Password, TLS: cfg.TLS,
		DialTimeout: cfg.DialTimeout, DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 3 * time.Second,
		AutoSyncInterval: time.Minute, Logger: zap.NewNop(), Context: context.WithoutCancel(ctx),
		// Reconnect within a couple of seconds of etcd returning, not gRPC's default two minutes.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: cfg.RequestTimeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	c.cli = cli
	c.health.onChange = c.modeChanged
	c.members = newMembership(c)
	c.sessions = newSessions(c)
	c.counters = newCounters(c)
	c.drains = newDrains(c)

	start, cancelStart := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancelStart()
	if err := c.members.register(start); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w: registering %s: %v", ErrUnavailable, c.id, err)
	}
	mirrors := []*mirror{c.members.mirror(), c.sessions.mirror(), c.counters.mirror(), c.drains.mirror()}
	for _, m := range mirrors {
		if err := m.load(start); err != nil {
			c.members.leave(context.Background())
			cli.Close()
			return nil, fmt.Errorf("%w: loading %s: %v", ErrUnavailable, m.name, err)
		}
	}
	c.health.op(nil, time.Now())
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	for _, m := range mirrors {
		c.wg.Go(func() { m.run(run, &c.health) })
	}
	c.wg.Go(func() { c.members.keepAlive(run) })
	c.wg.Go(func() { c.sessions.writer(run) })
	c.wg.Go(func() { c.counters.syncLoop(run) })
	return c, nil
}

// Close stops the background loops, flushes limit usage once more, leaves the membership
// and closes the client. It is idempotent.
func (c *Cluster) Close() error {
	c.closed.Do(func() {
		c.cancel()
		c.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
		defer cancel()
		c.counters.flush(ctx)
		c.members.leave(ctx)
		c.cli.Close()
	})
	return nil
}

// ID returns this replica's ID.
func (c *Cluster) ID() string { return c.id }

// Sessions returns the shared session bindings.
func (c *Cluster) Sessions() *Sessions { return c.sessions }

// Drains returns the drained endpoints shared with the other replicas.
func (c *Cluster) Drains() *Drains { return c.drains }

// Counters returns the shared rate-limit counters.
func (c *Cluster) Counters() *Counters { return c.counters }

// Members implements cluster.Members.
func (c *Cluster) Members() []cluster.Member { return c.members.list() }

// Writes returns how many write requests (transactions, puts, lease grants) this replica
// has sent to etcd since Open.
func (c *Cluster) Writes() int64 { return c.writes.Load() }

// Status implements cluster.Reporter.
func (c *Cluster) Status() cluster.Status {
	h := c.health.snapshot()
	st := cluster.Status{Mode: cluster.ModeShared, Members: c.members.count(), LastSync: h.lastOK,
		Sessions: c.sessions.Len(), Counters: c.counters.Len(), ReplicaID: c.id,
		Staleness: c.counters.staleness.max(time.Now())}
	if h.degraded {
		st.Mode, st.LastError, st.SinceError = cluster.ModeDegraded, h.reason, h.since
	}
	return st
}

// Degraded reports whether etcd is unreachable from this replica right now.
func (c *Cluster) Degraded() bool { return c.health.degraded.Load() }

func (c *Cluster) key(parts ...string) string {
	k := c.cfg.Prefix
	for i, p := range parts {
		if i > 0 {
			k += "/"
		}
		k += p
	}
	return k
}

// request returns a context bounded by the request timeout.
func (c *Cluster) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}

// modeChanged runs, outside any lock, whenever the replica enters or leaves degraded mode.
func (c *Cluster) modeChanged(degraded bool, reason string) {
	if degraded {
		c.log.Warn("etcd unreachable: sessions bind locally, limits enforce this replica's share", "replica", c.id, "reason", reason)
		return
	}
	c.log.Info("etcd reachable again: shared state reconciling", "replica", c.id)
	c.counters.markAllDirty()
	c.sessions.reconcile()
}

func encode(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
