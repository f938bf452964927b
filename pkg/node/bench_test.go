package node_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
)

func benchDeployment(name string, replicas int) string {
	return strings.Replace(deployment(name), "replicas: 2", fmt.Sprintf("replicas: %d", replicas), 1)
}

// startPods commits a Deployment of replicas pods and returns, once all
// run, how long after the agent loaded the revision each pod's container
// was seen running (polling the agent's status every millisecond).
func startPods(b *testing.B, n *testNode, a *agent, name string, replicas int) []time.Duration {
	sha := n.commit(b, name, map[string]string{"d.yaml": benchDeployment(name, replicas)})
	a.Sync()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := a.WaitRevision(ctx, sha); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	seen := map[string]time.Duration{}
	for len(seen) < replicas {
		for _, p := range a.Status().Pods {
			if _, ok := seen[p.Name]; !ok && strings.HasPrefix(p.Name, name+"-") && p.Phase == plan.PhaseRunning {
				seen[p.Name] = time.Since(start)
			}
		}
		if ctx.Err() != nil {
			b.Fatalf("%d of %d pods running after 5 minutes", len(seen), replicas)
		}
		time.Sleep(time.Millisecond)
	}
	var out []time.Duration
	for _, d := range seen {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// removeAll commits an empty tree and waits until the agent has no pods.
func removeAll(b *testing.B, n *testNode, a *agent) {
	sha := n.commit(b, "empty", map[string]string{"README": "nothing"})
	a.Sync()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := a.WaitRevision(ctx, sha); err != nil {
		b.Fatal(err)
	}
	for len(a.Status().Pods) > 0 {
		if ctx.Err() != nil {
			b.Fatal("pods left after 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkAgentPodStart measures one pod through the agent: from the
// moment the agent runs a revision asking for a one-container pod (image
// present) until its status shows the container running. Compare with
// BenchmarkAgentCtrRun, a bare `ctr run -d` of the same image on the same
// containerd in the same run.
func BenchmarkAgentPodStart(b *testing.B) {
	n := newTestNode(b)
	a := n.start(b, nil)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		lat := startPods(b, n, a, fmt.Sprintf("one%d", i), 1)
		total += lat[0]
		removeAll(b, n, a)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/pod-start")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkAgentCtrRun is `ctr run -d` of the busybox image on the same
// kind of node, for comparison with BenchmarkAgentPodStart.
func BenchmarkAgentCtrRun(b *testing.B) {
	n := newTestNode(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("ctr-%d", i)
		cmd := n.CD.CtrRun(b, applytest.BusyboxRef, id, "sleep", "3600")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("ctr run: %v\n%s", err, out)
		}
		total += time.Since(start)
		n.CD.RemoveContainer(b, id)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/pod-start")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkAgentFiftyPods commits a Deployment of 50 replicas and reports
// the time from the agent running the revision until all 50 pods run,
// and the p50 and p99 of the single pods' times.
func BenchmarkAgentFiftyPods(b *testing.B) {
	const pods = 50
	n := newTestNode(b)
	a := n.start(b, func(c *node.Config) { c.Logger = nil })
	var all []time.Duration
	var last time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		lat := startPods(b, n, a, fmt.Sprintf("fifty%d", i), pods)
		all = append(all, lat...)
		last += lat[len(lat)-1]
		removeAll(b, n, a)
	}
	slices.Sort(all)
	b.ReportMetric(float64(last.Milliseconds())/float64(b.N), "ms/all-50-running")
	b.ReportMetric(float64(all[len(all)/2].Milliseconds()), "p50-ms/pod")
	b.ReportMetric(float64(all[len(all)*99/100].Milliseconds()), "p99-ms/pod")
	b.ReportMetric(0, "ns/op")
}
