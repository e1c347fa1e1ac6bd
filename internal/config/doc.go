// Package config owns Switchyard's configuration: the YAML schema, decoding with unknown-key
// detection, defaults, validation with the YAML line of each error, and the normalized form
// that `switchyard config check` prints.
//
// Config flows one way: decode, defaults, validate, then the composition root builds runtime
// objects from it; nothing at runtime keeps a *Config. It imports no other Switchyard package.
package config
