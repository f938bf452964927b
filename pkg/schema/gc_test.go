package schema

import (
	"math"
	"runtime/debug"
	"testing"
)

func gcSettings() (percent int, limit int64) {
	percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1)
}

// A cold load raises GOGC and bounds the heap; overlapping loads share the
// change and the last one puts the process's settings back.
func TestTuneGCRestores(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))

	restore := tuneGC(gcMinFiles - 1)
	if p, l := gcSettings(); p != 100 || l != math.MaxInt64 {
		t.Errorf("a small load changed the settings: GOGC %d, limit %d", p, l)
	}
	restore()

	first := tuneGC(3334)
	p, l := gcSettings()
	if p != gcPercent || l == math.MaxInt64 || l < gcBudget {
		t.Errorf("during a cold load: GOGC %d, limit %d; want %d and a limit above %d", p, l, gcPercent, gcBudget)
	}
	second := tuneGC(100000)
	first()
	if p2, l2 := gcSettings(); p2 != gcPercent || l2 != l {
		t.Errorf("one of two loads ended: GOGC %d, limit %d; want %d, %d", p2, l2, gcPercent, l)
	}
	second()
	if p, l := gcSettings(); p != 100 || l != math.MaxInt64 {
		t.Errorf("after the loads: GOGC %d, limit %d; want 100 and no limit", p, l)
	}
}

// The process's own choices are kept: GOGC off or higher, a lower limit.
func TestTuneGCKeepsProcessSettings(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	restore := tuneGC(3334)
	if p, l := gcSettings(); p != -1 || l != math.MaxInt64 {
		t.Errorf("GOGC off became %d, limit %d", p, l)
	}
	restore()

	debug.SetGCPercent(100)
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(32 << 20))
	restore = tuneGC(3334)
	if p, l := gcSettings(); p != gcPercent || l != 32<<20 {
		t.Errorf("with a 32 MiB limit: GOGC %d, limit %d; want %d and the limit kept", p, l, gcPercent)
	}
	restore()
	if p, l := gcSettings(); p != 100 || l != 32<<20 {
		t.Errorf("after: GOGC %d, limit %d", p, l)
	}
}
