package admin

import (
	"time"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/cluster"
	adminv1 "github.com/switchyard-ai/switchyard/gen/switchyard/admin/v1"
	"github.com/switchyard-ai/switchyard/router"
)

// Cluster reports this replica's shared state and the live replicas.
type Cluster interface {
	cluster.Reporter
	cluster.Members
}

// Service implements adminv1.AdminServiceServer over a replica's live state. It holds no state
// of its own and is safe for concurrent use.
type Service struct {
	adminv1.UnimplementedAdminServiceServer

	table    func() *router.Table
	pools    func() []*backends.Pool
	cluster  Cluster
	sessions cluster.SessionAdmin
	drains   cluster.Drains
	config   func() Config
	now      func() time.Time
}

var _ adminv1.AdminServiceServer = (*Service)(nil)

// Option configures a Service.
type Option func(*Service)

// WithTable sets the function that returns the routing table in force; it is called on every
// ListModels and ListPools. Default: an empty table.
func WithTable(f func() *router.Table) Option { return func(s *Service) { s.table = f } }

// WithPools sets the function that returns the pools in force, in configuration order; it is
// called on every call that needs them. Default: none.
func WithPools(f func() []*backends.Pool) Option { return func(s *Service) { s.pools = f } }

// WithDrains keeps drains in a set shared by the replicas, whose change callback sets the
// endpoints' flags. Default: drains set the endpoint's flag on this replica only.
func WithDrains(d cluster.Drains) Option { return func(s *Service) { s.drains = d } }

// WithCluster sets the source of ListMembers. Default: none, and ListMembers is UNIMPLEMENTED.
func WithCluster(c Cluster) Option { return func(s *Service) { s.cluster = c } }

// WithSessions sets the session store that GetSession and DeleteSession read and write.
// Default: none, and both are UNIMPLEMENTED.
func WithSessions(a cluster.SessionAdmin) Option { return func(s *Service) { s.sessions = a } }

// Config is a configuration as GetConfig shows it.
type Config struct {
	// YAML is the effective configuration, secrets already redacted.
	YAML []byte
	// Version identifies the configuration; it changes exactly when the configuration does.
	Version string
	// LoadedAt is when the configuration was applied.
	LoadedAt time.Time
}

// WithConfig sets the function that returns the configuration in force; it is called on every
// GetConfig. Default: none, and GetConfig is UNIMPLEMENTED.
func WithConfig(f func() Config) Option { return func(s *Service) { s.config = f } }

// WithClock sets the clock that judges health, stats age and session expiry; default time.Now.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// NewService returns the admin service over the sources given as options.
func NewService(opts ...Option) *Service {
	empty := router.NewTable(nil)
	s := &Service{
		table: func() *router.Table { return empty },
		pools: func() []*backends.Pool { return nil },
		now:   time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}
