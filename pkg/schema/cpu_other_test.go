//go:build !unix

package schema

import (
	"os"
	"time"
)

// cpuTime is not measured here.
func cpuTime() time.Duration { return 0 }

func peakRSS() float64 { return 0 }

func childUsage(ps *os.ProcessState) (time.Duration, float64) {
	return ps.UserTime() + ps.SystemTime(), 0
}
