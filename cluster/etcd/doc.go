// Package etcd implements the cluster interfaces for router replicas sharing an etcd cluster:
// membership under leases, session bindings settled by compare-and-swap and watched into a
// local cache, and rate-limit counters whose usage is flushed in one transaction per sync
// interval and summed from a watch.
//
// It is the only package that imports the etcd client. Every request-path call answers from
// local state; the one wait is a new session's first binding, bounded by Config.BindTimeout.
// When etcd is unreachable the replica keeps serving in degraded mode: sessions bind locally
// and limits admit each replica's share of the remaining quota; state reconciles when etcd
// returns. docs/cluster.md derives the over-admission bound.
package etcd
