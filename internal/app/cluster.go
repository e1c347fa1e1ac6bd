package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/cluster"
	"github.com/switchyard-ai/switchyard/cluster/etcd"
	"github.com/switchyard-ai/switchyard/cluster/memory"
	"github.com/switchyard-ai/switchyard/internal/config"
)

// shared is the state a replica shares with the others: in process for a single replica,
// over etcd when the config names etcd endpoints.
type shared struct {
	sessions cluster.Sessions
	counters cluster.Counters
	drains   cluster.Drains
	etcd     *etcd.Cluster // nil in local mode
}

// openShared builds the shared state; in etcd mode it connects, registers this replica and
// loads the current state, failing when etcd stays unreachable past the dial timeout.
func openShared(ctx context.Context, cfg *config.Config, log *slog.Logger) (*shared, error) {
	if !cfg.Cluster.Shared() {
		return &shared{sessions: memory.NewSessions(0), counters: memory.NewCounters(), drains: memory.NewDrains()}, nil
	}
	c := cfg.Cluster
	ec := etcd.Config{
		Endpoints: c.Etcd.Endpoints, Prefix: c.Etcd.Prefix, Username: c.Etcd.Username, Password: c.Etcd.Password,
		DialTimeout: c.Etcd.DialTimeout.D(), RequestTimeout: c.Etcd.RequestTimeout.D(),
		SyncInterval: c.SyncInterval.D(), MemberTTL: c.MemberTTL.D(), BindTimeout: c.BindTimeout.D(),
		ReplicaID: c.ReplicaID, Addr: cfg.Listen, AdminAddr: cfg.AdminListen,
	}
	if c.Etcd.PasswordFile != "" {
		b, err := os.ReadFile(c.Etcd.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd.password_file: %w", err)
		}
		ec.Password = strings.TrimSpace(string(b))
	}
	if t := c.Etcd.TLS; t != nil {
		var err error
		if ec.TLS, err = clientTLS(t); err != nil {
			return nil, fmt.Errorf("cluster.etcd.tls: %w", err)
		}
	}
	ec.Endpoints = etcdURLs(ec.Endpoints, ec.TLS != nil)
	e, err := etcd.Open(ctx, ec, etcd.WithLogger(log))
	if err != nil {
		return nil, err
	}
	log.Info("cluster: sharing state through etcd", "replica", e.ID(), "members", len(e.Members()), "etcd", strings.Join(c.Etcd.Endpoints, ","))
	return &shared{sessions: e.Sessions(), counters: e.Counters(), drains: e.Drains(), etcd: e}, nil
}

// etcdURLs turns host:port endpoints into URLs of the scheme TLS implies.
func etcdURLs(eps []string, secure bool) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		switch {
		case strings.Contains(e, "://"):
			out[i] = e
		case secure:
			out[i] = "https://" + e
		default:
			out[i] = "http://" + e
		}
	}
	return out
}

func clientTLS(t *config.TLS) (*tls.Config, error) {
	return backends.ClientTLS(&backends.TLSOptions{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify})
}

// status reports the shared state's status.
func (s *shared) status() cluster.Status {
	if s.etcd == nil {
		return cluster.Status{Mode: cluster.ModeLocal, Members: 1}
	}
	return s.etcd.Status()
}

// members lists the live replicas; in local mode, none but this one, which is unnamed.
func (s *shared) members() []cluster.Member {
	if s.etcd == nil {
		return nil
	}
	return s.etcd.Members()
}

func (s *shared) close() {
	if s.etcd != nil {
		s.etcd.Close()
	}
}

// register exports the cluster's state as metrics.
func (s *shared) register(reg prometheus.Registerer) {
	modes := []cluster.Mode{cluster.ModeLocal, cluster.ModeShared, cluster.ModeDegraded}
	for _, m := range modes {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "switchyard_cluster_mode",
			Help:        "1 for the mode this replica's shared state is in: local (one replica, in process), shared (etcd reachable) or degraded (etcd unreachable: local sessions, limit shares).",
			ConstLabels: prometheus.Labels{"mode": string(m)},
		}, func() float64 {
			if s.status().Mode == m {
				return 1
			}
			return 0
		}))
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_cluster_members", Help: "Live router replicas as this replica knows them, itself included."},
			func() float64 { return float64(s.status().Members) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_cluster_usage_staleness_seconds", Help: "Longest time, over the last minute or two, that limit usage admitted on another replica took to reach this one (sync interval, flush, etcd commit, watch); a limit can be overshot by about its admission rate times this."},
			func() float64 { return s.status().Staleness.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_cluster_sessions", Help: "Session bindings held by this replica (all replicas' in etcd mode)."},
			func() float64 { return float64(s.status().Sessions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchyard_cluster_store_writes_total", Help: "Write requests (transactions, puts, lease grants) this replica sent to etcd."},
			func() float64 {
				if s.etcd == nil {
					return 0
				}
				return float64(s.etcd.Writes())
			}),
	)
}
