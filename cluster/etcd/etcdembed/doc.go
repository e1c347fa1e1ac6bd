// Package etcdembed runs real etcd members in process, from go.etcd.io/etcd/server/v3/embed,
// for tests and the demo: a single member or a cluster on loopback whose members can be
// stopped and restarted to inject faults. Members run with short election timers and without
// fsync, and compact their history every few minutes.
package etcdembed
