package app

import (
	"bytes"
	"testing"

	"github.com/switchyard-ai/switchyard/internal/config"
)

// TestRedactedYAML: the admin API never shows the etcd password, and the configuration the
// server runs on keeps it.
func TestRedactedYAML(t *testing.T) {
	cfg, err := config.Decode([]byte("cluster:\n  etcd:\n    endpoints: [127.0.0.1:2379]\n    username: router\n    password: hunter2-secret\n" +
		"pools:\n  - name: p\n    endpoints: [http://127.0.0.1:8000]\nmodels:\n  - name: m\n    pool: p\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Finish(nil); err != nil {
		t.Fatal(err)
	}
	got := redactedYAML(cfg)
	switch {
	case bytes.Contains(got, []byte("hunter2")):
		t.Errorf("the admin view shows the password:\n%s", got)
	case !bytes.Contains(got, []byte("password: REDACTED")):
		t.Errorf("the admin view does not mark the password redacted:\n%s", got)
	case !bytes.Contains(got, []byte("username: router")):
		t.Errorf("the admin view lost the username:\n%s", got)
	}
	if cfg.Cluster.Etcd.Password != "hunter2-secret" {
		t.Errorf("redaction changed the running config: %q", cfg.Cluster.Etcd.Password)
	}
}
