package etcd

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard-ai/switchyard/cluster"
)

// membership registers this replica under a lease it keeps alive, and mirrors the live set.
type membership struct {
	c     *Cluster
	self  cluster.Member
	mu    sync.RWMutex
	byKey map[string]cluster.Member
	lease clientv3.LeaseID
}

func newMembership(c *Cluster) *membership {
	return &membership{c: c, byKey: map[string]cluster.Member{},
		self: cluster.Member{ID: c.id, Addr: c.cfg.Addr, AdminAddr: c.cfg.AdminAddr, Since: time.Now().UTC()}}
}

func (m *membership) prefix() string { return m.c.key("members") + "/" }

// register grants a lease and puts this replica's record under it.
func (m *membership) register(ctx context.Context) error {
	ttl := int64(max(2, m.c.cfg.MemberTTL/time.Second))
	m.c.writes.Add(2)
	g, err := m.c.cli.Grant(ctx, ttl)
	if err != nil {
		return err
	}
	if _, err := m.c.cli.Put(ctx, m.prefix()+m.self.ID, encode(m.self), clientv3.WithLease(g.ID)); err != nil {
		return err
	}
	m.lease = g.ID
	return nil
}

// keepAlive renews the lease until ctx ends; when the lease is lost (etcd was away longer
// than its TTL) it registers again.
func (m *membership) keepAlive(ctx context.Context) {
	for ctx.Err() == nil {
		ch, err := m.c.cli.KeepAlive(ctx, m.lease)
		if err == nil {
			for range ch {
			}
		}
		if ctx.Err() != nil {
			return
		}
		for ctx.Err() == nil {
			rctx, cancel := m.c.request(ctx)
			err := m.register(rctx)
			cancel()
			m.c.health.op(err, time.Now())
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// leave deletes the record and revokes the lease.
func (m *membership) leave(ctx context.Context) {
	if m.lease != 0 {
		m.c.writes.Add(1)
		_, _ = m.c.cli.Revoke(ctx, m.lease)
	}
}

func (m *membership) mirror() *mirror {
	return &mirror{name: "members", cli: m.c.cli, prefix: m.prefix(), retry: time.Second, reqTTL: m.c.cfg.RequestTimeout,
		reset: func(kvs []*mvccpb.KeyValue) {
			next := map[string]cluster.Member{}
			for _, kv := range kvs {
				if mem, ok := decodeMember(kv); ok {
					next[string(kv.Key)] = mem
				}
			}
			m.mu.Lock()
			m.byKey = next
			m.mu.Unlock()
		},
		apply: func(ev *clientv3.Event) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if ev.Type == clientv3.EventTypeDelete {
				delete(m.byKey, string(ev.Kv.Key))
				return
			}
			if mem, ok := decodeMember(ev.Kv); ok {
				m.byKey[string(ev.Kv.Key)] = mem
			}
		},
	}
}

func decodeMember(kv *mvccpb.KeyValue) (cluster.Member, bool) {
	var mem cluster.Member
	if err := json.Unmarshal(kv.Value, &mem); err != nil || mem.ID == "" {
		return mem, false
	}
	return mem, true
}

// list returns the live members sorted by ID, this replica always among them.
func (m *membership) list() []cluster.Member {
	m.mu.RLock()
	out := make([]cluster.Member, 0, len(m.byKey)+1)
	self := false
	for _, mem := range m.byKey {
		out = append(out, mem)
		self = self || mem.ID == m.self.ID
	}
	m.mu.RUnlock()
	if !self {
		out = append(out, m.self)
	}
	slices.SortFunc(out, func(a, b cluster.Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// count returns how many replicas are live, this one included.
func (m *membership) count() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := len(m.byKey)
	if _, ok := m.byKey[m.prefix()+m.self.ID]; !ok {
		n++
	}
	return n
}
