// Package backends owns the model servers Switchyard routes to: endpoints and pools, the
// upstream transports that reach them, and what is known about them (metrics format, load).
//
// It speaks the upstream wire formats and imports none of Switchyard's other packages; the
// router core sees endpoints only through the types defined here.
package backends
