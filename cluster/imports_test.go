package cluster_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyClusterEtcdImportsEtcd keeps the etcd client behind cluster/etcd: no other package
// of the module imports go.etcd.io directly.
func TestOnlyClusterEtcdImportsEtcd(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "github.com/switchyard-ai/switchyard/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		checked++
		if strings.HasPrefix(pkg, "github.com/switchyard-ai/switchyard/cluster/etcd") {
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, "go.etcd.io/") {
				t.Errorf("%s imports %s; only cluster/etcd may", pkg, imp)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("go list returned only %d packages", checked)
	}
}
