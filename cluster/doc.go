// Package cluster owns the state router replicas share: session bindings, rate-limit
// counters and membership, as small interfaces with an in-memory single-replica
// implementation; cluster/etcd will implement them over etcd.
//
// It holds interfaces only (Counters for rate limits so far); cluster/memory implements them
// for a single replica. Only cluster/etcd may import the etcd client.
package cluster
