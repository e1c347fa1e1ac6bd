package config

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Cluster is how replicas share session and rate-limit state. Without etcd endpoints each
// replica keeps its own state in process. Every cluster setting needs a restart to change.
type Cluster struct {
	// Etcd turns on shared state over an etcd cluster when it names endpoints.
	Etcd Etcd `yaml:"etcd"`
	// SyncInterval is how often a replica flushes its limit usage to etcd, in one transaction;
	// 50ms to 250ms. Default 100ms. Over-admission across replicas is bounded by it.
	SyncInterval Duration `yaml:"sync_interval"`
	// MemberTTL is the lease of a replica's membership: a replica that stops renewing it
	// leaves the live set this long after. Default 10s.
	MemberTTL Duration `yaml:"member_ttl"`
	// BindTimeout is the most a new session's first request waits for etcd to settle which
	// replica's binding wins; past it the local binding stands. Default 250ms.
	BindTimeout Duration `yaml:"bind_timeout"`
	// ReplicaID names this replica in etcd and the admin view. Default the host name plus a
	// random suffix, fresh at every start.
	ReplicaID string `yaml:"replica_id,omitempty"`
}

// Etcd is the etcd client's configuration.
type Etcd struct {
	// Endpoints are host:port or URLs of etcd members; none means no etcd.
	Endpoints []string `yaml:"endpoints"`
	// Prefix is prepended to every key Switchyard writes. Default /switchyard/.
	Prefix string `yaml:"prefix"`
	// Username and Password authenticate to etcd; default none. PasswordFile, when set, is
	// read at start instead of Password (for a mounted Secret).
	Username     string `yaml:"username,omitempty"`
	Password     string `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	// TLS to etcd; default plaintext.
	TLS *TLS `yaml:"tls,omitempty"`
	// DialTimeout bounds connecting at start: a router whose etcd is unreachable for this
	// long at start fails to start. Default 5s.
	DialTimeout Duration `yaml:"dial_timeout"`
	// RequestTimeout bounds each background exchange with etcd; one that runs past it marks
	// the store unreachable. Default 2s.
	RequestTimeout Duration `yaml:"request_timeout"`
}

// Shared reports whether the configuration turns on shared state over etcd.
func (c *Cluster) Shared() bool { return len(c.Etcd.Endpoints) > 0 }

func (c *Cluster) setDefaults() {
	defDur := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	defDur(&c.SyncInterval, 100*time.Millisecond)
	defDur(&c.MemberTTL, 10*time.Second)
	defDur(&c.BindTimeout, 250*time.Millisecond)
	if c.Etcd.Prefix == "" {
		c.Etcd.Prefix = "/switchyard/"
	}
	if !strings.HasSuffix(c.Etcd.Prefix, "/") {
		c.Etcd.Prefix += "/"
	}
	defDur(&c.Etcd.DialTimeout, 5*time.Second)
	defDur(&c.Etcd.RequestTimeout, 2*time.Second)
}

func (c *Cluster) validate(add func(string, ...any)) {
	if si := c.SyncInterval.D(); si < 50*time.Millisecond || si > 250*time.Millisecond {
		add("must be between 50ms and 250ms", "cluster", "sync_interval")
	}
	if c.MemberTTL.D() < 2*time.Second {
		add("must be at least 2s (etcd leases are whole seconds)", "cluster", "member_ttl")
	}
	if c.BindTimeout < 0 {
		add("must not be negative", "cluster", "bind_timeout")
	}
	for i, e := range c.Etcd.Endpoints {
		if err := checkEtcdEndpoint(e); err != nil {
			add(err.Error(), "cluster", "etcd", "endpoints", i)
		}
	}
	if !strings.HasPrefix(c.Etcd.Prefix, "/") {
		add("must start with /", "cluster", "etcd", "prefix")
	}
	if c.Etcd.Password != "" && c.Etcd.PasswordFile != "" {
		add("set password or password_file, not both", "cluster", "etcd", "password_file")
	}
	if (c.Etcd.Password != "" || c.Etcd.PasswordFile != "") && c.Etcd.Username == "" {
		add("a password needs a username", "cluster", "etcd", "username")
	}
	if c.Etcd.DialTimeout <= 0 || c.Etcd.RequestTimeout <= 0 {
		add("timeouts must be positive", "cluster", "etcd")
	}
	if t := c.Etcd.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		add("cert_file and key_file go together", "cluster", "etcd", "tls")
	}
}

func checkEtcdEndpoint(e string) error {
	host := e
	if i := strings.Index(e, "://"); i >= 0 {
		if s := e[:i]; s != "http" && s != "https" && s != "unix" && s != "unixs" {
			return fmt.Errorf("%q: scheme must be http or https", e)
		}
		host = strings.TrimSuffix(e[i+3:], "/")
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		return fmt.Errorf("%q is not host:port or a URL with one", e)
	}
	return nil
}

// SetEtcd points the cluster at the given comma-separated etcd endpoints, as the --etcd flag
// does.
func (c *Config) SetEtcd(list string) {
	c.Cluster.Etcd.Endpoints = nil
	for _, e := range strings.Split(list, ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.Cluster.Etcd.Endpoints = append(c.Cluster.Etcd.Endpoints, e)
		}
	}
}
