// Package bench holds Switchyard's benchmarks that compare side by side in one run: a client
// talking directly to model servers versus through the router, and later scheduling quality
// across routing policies. They print tables; `make bench` runs them.
//
// Nothing imports it; it may import every Switchyard package.
package bench
