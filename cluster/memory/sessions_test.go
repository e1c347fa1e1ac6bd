package memory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/cluster/memory"
)

func TestSessionsTTLAndRefresh(t *testing.T) {
	s := memory.NewSessions(0)
	t0 := time.Unix(1000, 0)
	s.Put(t0, "conv", "ep-a", time.Minute)
	if ep, ok := s.Get(t0.Add(50*time.Second), "conv"); !ok || ep != "ep-a" {
		t.Fatalf("Get = %q, %v", ep, ok)
	}
	// The Get at 50s refreshed the TTL: still bound at 100s, gone a minute after the last use.
	if _, ok := s.Get(t0.Add(100*time.Second), "conv"); !ok {
		t.Error("binding expired despite use")
	}
	if _, ok := s.Get(t0.Add(161*time.Second), "conv"); ok {
		t.Error("idle binding did not expire")
	}
	s.Put(t0, "conv", "ep-a", time.Minute)
	s.Put(t0, "conv", "ep-b", time.Minute)
	if ep, _ := s.Get(t0, "conv"); ep != "ep-b" {
		t.Errorf("moved binding = %q", ep)
	}
}

func TestSessionsBounded(t *testing.T) {
	s := memory.NewSessions(100)
	t0 := time.Unix(0, 0)
	for i := range 1000 {
		s.Put(t0, fmt.Sprint(i), "ep", time.Hour)
		if i == 500 {
			s.Get(t0, "0") // not recent enough to survive 500 more
		}
	}
	if s.Len() != 100 {
		t.Errorf("Len = %d, want 100", s.Len())
	}
	if _, ok := s.Get(t0, "999"); !ok {
		t.Error("most recent binding dropped")
	}
	if _, ok := s.Get(t0, "0"); ok {
		t.Error("least recently used binding kept")
	}
}
