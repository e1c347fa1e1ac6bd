package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard-ai/switchyard/cluster"
)

// Counters is a cluster.Counters shared by replicas through etcd. Each replica counts its own
// usage locally and, once per sync interval, writes its running totals for every window it
// touched in one transaction: one key per replica and window, holding every counter of that
// window. Every replica watches those keys and sums the other replicas' totals, so it admits
// against the global usage as of the last sync, without waiting on etcd.
//
// A request admitted on one replica is invisible to the others for at most the sync interval
// plus the commit-and-watch delay d, so across replicas a counter can overshoot its Max by at
// most what all replicas admit in that time: λ·(T + d) for a demand of λ per second
// (docs/cluster.md).
//
// While etcd is unreachable the totals cannot be exchanged. Each replica then freezes what it
// knew (others' totals, its own) and admits only its share of what remained, (Max − known)
// ÷ live replicas, so together they stay within the limit; when etcd returns, the running
// totals, which include what was admitted meanwhile, are written again and the shares end.
type Counters struct {
	c      *Cluster
	mu     sync.Mutex
	groups map[groupID]*group
	// lastFlush is when the last successful flush took its snapshot: usage admitted since is
	// in the next one.
	lastFlush time.Time
	staleness stalenessTracker
}

// usageValue is one replica's totals for one window, as stored in etcd. From and At bound
// when the usage it adds since the replica's previous flush was admitted, so a reader can
// tell how stale its view of that replica was: at most its arrival time minus From.
type usageValue struct {
	From   int64            `json:"from_ms"` // previous snapshot, Unix milliseconds
	At     int64            `json:"at_ms"`   // this snapshot
	Totals map[string]int64 `json:"totals"`
}

// groupID is one window of one length: all counters in it share a key in etcd.
type groupID struct {
	window time.Duration
	start  int64 // Unix nanoseconds
}

type group struct {
	end      time.Time
	counters map[string]*counter
	others   map[string]map[string]int64 // replica → counter key → its total
	dirty    bool
	version  uint64 // bumped by every local change; a flush clears dirty only if unchanged
	lease    clientv3.LeaseID
}

type counter struct {
	local  int64 // this replica's total
	others int64 // sum of other replicas' totals, as last watched
	// In degraded mode: the epoch the share was taken in, and what of it is left.
	epoch     uint64
	shareLeft int64
}

var _ cluster.Counters = (*Counters)(nil)

func newCounters(c *Cluster) *Counters {
	return &Counters{c: c, groups: map[groupID]*group{}}
}

func (cs *Counters) prefix() string { return cs.c.key("limits") + "/" }

func (cs *Counters) groupKey(id groupID, replica string) string {
	return cs.prefix() + strconv.FormatInt(int64(id.window/time.Millisecond), 10) + "/" + strconv.FormatInt(id.start, 10) + "/" + replica
}

func parseGroupKey(rest string) (groupID, string, bool) {
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 {
		return groupID{}, "", false
	}
	w, err1 := strconv.ParseInt(parts[0], 10, 64)
	st, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || w <= 0 {
		return groupID{}, "", false
	}
	return groupID{window: time.Duration(w) * time.Millisecond, start: st}, parts[2], true
}

// groupFor returns the group of ch's window, creating it; nil when the window has ended.
func (cs *Counters) groupFor(now time.Time, window time.Duration, start time.Time) *group {
	end := start.Add(window)
	if window <= 0 || !now.Before(end) {
		return nil
	}
	id := groupID{window: window, start: start.UnixNano()}
	g := cs.groups[id]
	if g == nil {
		g = &group{end: end, counters: map[string]*counter{}, others: map[string]map[string]int64{}}
		cs.groups[id] = g
	}
	return g
}

func (g *group) counter(key string) *counter {
	c := g.counters[key]
	if c == nil {
		c = &counter{}
		for _, totals := range g.others {
			c.others += totals[key]
		}
		g.counters[key] = c
	}
	return c
}

// TryAdd implements cluster.Counters. It answers from local state.
func (cs *Counters) TryAdd(now time.Time, charges []cluster.Charge) (bool, []int64) {
	degraded, epoch := cs.c.Degraded(), cs.c.health.epoch.Load()
	members := int64(cs.c.members.count())
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.prune(now)
	ctrs := make([]*counter, len(charges))
	found := make([]int64, len(charges))
	for i, ch := range charges {
		if g := cs.groupFor(now, ch.Window, ch.WindowStart); g != nil {
			ctrs[i] = g.counter(ch.Key)
			found[i] = ctrs[i].others + ctrs[i].local
		}
	}
	after := make([]int64, len(charges))
	for i, ch := range charges {
		sum := int64(0) // a counter charged twice in one call: its limit applies to the sum
		for j, other := range charges {
			if ctrs[j] == ctrs[i] {
				sum += other.Amount
			}
		}
		after[i] = found[i] + sum
		if after[i] > ch.Max {
			return false, found
		}
		if c := ctrs[i]; degraded && c != nil {
			if c.epoch != epoch {
				c.epoch, c.shareLeft = epoch, max(0, ch.Max-found[i])/members
			}
			if sum > c.shareLeft {
				// Report the share as the limit's remaining quota, which is what this replica
				// may still admit.
				found[i] = max(found[i], ch.Max-c.shareLeft)
				return false, found
			}
		}
	}
	for i, ch := range charges {
		cs.add(now, ctrs[i], ch, degraded, epoch)
	}
	return true, after
}

// Add implements cluster.Counters.
func (cs *Counters) Add(now time.Time, charges []cluster.Charge) {
	degraded, epoch := cs.c.Degraded(), cs.c.health.epoch.Load()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.prune(now)
	for _, ch := range charges {
		if g := cs.groupFor(now, ch.Window, ch.WindowStart); g != nil {
			cs.add(now, g.counter(ch.Key), ch, degraded, epoch)
		}
	}
}

func (cs *Counters) add(now time.Time, c *counter, ch cluster.Charge, degraded bool, epoch uint64) {
	if c == nil {
		return
	}
	c.local += ch.Amount
	if degraded && c.epoch == epoch {
		c.shareLeft -= ch.Amount
	}
	g := cs.groups[groupID{window: ch.Window, start: ch.WindowStart.UnixNano()}]
	g.dirty = true
	g.version++
}

// prune forgets windows that have ended.
func (cs *Counters) prune(now time.Time) {
	for id, g := range cs.groups {
		if !now.Before(g.end) {
			delete(cs.groups, id)
		}
	}
}

// Len returns how many counters of current windows this replica holds.
func (cs *Counters) Len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	n := 0
	for _, g := range cs.groups {
		n += len(g.counters)
	}
	return n
}

func (cs *Counters) markAllDirty() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, g := range cs.groups {
		g.dirty = true
		g.version++
	}
}

// syncLoop flushes once per sync interval. When there is nothing to flush it still checks,
// once a second, that etcd answers, so the mode reflects reachability.
func (cs *Counters) syncLoop(ctx context.Context) {
	t := time.NewTicker(cs.c.cfg.SyncInterval)
	defer t.Stop()
	lastCheck := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wrote, err := cs.flush(ctx)
		now := time.Now()
		if !wrote && err == nil && now.Sub(lastCheck) < time.Second && !cs.c.Degraded() {
			continue
		}
		if !wrote && err == nil {
			rctx, cancel := cs.c.request(ctx)
			_, err = cs.c.cli.Get(rctx, cs.c.members.prefix()+cs.c.id, clientv3.WithCountOnly())
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		lastCheck = now
		cs.c.health.op(err, now)
	}
}

type flushItem struct {
	id      groupID
	g       *group
	version uint64
	value   string
}

// flush writes this replica's totals of every changed window, in one transaction (split in
// chunks of etcd's default 128 operations). It reports whether it wrote anything.
func (cs *Counters) flush(ctx context.Context) (bool, error) {
	now := time.Now()
	cs.mu.Lock()
	cs.prune(now)
	from := cs.lastFlush
	if from.IsZero() {
		from = now
	}
	var items []flushItem
	for id, g := range cs.groups {
		if !g.dirty {
			continue
		}
		totals := make(map[string]int64, len(g.counters))
		for k, c := range g.counters {
			totals[k] = c.local
		}
		items = append(items, flushItem{id: id, g: g, version: g.version,
			value: encode(usageValue{From: from.UnixMilli(), At: now.UnixMilli(), Totals: totals})})
	}
	if len(items) == 0 {
		cs.lastFlush = now // nothing admitted before now is waiting to be flushed
	}
	cs.mu.Unlock()
	if len(items) == 0 {
		return false, nil
	}
	rctx, cancel := cs.c.request(ctx)
	defer cancel()
	defer func() {
		if len(items) == 0 {
			cs.mu.Lock()
			cs.lastFlush = now
			cs.mu.Unlock()
		}
	}()
	for len(items) > 0 {
		chunk := items[:min(len(items), 128)]
		items = items[len(chunk):]
		ops := make([]clientv3.Op, 0, len(chunk))
		for _, it := range chunk {
			lease, err := cs.lease(rctx, it.g)
			if err != nil {
				return true, err
			}
			ops = append(ops, clientv3.OpPut(cs.groupKey(it.id, cs.c.id), it.value, clientv3.WithLease(lease)))
		}
		cs.c.writes.Add(1)
		if _, err := cs.c.cli.Txn(rctx).Then(ops...).Commit(); err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				cs.mu.Lock()
				for _, it := range chunk {
					it.g.lease = 0
				}
				cs.mu.Unlock()
			}
			return true, err
		}
		cs.mu.Lock()
		for _, it := range chunk {
			if it.g.version == it.version {
				it.g.dirty = false
			}
		}
		cs.mu.Unlock()
	}
	return true, nil
}

// lease returns the group's lease, granting one that outlives its window by a minute.
func (cs *Counters) lease(ctx context.Context, g *group) (clientv3.LeaseID, error) {
	cs.mu.Lock()
	id := g.lease
	cs.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	ttl := int64(time.Until(g.end)/time.Second) + 60
	cs.c.writes.Add(1)
	resp, err := cs.c.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, err
	}
	cs.mu.Lock()
	g.lease = resp.ID
	cs.mu.Unlock()
	return resp.ID, nil
}

func (cs *Counters) mirror() *mirror {
	prefix := cs.prefix()
	return &mirror{name: "limits", cli: cs.c.cli, prefix: prefix, retry: 200 * time.Millisecond, reqTTL: cs.c.cfg.RequestTimeout,
		reset: func(kvs []*mvccpb.KeyValue) {
			cs.mu.Lock()
			defer cs.mu.Unlock()
			now := time.Now()
			for _, g := range cs.groups {
				g.others = map[string]map[string]int64{}
				for _, c := range g.counters {
					c.others = 0
				}
			}
			for _, kv := range kvs {
				cs.applyTotals(now, strings.TrimPrefix(string(kv.Key), prefix), kv.Value, true)
			}
		},
		apply: func(ev *clientv3.Event) {
			cs.mu.Lock()
			defer cs.mu.Unlock()
			rest := strings.TrimPrefix(string(ev.Kv.Key), prefix)
			if ev.Type == clientv3.EventTypeDelete {
				cs.applyTotals(time.Now(), rest, nil, false)
				return
			}
			cs.applyTotals(time.Now(), rest, ev.Kv.Value, false)
		},
	}
}

// applyTotals replaces a replica's totals for one window (nil value: removes them). This
// replica's own totals, met when listing after a restart under the same ID, become its
// local counts so usage survives the restart. cs.mu is held.
func (cs *Counters) applyTotals(now time.Time, rest string, value []byte, listing bool) {
	id, replica, ok := parseGroupKey(rest)
	if !ok {
		return
	}
	var totals map[string]int64
	if value != nil {
		var v usageValue
		if json.Unmarshal(value, &v) != nil {
			return
		}
		totals = v.Totals
		if !listing && replica != cs.c.id && v.From > 0 {
			cs.staleness.observe(now, now.Sub(time.UnixMilli(v.From)))
		}
	}
	g := cs.groupFor(now, id.window, time.Unix(0, id.start))
	if g == nil {
		return
	}
	if replica == cs.c.id {
		if listing {
			for k, v := range totals {
				if c := g.counter(k); c.local < v {
					c.local = v
				}
			}
		}
		return
	}
	old := g.others[replica]
	for k, v := range old {
		if c := g.counters[k]; c != nil {
			c.others -= v
		}
	}
	if totals == nil {
		delete(g.others, replica)
		return
	}
	g.others[replica] = totals
	for k, v := range totals {
		if c := g.counters[k]; c != nil {
			c.others += v
		}
	}
}
