package cluster

import "context"

// Drains holds which endpoints operators have taken out of rotation, for every replica: a
// drain set through one replica reaches all of them, and a replica that starts later finds
// it. Endpoints are named by pool and endpoint name.
type Drains interface {
	// Drained reports whether the endpoint is drained, from local state.
	Drained(pool, endpoint string) bool
	// SetDrained drains the endpoint or returns it to rotation. When it returns nil, Drained
	// on this replica already reports the change.
	SetDrained(ctx context.Context, pool, endpoint string, drained bool) error
	// OnChange sets the function called, on a goroutine of the implementation's, after the
	// set of drained endpoints changed. Set it before the first SetDrained.
	OnChange(f func())
}
