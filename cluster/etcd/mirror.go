package etcd

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// mirror keeps a local copy of one key prefix: it lists the prefix, then watches it from the
// next revision; when the watch fails (no leader, compaction, a closed stream) it lists again.
// reset replaces the whole local state; apply folds in one event. Both run on the mirror's
// goroutine only.
type mirror struct {
	name   string
	cli    *clientv3.Client
	prefix string
	reset  func(kvs []*mvccpb.KeyValue)
	apply  func(ev *clientv3.Event)
	rev    int64 // revision of the last list or event
	retry  time.Duration
	reqTTL time.Duration
}

// load lists the prefix once and resets the local state from it.
func (m *mirror) load(ctx context.Context) error {
	resp, err := m.cli.Get(ctx, m.prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	m.reset(resp.Kvs)
	m.rev = resp.Header.Revision
	return nil
}

// run watches until ctx ends, reporting the watch's state to h.
func (m *mirror) run(ctx context.Context, h *health) {
	retry := m.retry
	for ctx.Err() == nil {
		err := m.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		h.watch(m.name, err)
		for ctx.Err() == nil {
			lctx, cancel := context.WithTimeout(ctx, m.reqTTL)
			err = m.load(lctx)
			cancel()
			if err == nil {
				h.watch(m.name, nil)
				break
			}
			h.watch(m.name, err)
			select {
			case <-ctx.Done():
			case <-time.After(retry):
			}
		}
	}
}

// watch follows the prefix from m.rev+1 until the watch fails.
func (m *mirror) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := m.cli.Watch(wctx, m.prefix, clientv3.WithPrefix(), clientv3.WithRev(m.rev+1))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return err
		}
		for _, ev := range resp.Events {
			m.apply(ev)
			m.rev = max(m.rev, ev.Kv.ModRevision)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("watch closed")
}
