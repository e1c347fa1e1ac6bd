package app

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/switchyard-ai/switchyard/internal/config"
)

func TestTuneRuntime(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "1GiB") // the test process's memory limit stays as it is
	if gc, mem := TuneRuntime(config.Server{GCPercent: 400}); gc != 400 || mem != -1 {
		t.Errorf("TuneRuntime = %d, %d; want 400, -1", gc, mem)
	}
	if now := debug.SetGCPercent(100); now != 400 {
		t.Errorf("GC percent is %d after TuneRuntime, want 400", now)
	}
	t.Setenv("GOGC", "150")
	if gc, _ := TuneRuntime(config.Server{GCPercent: 400}); gc != -1 {
		t.Errorf("with GOGC set TuneRuntime set the GC percent to %d", gc)
	}
	if now := debug.SetGCPercent(100); now != 100 {
		t.Errorf("with GOGC set the GC percent changed to %d", now)
	}
}

func TestMemoryMax(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		content string
		want    int64
		ok      bool
	}{
		{"1073741824\n", 1 << 30, true},
		{"max\n", 0, false},
		{"", 0, false},
		{"0\n", 0, false},
	} {
		p := filepath.Join(dir, "memory.max")
		os.WriteFile(p, []byte(tt.content), 0o644)
		if n, ok := memoryMax(p); n != tt.want && tt.ok || ok != tt.ok {
			t.Errorf("memoryMax(%q) = %d, %v; want %d, %v", tt.content, n, ok, tt.want, tt.ok)
		}
	}
	if _, ok := memoryMax(filepath.Join(dir, "missing")); ok {
		t.Error("a missing file gave a limit")
	}
}
