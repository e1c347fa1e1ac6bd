// Package cluster owns the state router replicas share: session bindings, rate-limit
// counters and membership, as small interfaces (Sessions, Counters, Members, Reporter).
//
// Implementations answer every request-path call from local state and never wait on the
// network, except Sessions.Bind settling a race over a new binding, within a bounded time.
// cluster/memory implements the interfaces for a single replica; cluster/etcd implements them
// for replicas sharing an etcd cluster. This package imports only the standard library, and
// only cluster/etcd may import the etcd client.
package cluster
