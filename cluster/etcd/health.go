package etcd

import (
	"sync"
	"sync/atomic"
	"time"
)

// health decides whether etcd is reachable from the results of background exchanges and
// the state of the watches. The replica is degraded while the latest exchange failed or any
// watch is down; it becomes shared again once both recover.
type health struct {
	mu        sync.Mutex
	opErr     error
	lastOK    time.Time
	since     time.Time // when it became degraded
	watchDown map[string]error
	degraded  atomic.Bool
	// epoch counts entries into degraded mode, so counters know when to take a fresh share.
	epoch    atomic.Uint64
	onChange func(degraded bool, reason string)
}

type healthSnapshot struct {
	degraded bool
	reason   string
	since    time.Time
	lastOK   time.Time
}

// op records the result of an exchange with etcd.
func (h *health) op(err error, now time.Time) {
	h.mu.Lock()
	h.opErr = err
	if err == nil {
		h.lastOK = now
	}
	h.settle(now)
}

// watch records whether the named watch is up (err nil) or down.
func (h *health) watch(name string, err error) {
	h.mu.Lock()
	if h.watchDown == nil {
		h.watchDown = map[string]error{}
	}
	if err == nil {
		delete(h.watchDown, name)
	} else {
		h.watchDown[name] = err
	}
	h.settle(time.Now())
}

// settle recomputes the mode with h.mu held, releases it and reports a change.
func (h *health) settle(now time.Time) {
	reason := ""
	if h.opErr != nil {
		reason = h.opErr.Error()
	}
	for name, err := range h.watchDown {
		if reason == "" {
			reason = name + " watch: " + err.Error()
		}
	}
	degraded := reason != ""
	changed := degraded != h.degraded.Load()
	if changed {
		if degraded {
			h.since = now
			h.epoch.Add(1)
		}
		h.degraded.Store(degraded)
	}
	cb := h.onChange
	h.mu.Unlock()
	if changed && cb != nil {
		cb(degraded, reason)
	}
}

func (h *health) snapshot() healthSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := healthSnapshot{degraded: h.degraded.Load(), since: h.since, lastOK: h.lastOK}
	if s.degraded {
		if h.opErr != nil {
			s.reason = h.opErr.Error()
		}
		for name, err := range h.watchDown {
			if s.reason == "" {
				s.reason = name + " watch: " + err.Error()
			}
		}
	}
	return s
}
