package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard-ai/switchyard/cluster"
)

// Sessions is a cluster.Sessions whose bindings live in etcd and are mirrored into every
// replica's memory: Get is a map lookup. Bind settles races with a transaction that compares
// the key's revision (first writer wins), waiting at most the bind timeout; a binding made
// while etcd is away is kept locally and written when it returns.
//
// A binding's key holds its endpoint and expiry. Keys are attached to shared leases, one per
// expiry bucket, so etcd deletes them after they expire without one lease per session. A
// binding is written again when it is used in the second half of its TTL, so an active
// session costs at most two writes per TTL.
type Sessions struct {
	c       *Cluster
	mu      sync.RWMutex
	byKey   map[string]*sessionEntry
	refresh chan string
	pending map[string]bool // keys queued for refresh or reconciliation
	leases  leaseBuckets
}

type sessionEntry struct {
	endpoint string
	ttl      time.Duration
	expires  time.Time
	rev      int64 // etcd mod revision of the binding; 0 when it was only ever local
	local    bool  // bound or refreshed while etcd was away: to be written when it returns
}

// sessionValue is a binding's value in etcd.
type sessionValue struct {
	Endpoint string `json:"endpoint"`
	Expires  int64  `json:"expires_ms"` // Unix milliseconds
	TTL      int64  `json:"ttl_ms"`
	Replica  string `json:"replica"` // which replica wrote it
}

var _ cluster.Sessions = (*Sessions)(nil)

func newSessions(c *Cluster) *Sessions {
	return &Sessions{c: c, byKey: map[string]*sessionEntry{}, refresh: make(chan string, 4096), pending: map[string]bool{},
		leases: leaseBuckets{c: c, byEnd: map[int64]clientv3.LeaseID{}}}
}

func (s *Sessions) prefix() string { return s.c.key("sessions") + "/" }

// Get implements cluster.Sessions. It never waits on etcd; a binding used in the second half
// of its TTL is queued to be written again with a fresh expiry.
func (s *Sessions) Get(now time.Time, key string) (string, bool) {
	s.mu.RLock()
	e, ok := s.byKey[key]
	var ep string
	var stale, live bool
	if ok {
		ep, live, stale = e.endpoint, now.Before(e.expires), e.expires.Sub(now) < e.ttl/2
	}
	s.mu.RUnlock()
	if !ok || !live {
		return "", false
	}
	if stale {
		if s.c.Degraded() {
			s.mu.Lock()
			if e := s.byKey[key]; e != nil {
				e.expires, e.local = now.Add(e.ttl), true
			}
			s.mu.Unlock()
		} else {
			s.queue(key)
		}
	}
	return ep, true
}

// Bind implements cluster.Sessions.
func (s *Sessions) Bind(now time.Time, key, endpoint, prev string, ttl time.Duration) string {
	s.mu.Lock()
	e := s.byKey[key]
	if e != nil && now.Before(e.expires) && e.endpoint != prev && e.endpoint != endpoint {
		s.mu.Unlock()
		return e.endpoint // already bound elsewhere, as far as this replica knows
	}
	var rev int64
	if e != nil {
		rev = e.rev
	}
	if s.c.Degraded() || s.c.cfg.BindTimeout == 0 {
		s.byKey[key] = &sessionEntry{endpoint: endpoint, ttl: ttl, expires: now.Add(ttl), rev: rev, local: true}
		s.mu.Unlock()
		return endpoint
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), s.c.cfg.BindTimeout)
	defer cancel()
	bound, err := s.cas(ctx, now, key, endpoint, prev, ttl, rev)
	if err != nil {
		// etcd did not answer in time: serve from a local binding, written when it can be.
		s.c.health.op(err, time.Now())
		s.mu.Lock()
		s.byKey[key] = &sessionEntry{endpoint: endpoint, ttl: ttl, expires: now.Add(ttl), rev: rev, local: true}
		s.mu.Unlock()
		s.queue(key)
		return endpoint
	}
	return bound
}

// cas writes key → endpoint if the stored binding is still the one at rev (0: none), or is
// expired, or is prev; otherwise it adopts the stored binding. It returns the endpoint bound.
func (s *Sessions) cas(ctx context.Context, now time.Time, key, endpoint, prev string, ttl time.Duration, rev int64) (string, error) {
	k := s.prefix() + key
	for range 3 {
		lease, err := s.leases.forExpiry(ctx, now.Add(ttl))
		if err != nil {
			return "", err
		}
		cmp := clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
		if rev != 0 {
			cmp = clientv3.Compare(clientv3.ModRevision(k), "=", rev)
		}
		val := sessionValue{Endpoint: endpoint, Expires: now.Add(ttl).UnixMilli(), TTL: ttl.Milliseconds(), Replica: s.c.id}
		s.c.writes.Add(1)
		resp, err := s.c.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, encode(val), clientv3.WithLease(lease))).Else(clientv3.OpGet(k)).Commit()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.leases.drop(lease) // expired while etcd was away: grant a fresh one
			continue
		}
		if err != nil {
			return "", err
		}
		s.c.health.op(nil, time.Now())
		if resp.Succeeded {
			s.store(key, val, resp.Header.Revision)
			return endpoint, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			rev = 0 // deleted in between: try to create it
			continue
		}
		cur, ok := decodeSession(kvs[0])
		if ok && now.Before(time.UnixMilli(cur.Expires)) && cur.Endpoint != prev {
			s.store(key, cur, kvs[0].ModRevision)
			return cur.Endpoint, nil // another replica bound it first
		}
		rev = kvs[0].ModRevision // expired, unreadable, or the binding being moved away from
	}
	return endpoint, nil
}

// store records a binding read from or written to etcd, unless a newer one is known.
func (s *Sessions) store(key string, v sessionValue, rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byKey[key]; e != nil && e.rev > rev {
		return
	}
	s.byKey[key] = &sessionEntry{endpoint: v.Endpoint, ttl: time.Duration(v.TTL) * time.Millisecond,
		expires: time.UnixMilli(v.Expires), rev: rev}
}

func decodeSession(kv *mvccpb.KeyValue) (sessionValue, bool) {
	var v sessionValue
	if err := json.Unmarshal(kv.Value, &v); err != nil || v.Endpoint == "" {
		return v, false
	}
	return v, true
}

// queue asks the writer to refresh or reconcile key; it drops the request when the queue is
// full (the binding then simply expires on schedule).
func (s *Sessions) queue(key string) {
	s.mu.Lock()
	if s.pending[key] {
		s.mu.Unlock()
		return
	}
	s.pending[key] = true
	s.mu.Unlock()
	select {
	case s.refresh <- key:
	default:
		s.mu.Lock()
		delete(s.pending, key)
		s.mu.Unlock()
	}
}

// writer writes queued bindings to etcd: refreshes of bindings in use and bindings made
// while etcd was away. A refresh only applies to the revision it saw; if the binding moved
// meanwhile, the newer binding stands. A local binding loses to one another replica wrote
// in the meantime.
func (s *Sessions) writer(ctx context.Context) {
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			s.sweep(time.Now())
		case key := <-s.refresh:
			s.mu.Lock()
			delete(s.pending, key)
			e := s.byKey[key]
			var cp sessionEntry
			if e != nil {
				cp = *e
			}
			s.mu.Unlock()
			now := time.Now()
			if e == nil || !now.Before(cp.expires) || s.c.Degraded() {
				continue
			}
			rctx, cancel := s.c.request(ctx)
			bound, err := s.cas(rctx, now, key, cp.endpoint, cp.endpoint, cp.ttl, cp.rev)
			cancel()
			if err != nil {
				s.c.health.op(err, time.Now())
				continue
			}
			if bound != cp.endpoint {
				s.c.log.Debug("session bound elsewhere while etcd was away; following it", "key", key)
			}
		}
	}
}

// reconcile queues every binding made or refreshed while etcd was away.
func (s *Sessions) reconcile() {
	s.mu.RLock()
	var keys []string
	for k, e := range s.byKey {
		if e.local {
			keys = append(keys, k)
		}
	}
	s.mu.RUnlock()
	for _, k := range keys {
		s.queue(k)
	}
}

// sweep forgets expired bindings that no delete event removed (etcd deletes them with their
// bucket's lease, a little after they expire).
func (s *Sessions) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.byKey {
		if now.After(e.expires.Add(e.ttl)) {
			delete(s.byKey, k)
		}
	}
	s.leases.forget(now)
}

// Len returns how many bindings this replica holds.
func (s *Sessions) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byKey)
}

func (s *Sessions) mirror() *mirror {
	prefix := s.prefix()
	return &mirror{name: "sessions", cli: s.c.cli, prefix: prefix, retry: time.Second, reqTTL: s.c.cfg.RequestTimeout,
		reset: func(kvs []*mvccpb.KeyValue) {
			next := make(map[string]*sessionEntry, len(kvs))
			for _, kv := range kvs {
				if v, ok := decodeSession(kv); ok {
					next[strings.TrimPrefix(string(kv.Key), prefix)] = &sessionEntry{endpoint: v.Endpoint,
						ttl: time.Duration(v.TTL) * time.Millisecond, expires: time.UnixMilli(v.Expires), rev: kv.ModRevision}
				}
			}
			s.mu.Lock()
			for k, e := range s.byKey {
				if e.local { // not written yet: keep it for reconciliation, which settles any conflict
					if stored := next[k]; stored != nil {
						e.rev = stored.rev
					}
					next[k] = e
				}
			}
			s.byKey = next
			s.mu.Unlock()
		},
		apply: func(ev *clientv3.Event) {
			key := strings.TrimPrefix(string(ev.Kv.Key), prefix)
			if ev.Type == clientv3.EventTypeDelete {
				s.mu.Lock()
				if e := s.byKey[key]; e != nil && e.rev < ev.Kv.ModRevision && !e.local {
					delete(s.byKey, key)
				}
				s.mu.Unlock()
				return
			}
			if v, ok := decodeSession(ev.Kv); ok {
				s.store(key, v, ev.Kv.ModRevision)
			}
		},
	}
}

// leaseBuckets shares one lease among all bindings expiring in the same bucket of time, so
// etcd holds few leases however many sessions there are.
type leaseBuckets struct {
	c     *Cluster
	mu    sync.Mutex
	byEnd map[int64]clientv3.LeaseID // bucket end, Unix seconds → lease
}

const leaseBucket = 30 * time.Second

// forExpiry returns a lease that lasts until at least a bucket past exp.
func (l *leaseBuckets) forExpiry(ctx context.Context, exp time.Time) (clientv3.LeaseID, error) {
	end := exp.Truncate(leaseBucket).Add(2 * leaseBucket).Unix()
	l.mu.Lock()
	id, ok := l.byEnd[end]
	l.mu.Unlock()
	if ok {
		return id, nil
	}
	l.c.writes.Add(1)
	g, err := l.c.cli.Grant(ctx, end-time.Now().Unix())
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	if prior, ok := l.byEnd[end]; ok {
		l.mu.Unlock()
		return prior, nil // a concurrent grant won; the extra lease expires unused
	}
	l.byEnd[end] = g.ID
	l.mu.Unlock()
	return g.ID, nil
}

func (l *leaseBuckets) drop(id clientv3.LeaseID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for end, have := range l.byEnd {
		if have == id {
			delete(l.byEnd, end)
		}
	}
}

func (l *leaseBuckets) forget(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for end := range l.byEnd {
		if end < now.Unix() {
			delete(l.byEnd, end)
		}
	}
}

var _ cluster.SessionAdmin = (*Sessions)(nil)

// Lookup implements cluster.SessionAdmin from the local mirror.
func (s *Sessions) Lookup(now time.Time, key string) (cluster.Binding, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.byKey[key]
	if e == nil || !now.Before(e.expires) {
		return cluster.Binding{}, false
	}
	return cluster.Binding{Key: key, Endpoint: e.endpoint, Expires: e.expires}, true
}

// Delete implements cluster.SessionAdmin: it deletes the binding in etcd (every replica's
// mirror follows) and here.
func (s *Sessions) Delete(key string) error {
	ctx, cancel := s.c.request(context.Background())
	defer cancel()
	s.c.writes.Add(1)
	_, err := s.c.cli.Delete(ctx, s.prefix()+key)
	if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.byKey, key)
	s.mu.Unlock()
	return nil
}
