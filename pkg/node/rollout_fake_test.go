package node_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/plan"
)

const rollingWeb = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  progressDeadlineSeconds: %d
  selector: {matchLabels: {app: web}}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: %s
        readinessProbe:
          exec: {command: [ready]}
          periodSeconds: 1
`

// readiness is what the readiness probes of a fake cluster answer: a pod
// is ready once the test said so, unless its image is broken.
type readiness struct {
	mu     sync.Mutex
	ready  map[string]bool
	broken string // pods of this template hash never become ready
}

func (r *readiness) exec(_, pod, _ string, _ []string) apply.ExecResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready[pod] && (r.broken == "" || !strings.Contains(pod, "-"+r.broken+"-")) {
		return apply.ExecResult{ExitCode: 0}
	}
	return apply.ExecResult{ExitCode: 1}
}

// sample counts, from every node's own report, the pods that exist (in its
// runtime, in any state) and those that are ready, and says whether the
// rollout to hash is done; it makes every running pod ready on the next
// probe.
func (c *fakeCluster) sample(r *readiness, hash string) (exist, ready int, done bool) {
	done = true
	for _, n := range c.nodes {
		pods, _ := n.rt.ListPods(context.Background())
		exist += len(pods)
		r.mu.Lock()
		for _, p := range pods {
			r.ready[p.Name] = true
		}
		r.mu.Unlock()
		for _, p := range n.ag.Status().Pods {
			if p.Ready {
				ready++
			}
			if p.TemplateHash != hash || !p.Ready {
				done = false
			}
		}
	}
	return exist, ready, done && ready == 6
}

func (c *fakeCluster) hashOf(name string) string {
	for _, w := range c.nodes[name].ag.Status().Workloads {
		if w.Kind == "Deployment" && w.Name == "web" {
			return w.TemplateHash
		}
	}
	return ""
}

func startRollingCluster(t *testing.T, deadline int) (*fakeCluster, *readiness) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	r := &readiness{ready: map[string]bool{}}
	for _, n := range c.nodes {
		n.rt.SetExec(r.exec)
	}
	c.src.commit(map[string]string{"web.yaml": fmt.Sprintf(rollingWeb, deadline, "busybox:1.36")})
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	waitFor(t, "6 ready pods", func() bool {
		c.clk.Advance(time.Second)
		_, ready, _ := c.sample(r, c.hashOf("n1"))
		return ready == 6
	})
	return c, r
}

// A rolling update of 6 replicas over 3 nodes, with a readiness probe: at
// every step never fewer than 5 ready pods (replicas − maxUnavailable) nor
// more than 7 pods (replicas + maxSurge), until all 6 run the new template.
func TestFakeClusterRollingUpdateKeepsItsBounds(t *testing.T) {
	c, r := startRollingCluster(t, 600)
	c.commitWait(t, map[string]string{"web.yaml": fmt.Sprintf(rollingWeb, 600, "busybox:1.37")})
	hash := c.hashOf("n1")
	sawOld := false
	for step := 0; ; step++ {
		if step > 400 {
			t.Fatal("the rollout did not complete in 400 steps")
		}
		exist, ready, done := c.sample(r, hash)
		if ready < 5 {
			t.Fatalf("step %d: %d pods ready, fewer than replicas − maxUnavailable = 5", step, ready)
		}
		if exist > 7 {
			t.Fatalf("step %d: %d pods exist, more than replicas + maxSurge = 7", step, exist)
		}
		if done {
			break
		}
		sawOld = true
		c.clk.Advance(500 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
	if !sawOld {
		t.Fatal("the rollout was over before the first sample")
	}
	waitFor(t, "web Healthy on every node", func() bool {
		for _, n := range c.nodes {
			ws := n.ag.Status().Workloads
			if len(ws) != 1 || ws[0].Health != plan.HealthHealthy || ws[0].Old != 0 {
				return false
			}
		}
		return true
	})
}

// A new image that never becomes ready: the rollout stops at its deadline,
// Degraded, and the old pods keep serving.
func TestFakeClusterBrokenImageStopsAtTheDeadline(t *testing.T) {
	c, r := startRollingCluster(t, 30)
	c.commitWait(t, map[string]string{"web.yaml": fmt.Sprintf(rollingWeb, 30, "busybox:broken")})
	hash := c.hashOf("n1")
	r.mu.Lock()
	r.broken = hash
	r.mu.Unlock()
	waitFor(t, "Degraded on every node", func() bool {
		c.clk.Advance(time.Second)
		exist, ready, _ := c.sample(r, hash)
		if ready < 5 || exist > 7 {
			t.Fatalf("%d ready, %d pods: out of bounds", ready, exist)
		}
		for _, n := range c.nodes {
			ws := n.ag.Status().Workloads
			if len(ws) != 1 || ws[0].Health != plan.HealthDegraded {
				return false
			}
		}
		return true
	})
	// Later still, nothing more is replaced: the old pods serve.
	c.clk.Advance(time.Minute)
	time.Sleep(20 * time.Millisecond)
	_, ready, _ := c.sample(r, hash)
	if ready < 5 {
		t.Fatalf("%d pods ready after the deadline, want the old ones serving (5)", ready)
	}
	st := c.nodes["n1"].ag.Status().Workloads[0]
	if st.Old < 5 || !strings.Contains(st.Message, "no progress") {
		t.Fatalf("status %+v, want Degraded with the old pods", st)
	}
}

// An agent restarted in the middle of a rollout keeps the old pods the
// rollout was keeping: it knows their templates again from the revision
// they came from.
func TestFakeClusterRestartMidRolloutKeepsOldPods(t *testing.T) {
	c, r := startRollingCluster(t, 600)
	commit := c.commitWait(t, map[string]string{"web.yaml": fmt.Sprintf(rollingWeb, 600, "busybox:slow")})
	hash := c.hashOf("n1")
	r.mu.Lock()
	r.broken = hash // the new pods never become ready: the rollout stays where it is
	r.mu.Unlock()
	oldOn := func(name string) int {
		pods, _ := c.nodes[name].rt.ListPods(context.Background())
		n := 0
		for _, p := range pods {
			if !strings.Contains(p.Name, "-"+hash+"-") {
				n++
			}
		}
		return n
	}
	waitFor(t, "the rollout stuck with 5 old pods", func() bool {
		c.clk.Advance(time.Second)
		return oldOn("n1")+oldOn("n2")+oldOn("n3") == 5
	})
	// The node with the most old pods restarts.
	name := "n1"
	for _, n := range []string{"n2", "n3"} {
		if oldOn(n) > oldOn(name) {
			name = n
		}
	}
	before := oldOn(name)
	if before == 0 {
		t.Fatal("no old pod on any node")
	}
	c.nodes[name].stop()
	c.start(name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.nodes[name].ag.WaitRevision(ctx, commit); err != nil {
		t.Fatal(err)
	}
	// Its probes find the old pods ready again; none of them stopped.
	waitFor(t, "5 pods ready again", func() bool {
		c.clk.Advance(time.Second)
		if got := oldOn(name); got != before {
			t.Fatalf("%s ran %d old pods before its restart, %d after", name, before, got)
		}
		_, ready, _ := c.sample(r, hash)
		return ready == 5
	})
	for range 10 {
		c.clk.Advance(time.Second)
		time.Sleep(5 * time.Millisecond)
		if got := oldOn(name); got != before {
			t.Fatalf("%s ran %d old pods before its restart, %d after", name, before, got)
		}
	}
}

const webBudget = `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
`

// A Deployment allowed 3 unavailable pods by its strategy rolls within its
// PodDisruptionBudget of maxUnavailable 1: at every step at least 5 of the
// 6 pods ready, over three agents.
func TestFakeClusterRollingUpdateKeepsItsDisruptionBudget(t *testing.T) {
	wide := func(image string) string {
		return strings.Replace(fmt.Sprintf(rollingWeb, 600, image),
			"{maxSurge: 1, maxUnavailable: 1}", "{maxSurge: 0, maxUnavailable: 3}", 1)
	}
	c := newFakeCluster(t, "n1", "n2", "n3")
	r := &readiness{ready: map[string]bool{}}
	for _, n := range c.nodes {
		n.rt.SetExec(r.exec)
	}
	c.src.commit(map[string]string{"web.yaml": wide("busybox:1.36"), "pdb.yaml": webBudget})
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	waitFor(t, "6 ready pods", func() bool {
		c.clk.Advance(time.Second)
		_, ready, _ := c.sample(r, c.hashOf("n1"))
		return ready == 6
	})
	c.commitWait(t, map[string]string{"web.yaml": wide("busybox:1.37"), "pdb.yaml": webBudget})
	hash := c.hashOf("n1")
	for step := 0; ; step++ {
		if step > 400 {
			t.Fatal("the rollout did not complete in 400 steps")
		}
		_, ready, done := c.sample(r, hash)
		if ready < 5 {
			t.Fatalf("step %d: %d pods ready, fewer than the budget's 6 − maxUnavailable 1", step, ready)
		}
		if done {
			break
		}
		c.clk.Advance(500 * time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
}
