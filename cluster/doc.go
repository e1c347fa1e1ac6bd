// Package cluster owns the state router replicas share: session bindings, rate-limit
// counters and membership, as small interfaces with an in-memory single-replica
// implementation; cluster/etcd will implement them over etcd.
//
// Only cluster/etcd may import the etcd client. It is empty until sessions and shared limits
// land.
package cluster
