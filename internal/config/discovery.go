package config

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Discovery finds a pool's endpoints at run time, besides or instead of its static
// endpoints. Exactly one source is set. Every update replaces the discovered part of the
// pool's endpoint set; endpoints that stay keep their load, stats and health.
type Discovery struct {
	// DNS resolves a name, such as a headless Kubernetes Service, periodically.
	DNS *DNSDiscovery `yaml:"dns,omitempty"`
	// Kubernetes watches a Service's EndpointSlices through the Kubernetes API.
	Kubernetes *KubernetesDiscovery `yaml:"kubernetes,omitempty"`
}

// DNSDiscovery resolves A/AAAA or SRV records into endpoints.
type DNSDiscovery struct {
	// Name to resolve, e.g. vllm.models.svc.cluster.local (a headless Service) or, for SRV,
	// _http._tcp.vllm.models.svc.cluster.local. Required.
	Name string `yaml:"name"`
	// Type is a (A and AAAA records, each address with Port) or srv (each target with the
	// record's port). Default a.
	Type string `yaml:"type"`
	// Port is the servers' port for type a; required there, unused for srv.
	Port int `yaml:"port,omitempty"`
	// Scheme of the endpoint URLs built: http, https or grpc. Default http (grpc for a
	// kserve pool).
	Scheme string `yaml:"scheme"`
	// Interval between resolutions. Default 10s.
	Interval Duration `yaml:"interval"`
	// Server is a resolver to ask instead of the system's, as host:port. Default the
	// system resolver.
	Server string `yaml:"server,omitempty"`
}

// KubernetesDiscovery watches the EndpointSlices of a Service, or those matching a label
// selector, in one namespace, with the in-cluster service account.
type KubernetesDiscovery struct {
	// Namespace of the Service. Default the router's own namespace (read from its service
	// account when running in a pod), else default.
	Namespace string `yaml:"namespace,omitempty"`
	// Service names the Service whose EndpointSlices (label kubernetes.io/service-name) to
	// watch. Set it or Selector.
	Service string `yaml:"service,omitempty"`
	// Selector is a label selector for the EndpointSlices, e.g. app=vllm,tier=gpu.
	Selector string `yaml:"selector,omitempty"`
	// Port names the EndpointSlice port to use. Default the slice's only (or first) port.
	Port string `yaml:"port,omitempty"`
	// Scheme of the endpoint URLs built: http, https or grpc. Default http (grpc for a
	// kserve pool).
	Scheme string `yaml:"scheme"`
}

func (d *Discovery) setDefaults(protocol string) {
	scheme := "http"
	if protocol == "kserve" {
		scheme = "grpc"
	}
	if s := d.DNS; s != nil {
		if s.Type == "" {
			s.Type = "a"
		}
		if s.Scheme == "" {
			s.Scheme = scheme
		}
		if s.Interval == 0 {
			s.Interval = Duration(10 * time.Second)
		}
	}
	if k := d.Kubernetes; k != nil {
		if k.Scheme == "" {
			k.Scheme = scheme
		}
	}
}

func (d *Discovery) validate(add func(string, ...any), pool int, protocol string) {
	at := func(keys ...any) []any { return append([]any{"pools", pool, "discovery"}, keys...) }
	if (d.DNS == nil) == (d.Kubernetes == nil) {
		add("set exactly one of dns and kubernetes", at()...)
	}
	checkScheme := func(scheme string, path []any) {
		switch {
		case scheme != "http" && scheme != "https" && scheme != "grpc":
			add(fmt.Sprintf("%q is not http, https or grpc", scheme), path...)
		case scheme == "grpc" && protocol != "kserve":
			add("grpc endpoints need protocol: kserve", path...)
		}
	}
	if s := d.DNS; s != nil {
		if s.Name == "" {
			add("a name to resolve is required", at("dns", "name")...)
		}
		switch s.Type {
		case "a":
			if s.Port < 1 || s.Port > 65535 {
				add("type a needs a port between 1 and 65535", at("dns", "port")...)
			}
		case "srv":
		default:
			add(fmt.Sprintf("%q is not a or srv", s.Type), at("dns", "type")...)
		}
		checkScheme(s.Scheme, at("dns", "scheme"))
		if s.Interval.D() < 100*time.Millisecond {
			add("must be at least 100ms", at("dns", "interval")...)
		}
		if s.Server != "" {
			if _, _, err := net.SplitHostPort(s.Server); err != nil {
				add(fmt.Sprintf("%q is not host:port", s.Server), at("dns", "server")...)
			}
		}
	}
	if k := d.Kubernetes; k != nil {
		if (k.Service == "") == (k.Selector == "") {
			add("set exactly one of service and selector", at("kubernetes")...)
		}
		if k.Selector != "" && !validSelector(k.Selector) {
			add(fmt.Sprintf("%q is not a label selector of key=value terms", k.Selector), at("kubernetes", "selector")...)
		}
		checkScheme(k.Scheme, at("kubernetes", "scheme"))
	}
}

// validSelector accepts the equality-based selectors EndpointSlice lists take:
// key=value, key==value and key!=value terms, comma-separated.
func validSelector(s string) bool {
	for _, term := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(term, "=")
		k = strings.TrimSuffix(strings.TrimSpace(k), "!")
		v = strings.TrimPrefix(v, "=")
		if !ok || k == "" || strings.TrimSpace(v) == "" {
			return false
		}
	}
	return true
}
