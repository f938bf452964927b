package e2e_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// A StatefulSet's order over three real agents: with OrderedReady (the
// default), containerd runs db-0, then db-1, then db-2, never a higher
// ordinal before the lower ones; scaled to 1, db-2 stops before db-1.
func TestStatefulSetOrderedStartAndScaleDown(t *testing.T) {
	c := NewCluster(t, Options{})
	c.Commit("db", map[string]string{"db.yaml": statefulSet("db", 3, 1)})
	c.Start()
	var order []string
	check := func(now map[string][]string, phase string) {
		for i := 1; i < 3; i++ {
			if len(now[fmt.Sprintf("db-%d", i)]) > 0 && len(now[fmt.Sprintf("db-%d", i-1)]) == 0 {
				t.Fatalf("%s: containerd runs db-%d without db-%d: %v", phase, i, i-1, now)
			}
		}
	}
	Eventually(t, 120*time.Second, "db-0, db-1 and db-2 running", func() (bool, string) {
		ctrs, err := c.Containers()
		if err != nil {
			return false, err.Error()
		}
		now := RunningPlacement(ctrs, "db-")
		check(now, "start")
		for i := range 3 {
			if name := fmt.Sprintf("db-%d", i); len(now[name]) > 0 && !slices.Contains(order, name) {
				order = append(order, name)
			}
		}
		return len(order) == 3, fmt.Sprintf("running %v", now)
	})
	if got := strings.Join(order, " "); got != "db-0 db-1 db-2" {
		t.Fatalf("start order %q, want db-0 db-1 db-2", got)
	}
	c.Commit("db scaled to 1", map[string]string{"db.yaml": statefulSet("db", 1, 1)})
	var gone []string
	Eventually(t, 120*time.Second, "db scaled down to db-0", func() (bool, string) {
		ctrs, err := c.Containers()
		if err != nil {
			return false, err.Error()
		}
		now := RunningPlacement(ctrs, "db-")
		if len(now["db-0"]) == 0 {
			t.Fatalf("db-0 stopped: %v", now)
		}
		check(now, "scale-down")
		for _, name := range []string{"db-2", "db-1"} {
			if len(now[name]) == 0 && !slices.Contains(gone, name) {
				gone = append(gone, name)
			}
		}
		return len(gone) == 2, fmt.Sprintf("running %v", now)
	})
	if got := strings.Join(gone, " "); got != "db-2 db-1" {
		t.Fatalf("stop order %q, want db-2 db-1", got)
	}
}
