// Package discovery finds a pool's model servers at run time: by resolving DNS names (a
// headless Kubernetes Service's A/AAAA records, or SRV records) on an interval, or by watching
// Kubernetes EndpointSlices. Each source reports the complete current set of endpoint URLs
// whenever it changes; what to do with the set belongs to the caller.
//
// It may import the standard library and, for EndpointSlices, client-go's discovery/v1 typed
// client and informer cache; it must not import Switchyard's other packages.
package discovery
