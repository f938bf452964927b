package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
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

// A claim template is a directory per ordinal under the data dir of the
// node that runs the pod, mounted where the container names it; the pod's
// hostname is its own name.
func TestStatefulSetClaimIsALocalDirectory(t *testing.T) {
	c := NewCluster(t, Options{})
	c.Commit("kv", map[string]string{"kv.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kv}
spec:
  replicas: 2
  serviceName: kv
  selector: {matchLabels: {app: kv}}
  template:
    metadata: {labels: {app: kv}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: %s
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "hostname > /data/host; exec sleep 86400"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Mi}}
`, applytest.BusyboxRef)})
	c.Start()
	Eventually(t, 120*time.Second, "kv-0 and kv-1 wrote their hostnames to their claims", func() (bool, string) {
		ctrs, err := c.Containers()
		if err != nil {
			return false, err.Error()
		}
		now := RunningPlacement(ctrs, "kv-")
		for _, pod := range []string{"kv-0", "kv-1"} {
			if len(now[pod]) != 1 {
				return false, fmt.Sprintf("running %v", now)
			}
			file := filepath.Join(c.Node(now[pod][0]).DataDir, "volumes", "default", "data-"+pod, "host")
			b, err := os.ReadFile(file)
			if err != nil {
				return false, err.Error()
			}
			if got := strings.TrimSpace(string(b)); got != pod {
				t.Fatalf("%s wrote hostname %q to %s, want %s", pod, got, file, pod)
			}
		}
		return true, ""
	})
}
