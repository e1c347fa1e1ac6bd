package app

import (
	"bytes"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/internal/config"
)

// TestEffectiveConfigRedactsSecrets: the admin API never shows the etcd password, and the
// configuration the server runs on keeps it.
func TestEffectiveConfigRedactsSecrets(t *testing.T) {
	cfg, err := config.Decode([]byte("cluster:\n  etcd:\n    endpoints: [127.0.0.1:2379]\n    username: router\n    password: hunter2-secret\n" +
		"pools:\n  - name: p\n    endpoints: [http://127.0.0.1:8000]\nmodels:\n  - name: m\n    pool: p\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Finish(nil); err != nil {
		t.Fatal(err)
	}
	var s Server
	at := time.Unix(1_700_000_000, 0)
	s.setEffectiveConfig(cfg, at)
	e := s.effective.Load()
	switch {
	case bytes.Contains(e.yaml, []byte("hunter2")):
		t.Errorf("the effective config shows the password:\n%s", e.yaml)
	case !bytes.Contains(e.yaml, []byte("password: REDACTED")):
		t.Errorf("the effective config does not mark the password redacted:\n%s", e.yaml)
	case !bytes.Contains(e.yaml, []byte("username: router")):
		t.Errorf("the effective config lost the username:\n%s", e.yaml)
	case !e.loaded.Equal(at):
		t.Errorf("loaded at %v, want %v", e.loaded, at)
	}
	if cfg.Cluster.Etcd.Password != "hunter2-secret" {
		t.Errorf("redaction changed the running config: %q", cfg.Cluster.Etcd.Password)
	}
}
