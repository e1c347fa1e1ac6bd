// Package router owns the protocol-neutral core of a request's life: the Request that front
// doors classify wire traffic into, the error type with codes that front doors map back onto
// their protocols, model resolution, endpoint picking and the retry-once rule.
//
// It may import backends (endpoints and pools) and, later, policy and cluster interfaces. It
// must not import any front door (router/openai, router/kserve) nor know any wire format.
package router
