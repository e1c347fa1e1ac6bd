// Package integration holds Switchyard's end-to-end tests: the real binary's composition root
// in front of in-process model servers, driven by real client SDKs over loopback.
//
// Nothing imports it; it may import every Switchyard package.
package integration
