package schema

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// A cold load allocates several times what it keeps: with Go's default
// GOGC of 100, marking took about 13 % of its CPU time. While files are
// validated, the collector runs less often (gcPercent), and a memory limit
// of the heap that was live when the load began plus a budget keeps the
// peak where it was: the collector works harder only when the heap nears
// that limit. The budget grows with the files (gcFileBudget each, about
// twice what a file of the benchmark tree keeps), so that a large load's
// live heap stays well below it and the collector never runs back to
// back. Settings the process chose itself (GOGC above gcPercent or
// off, a lower memory limit) are kept.
const (
	gcPercent    = 400
	gcBudget     = 96 << 20
	gcFileBudget = 24 << 10
	// gcMinFiles is how many files to validate make a load worth the
	// change: an incremental load validates a few.
	gcMinFiles = 256
)

var gcTune struct {
	mu             sync.Mutex
	loads          int // loads running with the settings below
	percent, limit int64
}

// tuneGC applies the settings above for a load that validates files
// files, and returns what puts the previous ones back. Loads that overlap
// share one change, undone when the last ends.
func tuneGC(files int) (restore func()) {
	if files < gcMinFiles {
		return func() {}
	}
	gcTune.mu.Lock()
	defer gcTune.mu.Unlock()
	if gcTune.loads == 0 {
		percent := int64(debug.SetGCPercent(-1))
		limit := debug.SetMemoryLimit(-1)
		gcTune.percent, gcTune.limit = percent, limit
		if percent < 0 || percent >= gcPercent {
			// GOGC=off or already higher: the process knows best.
			debug.SetGCPercent(int(percent))
		} else {
			debug.SetGCPercent(gcPercent)
			if l := liveHeap() + max(gcBudget, int64(files)*gcFileBudget); l < limit {
				debug.SetMemoryLimit(l)
			}
		}
	}
	gcTune.loads++
	return func() {
		gcTune.mu.Lock()
		defer gcTune.mu.Unlock()
		if gcTune.loads--; gcTune.loads == 0 {
			debug.SetGCPercent(int(gcTune.percent))
			debug.SetMemoryLimit(gcTune.limit)
		}
	}
}

// liveHeap is the heap the last collection found live, in bytes.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	v := s[0].Value.Uint64()
	if v > math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return int64(v)
}
