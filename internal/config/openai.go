package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// OpenAI configures the OpenAI front door beyond chat: stored responses, Realtime sessions and
// passthrough paths.
type OpenAI struct {
	// ResponseTTL is how long the endpoint that created a stored response (Responses API) is
	// remembered after its last use, so that GET and DELETE /v1/responses/{id} and
	// previous_response_id reach it. Bindings live with session bindings (shared through etcd
	// when cluster.etcd is set). Default 24h.
	ResponseTTL Duration `yaml:"response_ttl"`
	// Realtime bounds Realtime WebSocket sessions.
	Realtime Realtime `yaml:"realtime"`
	// Passthrough lists server-specific paths (vLLM's /tokenize, /v1/rerank, ...) relayed to
	// an endpoint serving the request's model. Default none: such paths are 404.
	Passthrough []PassthroughPath `yaml:"passthrough"`
}

// Realtime bounds Realtime WebSocket sessions; both sides are closed with 1001 past either.
type Realtime struct {
	// IdleTimeout closes a session without a message either way for this long. Default 5m.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxDuration closes a session this long after it opened. Default 1h.
	MaxDuration Duration `yaml:"max_duration"`
}

// PassthroughPath is one relayed path.
type PassthroughPath struct {
	// Path is the exact request path, e.g. /tokenize; required, and not a path Switchyard
	// serves itself.
	Path string `yaml:"path"`
	// Methods are the HTTP methods allowed. Default [POST].
	Methods []string `yaml:"methods"`
	// ModelHeader names a header that carries the model, taking precedence over the JSON
	// body's "model". Default none: the body's model only.
	ModelHeader string `yaml:"model_header,omitempty"`
}

func (o *OpenAI) setDefaults() {
	if o.ResponseTTL == 0 {
		o.ResponseTTL = Duration(24 * time.Hour)
	}
	if o.Realtime.IdleTimeout == 0 {
		o.Realtime.IdleTimeout = Duration(5 * time.Minute)
	}
	if o.Realtime.MaxDuration == 0 {
		o.Realtime.MaxDuration = Duration(time.Hour)
	}
	for i := range o.Passthrough {
		if len(o.Passthrough[i].Methods) == 0 {
			o.Passthrough[i].Methods = []string{"POST"}
		}
	}
}

// reservedPath reports whether Switchyard serves path itself: the OpenAI routes, KServe v2
// REST and gRPC.
func reservedPath(path string) bool {
	switch path {
	case "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/responses",
		"/v1/audio/speech", "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/realtime", "/v2":
		return true
	}
	return strings.HasPrefix(path, "/v1/responses/") || strings.HasPrefix(path, "/v2/") ||
		strings.HasPrefix(path, "/inference.GRPCInferenceService/")
}

func (o *OpenAI) validate(add func(string, ...any)) {
	for _, d := range []struct {
		path []any
		d    Duration
	}{{[]any{"openai", "response_ttl"}, o.ResponseTTL}, {[]any{"openai", "realtime", "idle_timeout"}, o.Realtime.IdleTimeout},
		{[]any{"openai", "realtime", "max_duration"}, o.Realtime.MaxDuration}} {
		if d.d < 0 {
			add("must not be negative", d.path...)
		}
	}
	seen := map[string]bool{}
	for i, p := range o.Passthrough {
		switch {
		case !strings.HasPrefix(p.Path, "/") || strings.ContainsAny(p.Path, "?# "):
			add(fmt.Sprintf("%q is not an absolute path without query", p.Path), "openai", "passthrough", i, "path")
		case reservedPath(p.Path):
			add(fmt.Sprintf("%s is served by Switchyard itself", p.Path), "openai", "passthrough", i, "path")
		case seen[p.Path]:
			add(fmt.Sprintf("duplicate passthrough path %q", p.Path), "openai", "passthrough", i, "path")
		}
		seen[p.Path] = true
		for j, m := range p.Methods {
			if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, m) {
				add(fmt.Sprintf("%q is not GET, POST, PUT, PATCH or DELETE", m), "openai", "passthrough", i, "methods", j)
			}
		}
		if h := p.ModelHeader; h != "" && strings.ContainsAny(h, " :\t\r\n") {
			add(fmt.Sprintf("%q is not a header name", h), "openai", "passthrough", i, "model_header")
		}
	}
}
