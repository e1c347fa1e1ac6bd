// Package policy owns what is decided about a caller before a request may use a GPU:
// authentication (API keys, JWT/OIDC, mTLS identities), tenants and their priority classes,
// and rate limits on requests and tokens (reserve at admission, settle with real usage).
//
// It may import cluster interfaces for shared limit state; it must not import router or any
// front door, nor know any wire format: front doors hand it Credentials and a Subject.
package policy
