package app

import (
	"bytes"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/switchyard-ai/switchyard/internal/config"
)

// cgroupMemoryMax is where a container's memory limit is read (cgroup v2).
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// TuneRuntime applies the process-wide runtime settings of the server section: the garbage
// collector's target (unless GOGC is set) and, unless GOMEMLIMIT is set, a soft memory limit
// of 90% of the container's, so that the higher target never runs the process out of memory.
// serve calls it once at startup; it reports what it set (-1: left to the environment).
func TuneRuntime(s config.Server) (gcPercent int, memLimit int64) {
	gcPercent = -1
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(s.GCPercent)
		gcPercent = s.GCPercent
	}
	memLimit = -1
	if os.Getenv("GOMEMLIMIT") == "" {
		if max, ok := memoryMax(cgroupMemoryMax); ok {
			memLimit = max / 10 * 9
			debug.SetMemoryLimit(memLimit)
		}
	}
	return gcPercent, memLimit
}

// memoryMax reads a cgroup v2 memory.max file: a byte count, or "max" for none.
func memoryMax(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	return n, err == nil && n > 0
}
