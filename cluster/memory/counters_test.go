package memory_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-ai/switchyard/cluster"
	"github.com/switchyard-ai/switchyard/cluster/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// charge is a one-minute-window charge in the window starting at t0.
func charge(key string, max, amount int64) cluster.Charge {
	return cluster.Charge{Key: key, Window: time.Minute, WindowStart: t0, Max: max, Amount: amount}
}

func TestTryAdd(t *testing.T) {
	tests := []struct {
		name       string
		before     []cluster.Charge // added unchecked first
		charges    []cluster.Charge
		wantOK     bool
		wantValues []int64
		// wantAfter are the counters' values after the call, read by a zero charge each.
		wantAfter []int64
	}{
		{
			name:       "empty counters admit up to max",
			charges:    []cluster.Charge{charge("a", 10, 10)},
			wantOK:     true,
			wantValues: []int64{10},
			wantAfter:  []int64{10},
		},
		{
			name:       "one over max is refused",
			charges:    []cluster.Charge{charge("a", 10, 11)},
			wantOK:     false,
			wantValues: []int64{0},
			wantAfter:  []int64{0},
		},
		{
			name:       "all counters charged when all fit",
			before:     []cluster.Charge{charge("a", 0, 3), charge("b", 0, 5)},
			charges:    []cluster.Charge{charge("a", 10, 1), charge("b", 10, 5)},
			wantOK:     true,
			wantValues: []int64{4, 10},
			wantAfter:  []int64{4, 10},
		},
		{
			name:       "none charged when one does not fit",
			before:     []cluster.Charge{charge("a", 0, 3), charge("b", 0, 6)},
			charges:    []cluster.Charge{charge("a", 10, 1), charge("b", 10, 5)},
			wantOK:     false,
			wantValues: []int64{3, 6},
			wantAfter:  []int64{3, 6},
		},
		{
			name:       "counter already over max refuses a zero amount",
			before:     []cluster.Charge{charge("a", 0, 12)},
			charges:    []cluster.Charge{charge("a", 10, 0)},
			wantOK:     false,
			wantValues: []int64{12},
			wantAfter:  []int64{12},
		},
		{
			name:       "same counter twice counts both amounts",
			charges:    []cluster.Charge{charge("a", 10, 6), charge("a", 10, 5)},
			wantOK:     false,
			wantValues: []int64{0, 0},
			wantAfter:  []int64{0, 0},
		},
		{
			name:       "same counter twice within max",
			charges:    []cluster.Charge{charge("a", 10, 6), charge("a", 10, 4)},
			wantOK:     true,
			wantValues: []int64{10, 10},
			wantAfter:  []int64{10, 10},
		},
		{
			name:   "windows of one key are separate counters",
			before: []cluster.Charge{charge("a", 0, 10)},
			charges: []cluster.Charge{{
				Key: "a", Window: time.Minute, WindowStart: t0.Add(time.Minute), Max: 10, Amount: 10,
			}},
			wantOK:     true,
			wantValues: []int64{10},
			wantAfter:  []int64{10},
		},
		{
			name:       "negative amount makes room",
			before:     []cluster.Charge{charge("a", 0, 10)},
			charges:    []cluster.Charge{charge("a", 10, -4)},
			wantOK:     true,
			wantValues: []int64{6},
			wantAfter:  []int64{6},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := memory.NewCounters()
			now := t0.Add(30 * time.Second)
			c.Add(now, tt.before)
			ok, values := c.TryAdd(now, tt.charges)
			if ok != tt.wantOK || !slices.Equal(values, tt.wantValues) {
				t.Errorf("TryAdd = %v, %v; want %v, %v", ok, values, tt.wantOK, tt.wantValues)
			}
			probe := make([]cluster.Charge, len(tt.charges))
			for i, ch := range tt.charges {
				ch.Amount, ch.Max = 0, 1<<62
				probe[i] = ch
			}
			if _, after := c.TryAdd(now, probe); !slices.Equal(after, tt.wantAfter) {
				t.Errorf("values after = %v; want %v", after, tt.wantAfter)
			}
		})
	}
}

func TestAddIsUnchecked(t *testing.T) {
	c := memory.NewCounters()
	c.Add(t0, []cluster.Charge{charge("a", 5, 7)})
	c.Add(t0, []cluster.Charge{charge("a", 5, 4)})
	if ok, v := c.TryAdd(t0, []cluster.Charge{charge("a", 100, 0)}); !ok || v[0] != 11 {
		t.Errorf("TryAdd = %v, %v; want true, [11]", ok, v)
	}
}

func TestEndedWindows(t *testing.T) {
	c := memory.NewCounters()
	c.Add(t0.Add(59*time.Second), []cluster.Charge{charge("a", 10, 10)})
	if ok, _ := c.TryAdd(t0.Add(59*time.Second), []cluster.Charge{charge("a", 10, 1)}); ok {
		t.Fatal("full counter admitted before its window ended")
	}

	// At the window's end its counter is gone; settlements to it are dropped.
	end := t0.Add(time.Minute)
	c.Add(end, []cluster.Charge{charge("a", 10, 5)})
	if n := c.Len(); n != 0 {
		t.Errorf("Len after the window ended = %d; want 0", n)
	}
	// A late check against the ended window sees an empty counter and stores nothing.
	if ok, v := c.TryAdd(end, []cluster.Charge{charge("a", 10, 3)}); !ok || v[0] != 3 {
		t.Errorf("TryAdd on ended window = %v, %v; want true, [3]", ok, v)
	}
	if n := c.Len(); n != 0 {
		t.Errorf("Len after charging an ended window = %d; want 0", n)
	}
}

func TestPruneBoundsMemory(t *testing.T) {
	tests := []struct {
		name    string
		windows []time.Duration
	}{
		{"one window length", []time.Duration{time.Second}},
		{"mixed window lengths", []time.Duration{time.Second, time.Minute, 10 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const keys = 20
			c := memory.NewCounters()
			maxLen := 0
			var charges []cluster.Charge
			for _, w := range tt.windows {
				for k := range keys {
					charges = append(charges, cluster.Charge{Key: fmt.Sprintf("k%d/%v", k, w), Window: w, Max: 1 << 40, Amount: 1})
				}
			}
			// An hour of traffic, one step a second, every key charged every step.
			for step := range 3600 {
				now := t0.Add(time.Duration(step) * time.Second)
				for i := range charges {
					charges[i].WindowStart = now.Truncate(charges[i].Window)
				}
				if ok, _ := c.TryAdd(now, charges); !ok {
					t.Fatalf("step %d refused", step)
				}
				maxLen = max(maxLen, c.Len())
			}
			// Each step prunes before adding, so only the current windows' counters remain.
			if want := keys * len(tt.windows); maxLen != want {
				t.Errorf("most counters held = %d; want %d", maxLen, want)
			}
			c.Add(t0.Add(24*time.Hour), nil)
			if n := c.Len(); n != 0 {
				t.Errorf("Len after every window ended = %d; want 0", n)
			}
		})
	}
}

func TestTryAddConcurrent(t *testing.T) {
	const (
		goroutines = 32
		each       = 200
		max        = 1000
	)
	c := memory.NewCounters()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				// Two counters per call: an admission must charge both or neither.
				if ok, _ := c.TryAdd(t0, []cluster.Charge{charge("a", max, 1), charge("b", 2*max, 2)}); ok {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != max {
		t.Errorf("admitted %d; want %d", n, max)
	}
	_, v := c.TryAdd(t0, []cluster.Charge{charge("a", 1<<40, 0), charge("b", 1<<40, 0)})
	if !slices.Equal(v, []int64{max, 2 * max}) {
		t.Errorf("values = %v; want [%d %d]", v, max, 2*max)
	}
}
