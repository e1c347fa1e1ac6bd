package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// SetDefaults fills every unset field with its documented default. It is idempotent.
func (c *Config) SetDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defD := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&c.Listen, "127.0.0.1:8080")
	def(&c.AdminListen, "127.0.0.1:9090")
	if c.Server.MaxBodyBytes == 0 {
		c.Server.MaxBodyBytes = 32 << 20
	}
	defD(&c.Server.ReadHeaderTimeout, 10*time.Second)
	defD(&c.Server.IdleTimeout, 2*time.Minute)
	defD(&c.Server.DrainTimeout, 30*time.Second)
	c.Server.setLimitDefaults()
	def(&c.Routing.SessionHeader, "x-session-id")
	def(&c.Routing.PriorityHeader, "x-priority")
	if len(c.Routing.PriorityClasses) == 0 {
		c.Routing.PriorityClasses = []string{"critical", "standard", "sheddable"}
	}
	def(&c.Routing.DefaultPriority, "standard")
	if c.Routing.ResponseHeaders == nil {
		on := true
		c.Routing.ResponseHeaders = &on
	}
	if c.Routing.ShedClasses == nil {
		c.Routing.ShedClasses = []string{"sheddable"}
	}
	defD(&c.Routing.SessionTTL, 10*time.Minute)
	if c.Routing.SessionMargin == 0 {
		c.Routing.SessionMargin = 2
	}
	defD(&c.Upstream.ConnectTimeout, 5*time.Second)
	defD(&c.Upstream.FirstByteTimeout, 5*time.Minute)
	defD(&c.Upstream.IdleStreamTimeout, 2*time.Minute)
	if c.Upstream.MaxIdleConnsPerEndpoint == 0 {
		c.Upstream.MaxIdleConnsPerEndpoint = 256
	}
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
	for i := range c.Pools {
		p := &c.Pools[i]
		def(&p.Protocol, "openai")
		def(&p.Metrics, "auto")
		p.Upstream = c.Upstream.merge(p.Upstream)
		p.Stats.setDefaults()
		p.Scheduling.setDefaults()
		if p.Discovery != nil {
			p.Discovery.setDefaults(p.Protocol)
		}
	}
	for i := range c.Models {
		m := &c.Models[i]
		if len(m.Routes) == 0 {
			def(&m.TargetModel, m.Name)
		}
		for j := range m.Routes {
			for k := range m.Routes[j].To {
				if m.Routes[j].To[k].Weight == 0 {
					m.Routes[j].To[k].Weight = 1
				}
			}
		}
	}
	if c.Auth.Anonymous == nil {
		open := len(c.Auth.APIKeys) == 0 && c.Auth.JWT == nil && len(c.Auth.MTLS) == 0
		c.Auth.Anonymous = &open
	}
	if j := c.Auth.JWT; j != nil {
		defD(&j.Leeway, 30*time.Second)
		def(&j.TenantClaim, "tenant")
		def(&j.ModelsClaim, "models")
		def(&j.PriorityClaim, "priority")
	}
	if t := c.Server.TLS; t != nil {
		def(&t.ClientAuth, "none")
	}
	c.Cluster.setDefaults()
	c.Tracing.setDefaults()
	c.OpenAI.setDefaults()
	if c.Limits.DefaultOutputTokens == 0 {
		c.Limits.DefaultOutputTokens = 256
	}
	for i := range c.Limits.Rules {
		r := &c.Limits.Rules[i]
		defD(&r.Window, time.Minute)
		if len(r.By) == 0 {
			r.By = []string{"tenant"}
		}
	}
}

func (s *Stats) setDefaults() {
	if s.Interval == 0 {
		s.Interval = Duration(100 * time.Millisecond)
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(time.Second)
	}
	if s.StaleAfter == 0 {
		s.StaleAfter = Duration(2 * time.Second)
	}
	if s.FailureThreshold == 0 {
		s.FailureThreshold = 3
	}
}

func (s *Scheduling) setDefaults() {
	if s.Picker == "" {
		s.Picker = "profile"
	}
	if s.Selector == "" {
		s.Selector = "max-score"
	}
	defW := func(w **float64, v float64) {
		if *w == nil {
			*w = &v
		}
	}
	defW(&s.Weights.Queue, 2)
	defW(&s.Weights.KVCache, 2)
	defW(&s.Weights.InFlight, 1)
	defW(&s.Weights.Latency, 6)
	defW(&s.Weights.Prefix, 3)
	if s.SessionAffinity == nil {
		on := true
		s.SessionAffinity = &on
	}
	if s.Saturation.MaxQueue == 0 {
		s.Saturation.MaxQueue = 5
	}
	if s.Saturation.MaxKV == 0 {
		s.Saturation.MaxKV = 0.8
	}
	defW(&s.Saturation.ShedHeadroom, 0.25)
	if s.Queue.MaxWaiting == 0 {
		s.Queue.MaxWaiting = 256
	}
	if s.Queue.Timeout == 0 {
		s.Queue.Timeout = Duration(30 * time.Second)
	}
}

// merge returns the global settings u overridden by the set fields of o.
func (u Upstream) merge(o *Upstream) *Upstream {
	m := u
	if o == nil {
		return &m
	}
	if o.ConnectTimeout != 0 {
		m.ConnectTimeout = o.ConnectTimeout
	}
	if o.FirstByteTimeout != 0 {
		m.FirstByteTimeout = o.FirstByteTimeout
	}
	if o.IdleStreamTimeout != 0 {
		m.IdleStreamTimeout = o.IdleStreamTimeout
	}
	if o.MaxIdleConnsPerEndpoint != 0 {
		m.MaxIdleConnsPerEndpoint = o.MaxIdleConnsPerEndpoint
	}
	if o.TLS != nil {
		m.TLS = o.TLS
	}
	return &m
}

// validate checks a defaulted configuration; root (may be nil) supplies line numbers.
func (c *Config) validate(root *yaml.Node) error {
	errs := &Errors{}
	add := func(msg string, path ...any) {
		errs.List = append(errs.List, FieldError{Path: pathString(path), Line: lineOf(root, path...), Msg: msg})
	}
	for _, a := range []struct{ key, val string }{{"listen", c.Listen}, {"admin_listen", c.AdminListen}} {
		if _, _, err := net.SplitHostPort(a.val); err != nil {
			add(fmt.Sprintf("%q is not a host:port address", a.val), a.key)
		}
	}
	if c.Listen == c.AdminListen && !strings.HasSuffix(c.Listen, ":0") {
		add("must differ from listen", "admin_listen")
	}
	c.Cluster.validate(add)
	c.Tracing.validate(add)
	c.OpenAI.validate(add)
	if c.Server.MaxBodyBytes < 0 {
		add("must be positive", "server", "max_body_bytes")
	}
	c.Server.validateLimits(add)
	for _, d := range []struct {
		key string
		d   Duration
	}{{"read_header_timeout", c.Server.ReadHeaderTimeout}, {"idle_timeout", c.Server.IdleTimeout}, {"drain_timeout", c.Server.DrainTimeout},
		{"read_body_timeout", c.Server.ReadBodyTimeout}, {"write_timeout", c.Server.WriteTimeout}} {
		if d.d < 0 {
			add("must not be negative", "server", d.key)
		}
	}
	seen := map[string]bool{}
	for i, p := range c.Routing.PriorityClasses {
		if p == "" || seen[p] {
			add("priority class names must be non-empty and unique", "routing", "priority_classes", i)
		}
		seen[p] = true
	}
	if !seen[c.Routing.DefaultPriority] {
		add(fmt.Sprintf("%q is not one of priority_classes", c.Routing.DefaultPriority), "routing", "default_priority")
	}
	if c.Log.Level != "debug" && c.Log.Level != "info" && c.Log.Level != "warn" && c.Log.Level != "error" {
		add(fmt.Sprintf("%q is not debug, info, warn or error", c.Log.Level), "log", "level")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		add(fmt.Sprintf("%q is not text or json", c.Log.Format), "log", "format")
	}
	c.Upstream.validate(add, "upstream")
	c.validatePolicy(add)
	pools := map[string]bool{}
	for i, p := range c.Pools {
		switch {
		case p.Name == "":
			add("a pool needs a name", "pools", i, "name")
		case pools[p.Name]:
			add(fmt.Sprintf("duplicate pool name %q", p.Name), "pools", i, "name")
		}
		pools[p.Name] = true
		if p.Protocol != "openai" && p.Protocol != "kserve" {
			add(fmt.Sprintf("unknown protocol %q (want openai or kserve)", p.Protocol), "pools", i, "protocol")
		}
		if !slices.Contains([]string{"auto", "vllm", "sglang", "tgi", "triton", "none"}, p.Metrics) {
			add(fmt.Sprintf("unknown metrics format %q (want auto, vllm, sglang, tgi, triton or none)", p.Metrics), "pools", i, "metrics")
		}
		if len(p.Endpoints) == 0 && p.Discovery == nil {
			add("a pool needs at least one endpoint or a discovery", "pools", i, "endpoints")
		}
		if p.Discovery != nil {
			p.Discovery.validate(add, i, p.Protocol)
		}
		eps := map[string]bool{}
		for j, e := range p.Endpoints {
			if err := checkEndpoint(e, p.Protocol == "kserve"); err != nil {
				add(err.Error(), "pools", i, "endpoints", j)
			} else if eps[e] {
				add(fmt.Sprintf("duplicate endpoint %q", e), "pools", i, "endpoints", j)
			}
			eps[e] = true
		}
		if p.Upstream != nil {
			p.Upstream.validate(add, "pools", i, "upstream")
		}
		p.validateScheduling(add, i)
	}
	if len(c.Models) == 0 {
		add("no models configured: add models (and pools) or pass --backend MODEL=URL")
	}
	models := map[string]bool{}
	concrete := map[string]bool{}
	for i, m := range c.Models {
		switch {
		case m.Name == "":
			add("a model needs a name", "models", i, "name")
		case models[m.Name]:
			add(fmt.Sprintf("duplicate model name %q", m.Name), "models", i, "name")
		}
		models[m.Name] = true
		if len(m.Routes) == 0 {
			concrete[m.Name] = true
			if !pools[m.Pool] {
				add(fmt.Sprintf("unknown pool %q", m.Pool), "models", i, "pool")
			}
			for j, o := range m.Overflow {
				if !pools[o] || o == m.Pool {
					add(fmt.Sprintf("overflow pool %q is unknown or the model's own", o), "models", i, "overflow", j)
				}
			}
		} else if m.Pool != "" || len(m.Overflow) > 0 {
			add("a virtual model (routes) has no pool or overflow of its own", "models", i, "pool")
		}
	}
	for i, m := range c.Models {
		for j, r := range m.Routes {
			if (r.When == nil) != (j == len(m.Routes)-1) {
				add("the last rule, and only it, must have no when: the explicit default", "models", i, "routes", j)
			}
			if len(r.To) == 0 {
				add("a rule needs at least one target", "models", i, "routes", j, "to")
			}
			for k, t := range r.To {
				if !concrete[t.Model] {
					add(fmt.Sprintf("%q is not a concrete model", t.Model), "models", i, "routes", j, "to", k, "model")
				}
				if t.Weight < 0 {
					add("weight must be positive", "models", i, "routes", j, "to", k, "weight")
				}
			}
			if r.When != nil {
				for _, p := range r.When.Priorities {
					if !slices.Contains(c.Routing.PriorityClasses, p) {
						add(fmt.Sprintf("%q is not one of routing.priority_classes", p), "models", i, "routes", j, "when", "priorities")
					}
				}
			}
		}
	}
	for i, sc := range c.Routing.ShedClasses {
		if !slices.Contains(c.Routing.PriorityClasses, sc) {
			add(fmt.Sprintf("%q is not one of priority_classes", sc), "routing", "shed_classes", i)
		}
	}
	if len(errs.List) == 0 {
		return nil
	}
	slices.SortStableFunc(errs.List, func(a, b FieldError) int { return a.Line - b.Line })
	return errs
}

func (u *Upstream) validate(add func(string, ...any), path ...any) {
	at := func(k string) []any { return append(slices.Clone(path), k) }
	for _, d := range []struct {
		key string
		d   Duration
	}{{"connect_timeout", u.ConnectTimeout}, {"first_byte_timeout", u.FirstByteTimeout}, {"idle_stream_timeout", u.IdleStreamTimeout}} {
		if d.d < 0 {
			add("must not be negative", at(d.key)...)
		}
	}
	if u.MaxIdleConnsPerEndpoint < 0 {
		add("must not be negative", at("max_idle_conns_per_endpoint")...)
	}
	if u.TLS != nil && (u.TLS.CertFile == "") != (u.TLS.KeyFile == "") {
		add("cert_file and key_file go together", append(at("tls"), "cert_file")...)
	}
}

func (c *Config) validatePolicy(add func(string, ...any)) {
	if t := c.Server.TLS; t != nil {
		if t.CertFile == "" || t.KeyFile == "" {
			add("cert_file and key_file are required", "server", "tls")
		}
		if !slices.Contains([]string{"none", "optional", "required"}, t.ClientAuth) {
			add(fmt.Sprintf("%q is not none, optional or required", t.ClientAuth), "server", "tls", "client_auth")
		}
		if t.ClientAuth != "none" && t.ClientCAFile == "" {
			add("client_ca_file is required to verify client certificates", "server", "tls", "client_ca_file")
		}
	}
	tenants := map[string]bool{}
	for i, t := range c.Tenants {
		if t.Name == "" || tenants[t.Name] {
			add("tenant names must be non-empty and unique", "tenants", i, "name")
		}
		tenants[t.Name] = true
		if t.Priority != "" && !slices.Contains(c.Routing.PriorityClasses, t.Priority) {
			add(fmt.Sprintf("%q is not one of routing.priority_classes", t.Priority), "tenants", i, "priority")
		}
	}
	for i, k := range c.Auth.APIKeys {
		if k.Name == "" || k.Tenant == "" {
			add("an API key needs a name and a tenant", "auth", "api_keys", i)
		}
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != 32 {
			add("sha256 must be the 64-hex-digit SHA-256 of the key (switchyard hash-key KEY prints it)", "auth", "api_keys", i, "sha256")
		}
	}
	if j := c.Auth.JWT; j != nil {
		if j.Issuer == "" || len(j.Audiences) == 0 {
			add("issuer and audiences are required", "auth", "jwt")
		}
		if (j.JWKSURL == "") == (j.DiscoveryURL == "") {
			add("set exactly one of jwks_url and discovery_url", "auth", "jwt")
		}
		for k, a := range j.Algorithms {
			if strings.EqualFold(a, "none") || strings.HasPrefix(strings.ToUpper(a), "HS") {
				add(fmt.Sprintf("algorithm %q is never allowed", a), "auth", "jwt", "algorithms", k)
			}
		}
	}
	for i, r := range c.Auth.MTLS {
		if r.Tenant == "" || (r.SAN == "") == (r.Subject == "") {
			add("an mtls rule needs a tenant and exactly one of san and subject", "auth", "mtls", i)
		}
	}
	if len(c.Auth.MTLS) > 0 && (c.Server.TLS == nil || c.Server.TLS.ClientAuth == "none") {
		add("mtls rules need server.tls with client_auth optional or required", "auth", "mtls")
	}
	names := map[string]bool{}
	for i, r := range c.Limits.Rules {
		if r.Name == "" || names[r.Name] {
			add("limit names must be non-empty and unique", "limits", "rules", i, "name")
		}
		names[r.Name] = true
		if (r.Requests > 0) == (r.Tokens > 0) {
			add("set exactly one of requests and tokens, positive", "limits", "rules", i)
		}
		if r.Window < Duration(time.Second) {
			add("window must be at least 1s", "limits", "rules", i, "window")
		}
		for _, b := range r.By {
			if b != "tenant" && b != "model" && b != "route" {
				add(fmt.Sprintf("%q is not tenant, model or route", b), "limits", "rules", i, "by")
			}
		}
		for k := range r.Match {
			if k != "tenant" && k != "model" && k != "route" {
				add(fmt.Sprintf("%q is not tenant, model or route", k), "limits", "rules", i, "match")
			}
		}
	}
	if c.Limits.DefaultOutputTokens < 0 {
		add("must not be negative", "limits", "default_output_tokens")
	}
	for i, k := range c.Admin.APIKeys {
		if b, err := hex.DecodeString(k); err != nil || len(b) != 32 {
			add("admin keys are SHA-256 hex digests", "admin", "api_keys", i)
		}
	}
}

func (p *Pool) validateScheduling(add func(string, ...any), i int) {
	at := func(k ...any) []any { return append([]any{"pools", i}, k...) }
	st := p.Stats
	if st.Interval < 0 || st.Timeout < 0 || st.StaleAfter < 0 {
		add("stats durations must not be negative", at("stats")...)
	}
	if st.FailureThreshold < 0 {
		add("must not be negative", at("stats", "failure_threshold")...)
	}
	if st.MetricsPort < 0 || st.MetricsPort > 65535 {
		add("must be a port number", at("stats", "metrics_port")...)
	}
	sc := p.Scheduling
	if !slices.Contains([]string{"profile", "least-in-flight", "round-robin"}, sc.Picker) {
		add(fmt.Sprintf("unknown picker %q (want profile, least-in-flight or round-robin)", sc.Picker), at("scheduling", "picker")...)
	}
	if !slices.Contains([]string{"max-score", "power-of-two"}, sc.Selector) {
		add(fmt.Sprintf("unknown selector %q (want max-score or power-of-two)", sc.Selector), at("scheduling", "selector")...)
	}
	for _, w := range []struct {
		key string
		v   *float64
	}{{"queue", sc.Weights.Queue}, {"kv_cache", sc.Weights.KVCache}, {"in_flight", sc.Weights.InFlight}, {"latency", sc.Weights.Latency}, {"prefix", sc.Weights.Prefix}} {
		if w.v != nil && *w.v < 0 {
			add("weights must not be negative", at("scheduling", "weights", w.key)...)
		}
	}
	if sc.Saturation.MaxQueue < 0 {
		add("must not be negative", at("scheduling", "saturation", "max_queue")...)
	}
	if sc.Saturation.MaxKV < 0 || sc.Saturation.MaxKV > 1 {
		add("must be between 0 and 1", at("scheduling", "saturation", "max_kv")...)
	}
	if h := sc.Saturation.ShedHeadroom; h != nil && (*h < 0 || *h >= 1) {
		add("must be at least 0 and below 1", at("scheduling", "saturation", "shed_headroom")...)
	}
	if sc.Queue.MaxWaiting < 0 || sc.Queue.Timeout < 0 {
		add("queue bounds must not be negative", at("scheduling", "queue")...)
	}
}

func checkEndpoint(raw string, grpcOK bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch {
	case u.Scheme == "grpc" && !grpcOK:
		return fmt.Errorf("%q: grpc endpoints need protocol: kserve", raw)
	case u.Scheme == "grpc" && u.Path != "":
		return fmt.Errorf("%q: a grpc endpoint is host:port only", raw)
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "grpc":
		return fmt.Errorf("%q: scheme must be http, https or grpc", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: missing host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: must not have a query or fragment", raw)
	}
	return nil
}

func pathString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch v := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(v)
		case int:
			fmt.Fprintf(&b, "[%d]", v)
		}
	}
	return b.String()
}

// AddBackend applies a --backend MODEL=URL[,URL...] flag: a pool named MODEL of those
// OpenAI-compatible endpoints (metrics detected) serving model MODEL. It replaces any model
// and pool of that name from the file, so a flag always wins over the file.
func (c *Config) AddBackend(spec string) error {
	model, urls, ok := strings.Cut(spec, "=")
	model = strings.TrimSpace(model)
	if !ok || model == "" || urls == "" {
		return fmt.Errorf("--backend %q: want MODEL=URL[,URL...]", spec)
	}
	var eps []string
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		if err := checkEndpoint(u, false); err != nil {
			return fmt.Errorf("--backend %q: %v", spec, err)
		}
		eps = append(eps, u)
	}
	c.replaceModel(Pool{Name: model, Endpoints: eps})
	return nil
}

// AddKServeBackend applies a --kserve-backend MODEL=HOST:PORT[,HOST:PORT...] flag: a pool
// named MODEL of KServe v2 gRPC servers serving model MODEL, with metrics off (their metrics
// port is not known; set pools[].stats.metrics_port in a file for live stats). Like
// AddBackend, it replaces any model and pool of that name from the file.
func (c *Config) AddKServeBackend(spec string) error {
	model, addrs, ok := strings.Cut(spec, "=")
	model = strings.TrimSpace(model)
	if !ok || model == "" || addrs == "" {
		return fmt.Errorf("--kserve-backend %q: want MODEL=HOST:PORT[,HOST:PORT...]", spec)
	}
	var eps []string
	for _, a := range strings.Split(addrs, ",") {
		a = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(a), "grpc://"))
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("--kserve-backend %q: %q is not host:port", spec, a)
		}
		eps = append(eps, "grpc://"+a)
	}
	c.replaceModel(Pool{Name: model, Protocol: "kserve", Metrics: "none", Endpoints: eps})
	return nil
}

// replaceModel installs pool p and a model of the same name served by it, replacing any pool
// or model of that name.
func (c *Config) replaceModel(p Pool) {
	c.Pools = slices.DeleteFunc(c.Pools, func(q Pool) bool { return q.Name == p.Name })
	c.Models = slices.DeleteFunc(c.Models, func(m Model) bool { return m.Name == p.Name })
	c.Pools = append(c.Pools, p)
	c.Models = append(c.Models, Model{Name: p.Name, Pool: p.Name})
}
