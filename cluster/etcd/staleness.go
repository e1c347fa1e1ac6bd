package etcd

import (
	"sync"
	"time"
)

// stalenessTracker keeps the largest staleness seen in the current and the previous minute:
// how long usage admitted on another replica took to reach this one (the rest of that
// replica's sync interval, its flush, etcd's commit and the watch). The over-admission bound
// of a limit is its admission rate times this.
type stalenessTracker struct {
	mu       sync.Mutex
	minute   int64 // Unix minute of cur
	cur, prv time.Duration
}

func (s *stalenessTracker) observe(now time.Time, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roll(now)
	s.cur = max(s.cur, d)
}

// max returns the largest staleness seen in the last one to two minutes.
func (s *stalenessTracker) max(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roll(now)
	return max(s.cur, s.prv)
}

func (s *stalenessTracker) roll(now time.Time) {
	m := now.Unix() / 60
	switch {
	case m == s.minute:
	case m == s.minute+1:
		s.prv, s.cur, s.minute = s.cur, 0, m
	default:
		s.prv, s.cur, s.minute = 0, 0, m
	}
}
