// Package memory implements the cluster interfaces for a single replica, in process.
//
// It imports only the cluster interfaces and the standard library. State lives in this
// process and is lost when it exits; replicas that must share state use cluster/etcd instead.
package memory
