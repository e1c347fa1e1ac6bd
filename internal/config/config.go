package config

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file. Every field is optional; comments name defaults.
type Config struct {
	// Listen is the data-plane address (HTTP/1.1 and h2c on one port). Default 127.0.0.1:8080;
	// use :8080 in a container.
	Listen string `yaml:"listen"`
	// AdminListen is the admin address (/metrics, /healthz, /readyz, the admin API). Default
	// 127.0.0.1:9090.
	AdminListen string   `yaml:"admin_listen"`
	Server      Server   `yaml:"server"`
	Routing     Routing  `yaml:"routing"`
	Upstream    Upstream `yaml:"upstream"`
	Log         Log      `yaml:"log"`
	// Auth says who may call the data plane. Default: anyone (no credentials configured).
	Auth Auth `yaml:"auth"`
	// Tenants give callers' tenants attributes: allowed models, default priority. Default none.
	Tenants []Tenant `yaml:"tenants"`
	// Limits are rate limits on requests and tokens. Default none.
	Limits Limits `yaml:"limits"`
	// Admin protects the admin port.
	Admin Admin `yaml:"admin"`
	// Cluster shares session and rate-limit state between replicas; default none.
	Cluster Cluster `yaml:"cluster"`
	// Tracing exports OpenTelemetry traces; default off.
	Tracing Tracing `yaml:"tracing"`
	// OpenAI configures stored responses, Realtime sessions and passthrough paths.
	OpenAI OpenAI `yaml:"openai"`
	// Pools are groups of model servers. Default none.
	Pools []Pool `yaml:"pools"`
	// Models are the model names clients may ask for, each served by a pool. At least one is
	// required to serve.
	Models []Model `yaml:"models"`
}

// Server holds data-plane listener settings.
type Server struct {
	// MaxBodyBytes bounds request bodies; larger ones get 413. Default 33554432 (32 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ReadHeaderTimeout bounds how long a client may take to send request headers. Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default 2m.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// DrainTimeout is how long in-flight requests may finish on shutdown. Default 30s.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// ReadBodyTimeout bounds how long a client may take to send a request body (gRPC streams
	// and WebSocket upgrades excepted). Default 1m.
	ReadBodyTimeout Duration `yaml:"read_body_timeout"`
	// WriteTimeout bounds how long one write to a client, such as one streamed event, may
	// block; a client that stops reading is cut off after it. Default 30s.
	WriteTimeout Duration `yaml:"write_timeout"`
	// MaxHeaderBytes bounds the size of a request's header fields, names and values; larger
	// get 431 (gRPC: RESOURCE_EXHAUSTED). Default 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxHeaderCount bounds the number of header field lines in a request. Default 100.
	MaxHeaderCount int `yaml:"max_header_count"`
	// MaxJSONDepth bounds how deeply objects and arrays nest in an OpenAI request body;
	// deeper gets 400. Default 64.
	MaxJSONDepth int `yaml:"max_json_depth"`
	// MaxTensorElements bounds the total elements of a KServe request's input tensors;
	// more gets INVALID_ARGUMENT (REST 400). Default 67108864.
	MaxTensorElements int64 `yaml:"max_tensor_elements"`
	// MaxGRPCMessageBytes bounds one gRPC, gRPC-Web or Connect message; larger get
	// RESOURCE_EXHAUSTED. Default 33554432 (32 MiB).
	MaxGRPCMessageBytes int64 `yaml:"max_grpc_message_bytes"`
	// MaxConcurrentStreams bounds the HTTP/2 streams (gRPC calls) one client connection may
	// have open at once. Default 250.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// TLS serves the data plane over TLS (HTTP/2 by ALPN), optionally verifying client
	// certificates. Default: cleartext HTTP/1.1 and h2c.
	TLS *ServerTLS `yaml:"tls,omitempty"`
	// GCPercent is the Go garbage collector's target, as GOGC: the heap may grow this many
	// percent over the live data before the next collection. A router's live heap is small
	// and its garbage is per request, so a higher target buys CPU with little memory; unless
	// GOMEMLIMIT is set, the heap is also held under 90% of the container's memory limit.
	// GOGC in the environment takes precedence. Default 400.
	GCPercent int `yaml:"gc_percent"`
}

// ServerTLS configures TLS on the data-plane listener.
type ServerTLS struct {
	CertFile string `yaml:"cert_file"` // required: PEM certificate chain
	KeyFile  string `yaml:"key_file"`  // required: PEM private key
	// ClientCAFile holds the CAs that client certificates must chain to. Required unless
	// client_auth is none.
	ClientCAFile string `yaml:"client_ca_file,omitempty"`
	// ClientAuth is none, optional (verified when presented) or required. Default none.
	ClientAuth string `yaml:"client_auth"`
}

// Auth configures authentication on the data plane.
type Auth struct {
	// Anonymous lets requests without credentials through as tenant "anonymous". Default true
	// when no API keys, JWT or mTLS rules are configured, else false.
	Anonymous *bool `yaml:"anonymous"`
	// APIKeys are accepted bearer keys, stored as SHA-256 hex digests
	// (`switchyard hash-key SECRET` prints one).
	APIKeys []APIKey `yaml:"api_keys"`
	// JWT accepts bearer JSON Web Tokens signed by the issuer's keys. Default off.
	JWT *JWT `yaml:"jwt,omitempty"`
	// MTLS maps verified client certificates (server.tls.client_auth) to tenants.
	MTLS []CertRule `yaml:"mtls"`
}

// APIKey is one accepted key.
type APIKey struct {
	Name   string `yaml:"name"`   // required, for logs
	SHA256 string `yaml:"sha256"` // required: hex SHA-256 of the key
	Tenant string `yaml:"tenant"` // required
}

// JWT configures JWT verification against a JWKS.
type JWT struct {
	Issuer        string   `yaml:"issuer"`                  // required
	Audiences     []string `yaml:"audiences"`               // required
	JWKSURL       string   `yaml:"jwks_url,omitempty"`      // a JWKS URL, or
	DiscoveryURL  string   `yaml:"discovery_url,omitempty"` // the OIDC issuer URL (/.well-known/openid-configuration)
	Algorithms    []string `yaml:"algorithms,omitempty"`    // default RS*, PS*, ES*, EdDSA; never none or HS*
	Leeway        Duration `yaml:"leeway"`                  // clock skew allowed; default 30s
	TenantClaim   string   `yaml:"tenant_claim"`            // default tenant (falling back to sub)
	ModelsClaim   string   `yaml:"models_claim"`            // default models
	PriorityClaim string   `yaml:"priority_claim"`          // default priority
}

// CertRule maps a client certificate to a tenant by SAN or subject.
type CertRule struct {
	SAN     string `yaml:"san,omitempty"`     // a DNS, email or URI SAN
	Subject string `yaml:"subject,omitempty"` // the subject's string form, e.g. CN=job,O=Acme
	Tenant  string `yaml:"tenant"`            // required
}

// Tenant gives a tenant attributes.
type Tenant struct {
	Name     string   `yaml:"name"`     // required, unique
	Models   []string `yaml:"models"`   // models it may use; default all
	Priority string   `yaml:"priority"` // default priority class of its requests; default routing.default_priority
}

// Limits configures rate limits.
type Limits struct {
	// DefaultOutputTokens is reserved for a request that sets no max tokens. Default 256.
	DefaultOutputTokens int `yaml:"default_output_tokens"`
	// Rules are the limits; every matching rule must pass.
	Rules []LimitRule `yaml:"rules"`
}

// LimitRule is one rate limit: requests or tokens per window, keyed by attributes.
type LimitRule struct {
	Name     string `yaml:"name"`     // required, unique; shown in errors
	Requests int64  `yaml:"requests"` // requests per window; or
	Tokens   int64  `yaml:"tokens"`   // tokens (prompt + output) per window
	// Window is the fixed window, aligned to the clock (1m resets at each minute). Default 1m.
	Window Duration `yaml:"window"`
	// By keys separate counters by these attributes: tenant, model, route. Default [tenant].
	By []string `yaml:"by"`
	// Match restricts the rule to requests with these attribute values. Default: all requests.
	Match map[string]string `yaml:"match,omitempty"`
}

// Admin protects the admin port.
type Admin struct {
	// APIKeys are SHA-256 hex digests of bearer keys required for /metrics, /cluster and the
	// admin API. /healthz and /readyz stay open for probes. Default none: open.
	APIKeys []string `yaml:"api_keys"`
}

// Routing holds how requests are classified and what responses reveal.
type Routing struct {
	// SessionHeader carries the session key. Default x-session-id.
	SessionHeader string `yaml:"session_header"`
	// PriorityHeader carries the priority class. Default x-priority.
	PriorityHeader string `yaml:"priority_header"`
	// PriorityClasses are the class names, most urgent first. Default [critical, standard, sheddable].
	PriorityClasses []string `yaml:"priority_classes"`
	// DefaultPriority is the class of requests without the header. Default standard.
	DefaultPriority string `yaml:"default_priority"`
	// ResponseHeaders adds x-switchyard-model and x-switchyard-endpoint to responses. Default true.
	ResponseHeaders *bool `yaml:"response_headers"`
	// ShedClasses are refused at once (429) while their pool is saturated, instead of
	// waiting, so that other classes keep their latency. Default [sheddable].
	ShedClasses []string `yaml:"shed_classes"`
	// SessionFromUser uses the OpenAI `user` field as the session key when the session header
	// is absent. Default false.
	SessionFromUser bool `yaml:"session_from_user"`
	// SessionTTL is how long an idle session binding lasts. Default 10m.
	SessionTTL Duration `yaml:"session_ttl"`
	// SessionMargin is how far past the saturation thresholds a bound endpoint may be before
	// its session moves: this many more queued requests, and a tenth more KV-cache use.
	// Default 2.
	SessionMargin int `yaml:"session_margin"`
}

// Upstream holds how Switchyard talks to model servers. Set globally, overridable per pool.
type Upstream struct {
	// ConnectTimeout bounds dial plus TLS handshake. Default 5s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// FirstByteTimeout bounds the wait for response headers; non-streaming generations answer
	// only when done, so it is long. Default 5m.
	FirstByteTimeout Duration `yaml:"first_byte_timeout"`
	// IdleStreamTimeout bounds the gap between two reads of a response body. Default 2m.
	IdleStreamTimeout Duration `yaml:"idle_stream_timeout"`
	// MaxIdleConnsPerEndpoint is how many keep-alive connections are kept per endpoint. Default 256.
	MaxIdleConnsPerEndpoint int `yaml:"max_idle_conns_per_endpoint"`
	// TLS configures https endpoints. Default: system roots, no client certificate.
	TLS *TLS `yaml:"tls,omitempty"`
}

// TLS configures TLS to model servers.
type TLS struct {
	CAFile             string `yaml:"ca_file,omitempty"`              // PEM roots; default system roots
	CertFile           string `yaml:"cert_file,omitempty"`            // client certificate; default none
	KeyFile            string `yaml:"key_file,omitempty"`             // client key; required with cert_file
	ServerName         string `yaml:"server_name,omitempty"`          // name to verify; default the host
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"` // default false; tests only
}

// Log holds logging settings.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error. Default info.
	Format string `yaml:"format"` // text or json. Default text.
}

// Pool is a group of interchangeable model servers.
type Pool struct {
	Name string `yaml:"name"` // required, unique
	// Protocol the servers speak: openai (OpenAI-compatible HTTP) or kserve (KServe v2 / Open
	// Inference Protocol, over gRPC for grpc:// endpoints or REST for http:// ones). Default
	// openai.
	Protocol string `yaml:"protocol"`
	// Metrics is the servers' metrics dialect: auto, vllm, sglang, tgi, triton or none. Default auto.
	Metrics string `yaml:"metrics"`
	// Endpoints are server root URLs, e.g. http://10.0.0.7:8000, or grpc://10.0.0.7:8001 for a
	// KServe v2 gRPC server. At least one, unless Discovery is set.
	Endpoints []string `yaml:"endpoints"`
	// Discovery finds more endpoints at run time (DNS or Kubernetes EndpointSlices). Default
	// none.
	Discovery *Discovery `yaml:"discovery,omitempty"`
	// Upstream overrides the global upstream settings field by field. After normalization it
	// holds the effective settings.
	Upstream *Upstream `yaml:"upstream,omitempty"`
	// Stats configures how the endpoints' metrics are scraped.
	Stats Stats `yaml:"stats"`
	// Scheduling configures how requests are placed on the endpoints.
	Scheduling Scheduling `yaml:"scheduling"`
}

// Stats configures metrics scraping for a pool.
type Stats struct {
	// Interval between scrapes of each endpoint. Default 100ms.
	Interval Duration `yaml:"interval"`
	// Timeout of one scrape. Default 1s.
	Timeout Duration `yaml:"timeout"`
	// StaleAfter is how old an endpoint's stats may be before it counts as unknown (not idle).
	// Default 2s.
	StaleAfter Duration `yaml:"stale_after"`
	// FailureThreshold is how many consecutive failed scrapes eject an endpoint until a scrape
	// succeeds again (backoff 1s doubling to 30s). Default 3.
	FailureThreshold int `yaml:"failure_threshold"`
	// MetricsPort scrapes http://HOST:PORT/metrics on each endpoint's host instead of its own
	// port (Triton serves gRPC on 8001 and metrics on 8002). Default 0: the endpoint's port.
	MetricsPort int `yaml:"metrics_port"`
}

// Scheduling configures how a pool's endpoint is chosen for each request.
type Scheduling struct {
	// Picker is profile (filters, weighted scorers, selector; uses live stats), least-in-flight
	// (local counts only) or round-robin. Default profile.
	Picker string `yaml:"picker"`
	// Selector picks among scored endpoints: max-score (random tie-break) or power-of-two.
	// Default max-score.
	Selector string `yaml:"selector"`
	// Weights of the scorers in the total score.
	Weights Weights `yaml:"weights"`
	// Saturation bounds: an endpoint at or past either is skipped; when all are, requests queue.
	Saturation Saturation `yaml:"saturation"`
	// Queue holds requests while every endpoint is saturated, most urgent priority class first.
	Queue Queue `yaml:"queue"`
	// SessionAffinity sends requests with a session key back to the endpoint that served the
	// session, while it is healthy and within the saturation margin. Default true.
	SessionAffinity *bool `yaml:"session_affinity"`
}

// Weights are the scorer weights; 0 turns a scorer off.
type Weights struct {
	Queue    *float64 `yaml:"queue"`     // waiting queue plus requests sent since the scrape. Default 2.
	KVCache  *float64 `yaml:"kv_cache"`  // free KV cache. Default 2.
	InFlight *float64 `yaml:"in_flight"` // this replica's in-flight requests. Default 1.
	// Latency weighs the expected time to first token from each endpoint's observed speed and
	// this prompt's length. Default 6.
	Latency *float64 `yaml:"latency"`
	// Prefix weighs prefix-cache affinity: the share of the prompt's leading blocks the
	// endpoint is believed to hold. Default 3.
	Prefix *float64 `yaml:"prefix"`
}

// Saturation holds the thresholds past which an endpoint takes no new requests.
type Saturation struct {
	MaxQueue int     `yaml:"max_queue"` // queued requests. Default 5.
	MaxKV    float64 `yaml:"max_kv"`    // KV-cache use, 0..1, with requests queued. Default 0.8.
	// ShedHeadroom is the share of an endpoint's batch slots that requests of a shed class
	// (routing.shed_classes) may not take, kept free for more urgent work. Default 0.25.
	ShedHeadroom *float64 `yaml:"shed_headroom"`
}

// Queue bounds the requests waiting for a saturated pool.
type Queue struct {
	MaxWaiting int      `yaml:"max_waiting"` // default 256; beyond it 429 at once
	Timeout    Duration `yaml:"timeout"`     // default 30s; then 429 with Retry-After
}

// Model is a model name clients may ask for: either concrete (served by a pool) or virtual
// (routed to concrete models by rules).
type Model struct {
	Name string `yaml:"name"` // required, unique
	// Pool serves a concrete model. Required unless routes are given.
	Pool string `yaml:"pool,omitempty"`
	// TargetModel is the name sent upstream, rewriting the request body. Default Name.
	TargetModel string `yaml:"target_model,omitempty"`
	// Overflow lists pools to spill to, in order, while Pool is saturated (premium GPUs
	// first, cheaper after). Default none.
	Overflow []string `yaml:"overflow,omitempty"`
	// Routes make the model virtual: ordered rules, the first that matches wins. The last
	// rule must have no when: it is the explicit default.
	Routes []RouteRule `yaml:"routes,omitempty"`
}

// RouteRule is one rule of a virtual model.
type RouteRule struct {
	// When is the condition; absent on the last, default rule.
	When *RouteMatch `yaml:"when,omitempty"`
	// To are the concrete models to send to, split by weight (deterministic per session key).
	To []RouteTarget `yaml:"to"`
}

// RouteMatch is a rule's condition; every field set must hold.
type RouteMatch struct {
	MinPromptTokens int               `yaml:"min_prompt_tokens,omitempty"`
	MaxPromptTokens int               `yaml:"max_prompt_tokens,omitempty"`
	MinOutputTokens int               `yaml:"min_output_tokens,omitempty"`
	MaxOutputTokens int               `yaml:"max_output_tokens,omitempty"` // requests with max tokens set, at most this
	Priorities      []string          `yaml:"priorities,omitempty"`
	Tenants         []string          `yaml:"tenants,omitempty"`
	Headers         map[string]string `yaml:"headers,omitempty"`
}

// RouteTarget is a concrete model and its share of a rule's traffic.
type RouteTarget struct {
	Model  string `yaml:"model"`  // a concrete model's name
	Weight int    `yaml:"weight"` // relative share; default 1
}

// Duration is a time.Duration written as a Go duration string ("5s", "2m").
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q (want e.g. 500ms, 5s, 2m)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
