package memory

import (
	"container/list"
	"sync"
	"time"

	"github.com/switchyard-ai/switchyard/cluster"
)

// Sessions is an in-process cluster.Sessions: a map of bindings with per-binding expiry and a
// least-recently-used bound on their number. Safe for concurrent use.
type Sessions struct {
	mu    sync.Mutex
	max   int
	byKey map[string]*list.Element
	lru   list.List // front: most recently used
}

type binding struct {
	key, endpoint string
	ttl           time.Duration
	expires       time.Time
}

var _ cluster.Sessions = (*Sessions)(nil)

// NewSessions keeps at most maxBindings bindings (default 100,000 when ≤ 0), dropping the
// least recently used beyond that.
func NewSessions(maxBindings int) *Sessions {
	if maxBindings <= 0 {
		maxBindings = 100_000
	}
	return &Sessions{max: maxBindings, byKey: map[string]*list.Element{}}
}

// Get implements cluster.Sessions.
func (s *Sessions) Get(now time.Time, key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byKey[key]
	if !ok {
		return "", false
	}
	b := e.Value.(*binding)
	if now.After(b.expires) {
		s.lru.Remove(e)
		delete(s.byKey, key)
		return "", false
	}
	b.expires = now.Add(b.ttl)
	s.lru.MoveToFront(e)
	return b.endpoint, true
}

// Bind implements cluster.Sessions. In one process there is no race to lose beyond the mutex:
// a binding that is live and not prev stays.
func (s *Sessions) Bind(now time.Time, key, endpoint, prev string, ttl time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byKey[key]; ok {
		b := e.Value.(*binding)
		if !now.After(b.expires) && b.endpoint != prev && b.endpoint != endpoint {
			b.expires = now.Add(b.ttl)
			s.lru.MoveToFront(e)
			return b.endpoint
		}
		b.endpoint, b.ttl, b.expires = endpoint, ttl, now.Add(ttl)
		s.lru.MoveToFront(e)
		return endpoint
	}
	s.byKey[key] = s.lru.PushFront(&binding{key: key, endpoint: endpoint, ttl: ttl, expires: now.Add(ttl)})
	for s.lru.Len() > s.max {
		old := s.lru.Back()
		s.lru.Remove(old)
		delete(s.byKey, old.Value.(*binding).key)
	}
	return endpoint
}

// Len reports how many bindings are held.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

var _ cluster.SessionAdmin = (*Sessions)(nil)

// Lookup implements cluster.SessionAdmin.
func (s *Sessions) Lookup(now time.Time, key string) (cluster.Binding, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byKey[key]
	if !ok || now.After(e.Value.(*binding).expires) {
		return cluster.Binding{}, false
	}
	b := e.Value.(*binding)
	return cluster.Binding{Key: key, Endpoint: b.endpoint, Expires: b.expires}, true
}

// Delete implements cluster.SessionAdmin.
func (s *Sessions) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byKey[key]; ok {
		s.lru.Remove(e)
		delete(s.byKey, key)
	}
	return nil
}
