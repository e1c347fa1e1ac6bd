package app

import (
	"net/http"
	"time"

	"github.com/switchyard-ai/switchyard/cluster"
	"github.com/switchyard-ai/switchyard/internal/admin"
	"github.com/switchyard-ai/switchyard/internal/config"
	"github.com/switchyard-ai/switchyard/router"
)

// redactedYAML renders cfg as the admin API shows it: secrets replaced by REDACTED.
func redactedYAML(cfg *config.Config) []byte {
	c := *cfg
	if c.Cluster.Etcd.Password != "" {
		c.Cluster.Etcd.Password = "REDACTED"
	}
	return c.Marshal()
}

// mountAdminAPI serves the admin API (gRPC and REST, see internal/admin) on mux behind the
// admin keys. It reads the routing table, pools and configuration in force on every call, so
// a reload shows at once.
func (s *Server) mountAdminAPI(mux *http.ServeMux, cfg *config.Config, rt *router.Router) {
	opts := []admin.Option{
		admin.WithTable(rt.Table),
		admin.WithPools(s.reload.currentPools),
		admin.WithCluster(clusterView{s: s, since: time.Now()}),
		admin.WithDrains(s.shared.drains),
		admin.WithConfig(func() admin.Config {
			v := s.ConfigVersion()
			return admin.Config{YAML: redactedYAML(v.Config), Version: v.Hash, LoadedAt: v.LoadedAt}
		}),
	}
	if sa, ok := s.shared.sessions.(cluster.SessionAdmin); ok {
		opts = append(opts, admin.WithSessions(sa))
	}
	s.adminAPI = admin.NewHandler(admin.NewService(opts...), adminKeys(cfg.Admin.APIKeys))
	for _, p := range s.adminAPI.Paths() {
		mux.Handle(p, s.adminAPI)
	}
}

// clusterView shows the shared state to the admin API. A replica in local mode is its own
// only member.
type clusterView struct {
	s     *Server
	since time.Time // when this replica started
}

func (v clusterView) Status() cluster.Status {
	st := v.s.shared.status()
	// In local mode the bindings are counted where they are kept.
	if n, ok := v.s.shared.sessions.(interface{ Len() int }); ok && st.Mode == cluster.ModeLocal {
		st.Sessions = n.Len()
	}
	return st
}

func (v clusterView) Members() []cluster.Member {
	if m := v.s.shared.members(); m != nil {
		return m
	}
	return []cluster.Member{{Addr: v.s.Addr(), AdminAddr: v.s.AdminAddr(), Since: v.since}}
}
