// Package faultproxy owns a TCP proxy for tests that sits between a client and a server and
// misbehaves on demand: it resets connections before the first response byte or part way
// through a response, stalls responses, or delays them. Faults can change while connections
// are open, so keep-alive and streaming connections see them too.
//
// It imports only the standard library and nothing of the project's; nothing but tests
// should import it.
package faultproxy
