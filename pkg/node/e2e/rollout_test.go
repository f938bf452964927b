package e2e_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/status"
)

// rolling is the sleepers Deployment with a readiness probe, maxSurge 1
// and maxUnavailable 1, and a template that differs by env.
func rolling(version string) string {
	d := strings.Replace(sleepers, "        command: [\"sleep\", \"86400\"]\n",
		"        command: [\"sleep\", \"86400\"]\n"+
			"        env: [{name: VERSION, value: \""+version+"\"}]\n"+
			"        readinessProbe:\n"+
			"          exec: {command: [\"true\"]}\n"+
			"          periodSeconds: 1\n", 1)
	return strings.Replace(d, "spec:\n  replicas: 6\n",
		"spec:\n  replicas: 6\n  strategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}\n", 1)
}

// (r) A rolling update of 6 replicas over 3 nodes, sampled every 100 ms
// from containerd (pods that run) and from each node's report of its own
// pods (ready): never fewer than 5 ready, never more than 7 pods, until
// all 6 run the new template and are ready. The time it takes is logged
// against the sum of the new pods' start times.
func TestRollingUpdateKeepsItsBounds(t *testing.T) {
	c := NewCluster(t, Options{})
	c.Commit("v1", map[string]string{"sleepers.yaml": rolling("1")})
	c.Start()
	c.AgreeOn(c.Members(), "sleepers-", 6, 90*time.Second, twoEach)
	// Start from one copy of each pod, one report of each.
	runsOnce(t, c, "sleepers-", 6)
	oldHash := podHash(c, t)
	c.Commit("v2", map[string]string{"sleepers.yaml": rolling("2")})
	start := time.Now()
	minReady, maxPods, samples := 6, 0, 0
	// When each new pod was first seen running and first seen ready.
	running, readyAt := map[string]time.Time{}, map[string]time.Time{}
	last := ""
	deadline := start.Add(3 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("the rollout did not finish in 3 minutes (%d samples, at least %d ready, at most %d pods)", samples, minReady, maxPods)
		}
		// containerd and the three nodes are asked at the same time, so
		// that one sample is one moment as nearly as can be.
		var wg sync.WaitGroup
		var ctrs []Container
		var ctrErr error
		wg.Go(func() { ctrs, ctrErr = c.Containers() })
		sts := make([]status.Cluster, len(c.Members()))
		errs := make([]error, len(c.Members()))
		for i, n := range c.Members() {
			wg.Go(func() { sts[i], errs[i] = n.Status() })
		}
		wg.Wait()
		if err := errors.Join(append(errs, ctrErr)...); err != nil {
			t.Fatal(err)
		}
		placed := RunningPlacement(ctrs, "sleepers-")
		pods := len(placed)
		now := time.Now()
		for pod := range placed {
			if !strings.Contains(pod, "-"+oldHash+"-") && running[pod].IsZero() {
				running[pod] = now
			}
		}
		ready, fresh, old := 0, 0, 0
		var detail []string
		for i, n := range c.Members() {
			for _, p := range sts[i].Pods {
				if p.Node != n.Name || !strings.HasPrefix(p.Name, "sleepers-") {
					continue
				}
				detail = append(detail, fmt.Sprintf("%s on %s: %s %s ready=%v %s", p.Name, n.Name, p.TemplateHash, p.Phase, p.Ready, p.Reason))
				if p.Ready {
					ready++
				}
				if p.TemplateHash == oldHash {
					old++
				} else if p.Ready {
					fresh++
					if readyAt[p.Name].IsZero() {
						readyAt[p.Name] = now
					}
				}
			}
		}
		samples++
		minReady, maxPods = min(minReady, ready), max(maxPods, pods)
		if state := fmt.Sprintf("%d pods, %d ready, %d old, %d new ready", pods, ready, old, fresh); state != last {
			t.Logf("%7v: %s", time.Since(start).Round(time.Millisecond), state)
			last = state
		}
		if ready < 5 || pods > 7 {
			t.Logf("the pods the nodes report:\n  %s", strings.Join(detail, "\n  "))
		}
		if ready < 5 {
			t.Fatalf("sample %d, %v in: %d pods ready, fewer than replicas − maxUnavailable = 5", samples, time.Since(start).Round(time.Millisecond), ready)
		}
		if pods > 7 {
			t.Fatalf("sample %d, %v in: %d pods run, more than replicas + maxSurge = 7", samples, time.Since(start).Round(time.Millisecond), pods)
		}
		if old == 0 && fresh == 6 && pods == 6 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	// Each new pod's start: from running to ready, as sampled.
	var sum time.Duration
	for pod, at := range readyAt {
		if r, ok := running[pod]; ok && at.After(r) {
			sum += at.Sub(r)
		}
	}
	t.Logf("rolling update of 6 replicas over 3 nodes: %v from the commit to 6 new pods ready (%d samples, 100 ms apart, one every %v on average, at least %d ready, at most %d pods); the 6 new pods' starts (running to ready) take %v in sum",
		took.Round(time.Millisecond), samples, (took / time.Duration(samples)).Round(time.Millisecond), minReady, maxPods, sum.Round(time.Millisecond))
	out, err := c.Nodes[0].CLI("rollout", "status", "deployment/sleepers", "--timeout", "30s", "--server", c.Nodes[1].URL(), "--api-token-file", c.TokenFile)
	if err != nil {
		t.Fatalf("rollout status: %v\n%s", err, out)
	}
	if !strings.Contains(out, `deployment "sleepers" successfully rolled out`) {
		t.Errorf("rollout status:\n%s", out)
	}
}

// podHash is the template hash of the sleepers pods every node reports.
func podHash(c *Cluster, t *testing.T) string {
	t.Helper()
	st, err := c.Members()[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Pods {
		if strings.HasPrefix(p.Name, "sleepers-") {
			return p.TemplateHash
		}
	}
	t.Fatalf("no sleepers pod in %s's status", st.Node)
	return ""
}
