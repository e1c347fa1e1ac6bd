package cluster

import "time"

// Member is one live router replica.
type Member struct {
	ID        string    `json:"id"`
	Addr      string    `json:"addr,omitempty"`       // data-plane address it listens on
	AdminAddr string    `json:"admin_addr,omitempty"` // admin address it listens on
	Since     time.Time `json:"since"`                // when it registered
}

// Members reports the live replicas, this one included, as last known. It answers from
// local state.
type Members interface {
	Members() []Member
}

// Mode is how a replica's shared state is held.
type Mode string

// Modes a replica's shared state can be in.
const (
	// ModeLocal: a single replica with in-process state; nothing is shared.
	ModeLocal Mode = "local"
	// ModeShared: the shared store is reachable; sessions and limits are global.
	ModeShared Mode = "shared"
	// ModeDegraded: the shared store is unreachable; sessions fall back to local bindings and
	// each replica enforces its share of every limit's remaining quota.
	ModeDegraded Mode = "degraded"
)

// Status describes the state of a replica's shared state, for /readyz and the admin API.
type Status struct {
	Mode      Mode      `json:"mode"`
	Members   int       `json:"members"`              // live replicas, this one included
	LastSync  time.Time `json:"last_sync,omitzero"`   // last successful exchange with the store
	LastError string    `json:"last_error,omitempty"` // why the store is unreachable, when it is
	Sessions  int       `json:"sessions"`             // bindings held locally
	Counters  int       `json:"counters"`             // limit counters of current windows
	ReplicaID string    `json:"replica_id,omitempty"`
	// Staleness is the longest time, over the last minute or two, that limit usage admitted
	// on another replica took to reach this one; admissions across replicas can overshoot a
	// limit by about their rate times this.
	Staleness  time.Duration `json:"staleness_ns"`
	SinceError time.Time     `json:"since_error,omitzero"` // when the store became unreachable
}

// Reporter reports a Status.
type Reporter interface {
	Status() Status
}
