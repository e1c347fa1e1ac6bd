package etcd

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard-ai/switchyard/cluster"
)

// Drains implements cluster.Drains in etcd: a drained endpoint is a key under the prefix's
// drains/, named by its pool and endpoint, with no lease, so that a drain outlives every
// replica until an operator undrains it. Each replica mirrors the keys into memory.
type Drains struct {
	c        *Cluster
	mu       sync.Mutex
	drained  map[string]bool  // by drainKey
	revs     map[string]int64 // etcd revision of the last change applied, by drainKey
	onChange func()
}

var _ cluster.Drains = (*Drains)(nil)

func newDrains(c *Cluster) *Drains {
	return &Drains{c: c, drained: map[string]bool{}, revs: map[string]int64{}}
}

func (d *Drains) prefix() string { return d.c.key("drains") + "/" }

// drainKey names an endpoint under the prefix; both parts are escaped, so neither can hold
// the separator.
func drainKey(pool, endpoint string) string {
	return url.PathEscape(pool) + "/" + url.PathEscape(endpoint)
}

// Drained implements cluster.Drains.
func (d *Drains) Drained(pool, endpoint string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.drained[drainKey(pool, endpoint)]
}

// SetDrained implements cluster.Drains: it writes the drain to etcd, and on success to the
// local mirror at once (the watch brings it to the other replicas). While etcd is
// unreachable it fails and nothing changes.
func (d *Drains) SetDrained(ctx context.Context, pool, endpoint string, drained bool) error {
	ctx, cancel := d.c.request(ctx)
	defer cancel()
	k := drainKey(pool, endpoint)
	d.c.writes.Add(1)
	var rev int64
	var err error
	if drained {
		var resp *clientv3.PutResponse
		if resp, err = d.c.cli.Put(ctx, d.prefix()+k, time.Now().UTC().Format(time.RFC3339)); err == nil {
			rev = resp.Header.Revision
		}
	} else {
		var resp *clientv3.DeleteResponse
		if resp, err = d.c.cli.Delete(ctx, d.prefix()+k); err == nil {
			rev = resp.Header.Revision
		}
	}
	d.c.health.op(err, time.Now())
	if err != nil {
		return err
	}
	d.set(k, drained, rev)
	return nil
}

// set applies one change made at revision rev, unless a later one was applied already (the
// watch may bring another replica's newer change before this replica's own write returns).
func (d *Drains) set(k string, drained bool, rev int64) {
	d.update(func(m map[string]bool) {
		if d.revs[k] > rev {
			return
		}
		d.revs[k] = rev
		if drained {
			m[k] = true
		} else {
			delete(m, k)
		}
	})
}

// OnChange implements cluster.Drains.
func (d *Drains) OnChange(f func()) {
	d.mu.Lock()
	d.onChange = f
	d.mu.Unlock()
}

// update edits the set and calls the change function when it changed.
func (d *Drains) update(edit func(map[string]bool)) {
	d.mu.Lock()
	before := len(d.drained)
	snapshot := make(map[string]bool, before)
	for k := range d.drained {
		snapshot[k] = true
	}
	edit(d.drained)
	changed := len(d.drained) != before
	for k := range d.drained {
		changed = changed || !snapshot[k]
	}
	f := d.onChange
	d.mu.Unlock()
	if changed && f != nil {
		f()
	}
}

func (d *Drains) mirror() *mirror {
	prefix := d.prefix()
	return &mirror{name: "drains", cli: d.c.cli, prefix: prefix, retry: time.Second, reqTTL: d.c.cfg.RequestTimeout,
		reset: func(kvs []*mvccpb.KeyValue) {
			d.update(func(m map[string]bool) {
				clear(m)
				clear(d.revs)
				for _, kv := range kvs {
					k := strings.TrimPrefix(string(kv.Key), prefix)
					m[k], d.revs[k] = true, kv.ModRevision
				}
			})
		},
		apply: func(ev *clientv3.Event) {
			d.set(strings.TrimPrefix(string(ev.Kv.Key), prefix), ev.Type != clientv3.EventTypeDelete, ev.Kv.ModRevision)
		},
	}
}
