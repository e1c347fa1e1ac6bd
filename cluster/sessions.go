package cluster

import "time"

// Sessions keeps session bindings: which endpoint served a conversation, so its next turn goes
// back there and reuses the cached context. Lookups answer from local state only; bindings
// expire after their TTL without use.
type Sessions interface {
	// Get returns the endpoint bound to key and refreshes its TTL, or false when none is.
	Get(now time.Time, key string) (endpoint string, ok bool)
	// Bind binds key to endpoint for ttl when key is unbound or still bound to prev, the
	// binding the caller saw and is moving away from ("" for a new session). When two callers
	// race, the first writer wins and the other gets the winner's endpoint: Bind returns the
	// endpoint key is bound to afterwards. A shared implementation may wait for its store to
	// settle the race, within a bounded time, and answers locally when the store is away.
	Bind(now time.Time, key, endpoint, prev string, ttl time.Duration) (bound string)
}

// Binding is a session binding as an operator sees it.
type Binding struct {
	Key      string    `json:"key"` // the store's key: pool name, "|", session key
	Endpoint string    `json:"endpoint"`
	Expires  time.Time `json:"expires"`
}

// SessionAdmin lets an operator inspect and remove bindings. Lookup does not refresh the
// binding's TTL. Delete removes it everywhere; the session's next request binds afresh.
type SessionAdmin interface {
	Lookup(now time.Time, key string) (Binding, bool)
	Delete(key string) error
}
