// Package app is Switchyard's composition root: the subcommands, their flags, building runtime
// objects from configuration, the data-plane and admin servers, and graceful drain.
//
// It may import every Switchyard package; nothing imports it but cmd/switchyard and tests.
package app
