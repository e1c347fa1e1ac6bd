package cluster

import "time"

// Sessions keeps session bindings: which endpoint served a conversation, so its next turn goes
// back there and reuses the cached context. Implementations answer from local state only;
// bindings expire after their TTL without use.
type Sessions interface {
	// Get returns the endpoint bound to key and refreshes its TTL, or false when none is.
	Get(now time.Time, key string) (endpoint string, ok bool)
	// Put binds key to endpoint for ttl, replacing any binding.
	Put(now time.Time, key, endpoint string, ttl time.Duration)
}
