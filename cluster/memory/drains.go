package memory

import (
	"context"
	"sync"
)

// Drains implements cluster.Drains for a single replica.
type Drains struct {
	mu       sync.Mutex
	drained  map[[2]string]bool
	onChange func()
}

// NewDrains returns an empty set of drained endpoints.
func NewDrains() *Drains { return &Drains{drained: map[[2]string]bool{}} }

// Drained implements cluster.Drains.
func (d *Drains) Drained(pool, endpoint string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.drained[[2]string{pool, endpoint}]
}

// SetDrained implements cluster.Drains; it calls the change function before it returns.
func (d *Drains) SetDrained(_ context.Context, pool, endpoint string, drained bool) error {
	d.mu.Lock()
	k := [2]string{pool, endpoint}
	changed := d.drained[k] != drained
	if drained {
		d.drained[k] = true
	} else {
		delete(d.drained, k)
	}
	f := d.onChange
	d.mu.Unlock()
	if changed && f != nil {
		f()
	}
	return nil
}

// OnChange implements cluster.Drains.
func (d *Drains) OnChange(f func()) {
	d.mu.Lock()
	d.onChange = f
	d.mu.Unlock()
}
