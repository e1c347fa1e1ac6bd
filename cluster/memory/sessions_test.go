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
	s.Bind(t0, "conv", "ep-a", "", time.Minute)
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
	if got := s.Bind(t0, "conv", "ep-a", "", time.Minute); got != "ep-a" {
		t.Fatalf("Bind new = %q", got)
	}
	// A second writer that did not see the binding loses; one moving away from it wins.
	if got := s.Bind(t0, "conv", "ep-c", "", time.Minute); got != "ep-a" {
		t.Errorf("racing Bind = %q, want the first writer's ep-a", got)
	}
	if got := s.Bind(t0, "conv", "ep-b", "ep-a", time.Minute); got != "ep-b" {
		t.Errorf("moving Bind = %q", got)
	}
	if ep, _ := s.Get(t0, "conv"); ep != "ep-b" {
		t.Errorf("moved binding = %q", ep)
	}
	// An expired binding is free to take.
	if got := s.Bind(t0.Add(2*time.Minute), "conv", "ep-d", "", time.Minute); got != "ep-d" {
		t.Errorf("Bind over expired = %q", got)
	}
}

func TestSessionsBounded(t *testing.T) {
	s := memory.NewSessions(100)
	t0 := time.Unix(0, 0)
	for i := range 1000 {
		s.Bind(t0, fmt.Sprint(i), "ep", "", time.Hour)
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

func TestSessionsLookupAndDelete(t *testing.T) {
	s := memory.NewSessions(0)
	t0 := time.Unix(1000, 0)
	s.Bind(t0, "p|conv", "ep-a", "", time.Minute)
	b, ok := s.Lookup(t0.Add(50*time.Second), "p|conv")
	if !ok || b.Endpoint != "ep-a" || !b.Expires.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Lookup = %+v, %v (must not refresh)", b, ok)
	}
	if _, ok := s.Lookup(t0.Add(61*time.Second), "p|conv"); ok {
		t.Error("expired binding looked up")
	}
	s.Delete("p|conv")
	if _, ok := s.Get(t0, "p|conv"); ok {
		t.Error("deleted binding still served")
	}
}
