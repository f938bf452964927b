package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/gossip"
)

// budgetDB is a StatefulSet db of 3 replicas whose RollingUpdate may
// replace all of them at once (maxUnavailable 3): only a budget paces it.
const budgetDB = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  updateStrategy:
    rollingUpdate: {maxUnavailable: 3}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: app
        image: %s
        readinessProbe:
          exec: {command: [ready]}
          periodSeconds: 1
`

const dbMinAvailable = `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: db}
spec:
  minAvailable: %d
  selector: {matchLabels: {app: db}}
`

// startBudgetDB starts three agents on files and lets every pod be ready
// one step after it exists; a pod's readiness is per node and image, so
// that a pod replaced or moved is not ready until the test lets it be. It
// returns once the three db pods are ready.
func startBudgetDB(t *testing.T, files map[string]string) (*fakeCluster, *readiness) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	r := &readiness{ready: map[string]bool{}}
	for name, n := range c.nodes {
		rt := n.rt
		rt.SetExec(func(ns, pod, container string, cmd []string) apply.ExecResult {
			pods, _ := rt.ListPods(context.Background())
			for _, p := range pods {
				if p.Name == pod && len(p.Containers) > 0 {
					return r.exec(ns, name+"/"+pod+"@"+p.Containers[0].Image, container, cmd)
				}
			}
			return apply.ExecResult{ExitCode: 1}
		})
	}
	c.src.commit(files)
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	for step := 0; !allReady(c, 3); step++ {
		if step > 200 {
			t.Fatalf("db did not run 3 ready pods in 200 steps (%v)", c.runningOn())
		}
		c.step()
		c.markDBReady(r)
	}
	return c, r
}

// markDBReady lets every db pod that exists now be ready on its next
// probe.
func (c *fakeCluster) markDBReady(r *readiness) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, n := range c.nodes {
		pods, _ := n.rt.ListPods(context.Background())
		for _, p := range pods {
			if strings.HasPrefix(p.Name, "db-") && len(p.Containers) > 0 {
				r.ready[name+"/"+p.Name+"@"+p.Containers[0].Image] = true
			}
		}
	}
}

// readyDB counts the ready db pods every node reports of itself.
func readyDB(c *fakeCluster) int {
	n := 0
	for _, cn := range c.nodes {
		for _, p := range cn.ag.Status().Pods {
			if strings.HasPrefix(p.Name, "db-") && p.Ready {
				n++
			}
		}
	}
	return n
}

// commitWait commits files and waits until every node runs the commit,
// which it returns.
func (c *fakeCluster) commitWait(t *testing.T, files map[string]string) string {
	t.Helper()
	commit := c.src.commit(files)
	for _, n := range c.nodes {
		n.ag.Sync()
	}
	for _, n := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := n.ag.WaitRevision(ctx, commit); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	return commit
}

// A StatefulSet of 3 replicas whose own strategy would replace all three
// at once rolls, over three agents, within its minAvailable 2 budget: at
// every step at least 2 db pods ready, until all run the new image.
func TestFakeClusterStatefulSetRollingUpdateKeepsItsBudget(t *testing.T) {
	pdb := fmt.Sprintf(dbMinAvailable, 2)
	c, r := startBudgetDB(t, map[string]string{"db.yaml": fmt.Sprintf(budgetDB, "busybox:1.36"), "pdb.yaml": pdb})
	c.commitWait(t, map[string]string{"db.yaml": fmt.Sprintf(budgetDB, "busybox:1.37"), "pdb.yaml": pdb})
	const newImage = "docker.io/library/busybox:1.37"
	var readyBySteps []int
	for step := 0; ; step++ {
		if step > 300 {
			t.Fatalf("db was not replaced in 300 steps (ready by step %v, pods %v)", readyBySteps, c.dbPods())
		}
		ready := readyDB(c)
		readyBySteps = append(readyBySteps, ready)
		if ready < 2 {
			t.Fatalf("step %d: %d db pods ready, the budget wants 2 (ready by step %v, pods %v)", step, ready, readyBySteps, c.dbPods())
		}
		pods := c.dbPods()
		done := len(pods) == 3 && ready == 3
		for _, img := range pods {
			done = done && img == newImage
		}
		if done {
			break
		}
		c.step()
		c.markDBReady(r)
	}
	t.Logf("ready db pods by step: %v", readyBySteps)
	if !slices.Contains(readyBySteps, 2) {
		t.Fatalf("ready db pods by step %v: never 2, so no pod was ever replaced under the budget", readyBySteps)
	}
}

// 'gitorch node leave' of a node that runs a StatefulSet pod under a
// budget that allows no disruption waits and says which pod which budget
// holds, in its error and in the status; once a commit relaxes the budget
// to minAvailable 2, the leave completes, never below 2 db pods ready.
func TestFakeClusterLeaveWaitsForTheBudget(t *testing.T) {
	db := fmt.Sprintf(budgetDB, "busybox:1.36")
	c, r := startBudgetDB(t, map[string]string{"db.yaml": db, "pdb.yaml": fmt.Sprintf(dbMinAvailable, 3)})
	on := c.runningOn()
	leaving := ""
	for _, name := range []string{"n1", "n2", "n3"} {
		if len(on[name]) > 0 && leaving == "" {
			leaving = name
		}
	}
	ag := c.nodes[leaving].ag
	mine := on[leaving]
	slices.Sort(mine)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := ag.Leave(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("leave under a budget of minAvailable 3: %v, want it to wait until its timeout", err)
	}
	for _, pod := range mine {
		if want := "default/" + pod + " (budget db)"; !strings.Contains(err.Error(), want) {
			t.Errorf("leave's error %q does not name %s", err, want)
		}
	}
	if got := c.runningOn()[leaving]; !slices.Equal(sortedCopy(got), mine) {
		t.Fatalf("%s runs %v while the budget allows no disruption, want %v", leaving, got, mine)
	}
	st := ag.Cluster().Leaving
	if st == nil {
		t.Fatal("the status of the leaving node does not say it is leaving")
	}
	var held []string
	for _, h := range st.Held {
		if h.Budget != "db" {
			t.Errorf("held %+v: want budget db", h)
		}
		held = append(held, h.Name)
	}
	if !slices.Equal(held, mine) || st.Pods != len(mine) {
		t.Fatalf("status: leaving with %d pods, held %v; want %d pods, held %v", st.Pods, held, len(mine), mine)
	}

	// The budget allows one disruption at a time: the leave proceeds.
	c.commitWait(t, map[string]string{"db.yaml": db, "pdb.yaml": fmt.Sprintf(dbMinAvailable, 2)})
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ag.Leave(ctx) }()
	var readyBySteps []int
	for step := 0; ; step++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("leave: %v (ready by step %v)", err, readyBySteps)
			}
			if got := c.runningOn()[leaving]; len(got) != 0 {
				t.Fatalf("%s left and still runs %v", leaving, got)
			}
			done = nil
		default:
		}
		if done == nil && readyDB(c) == 3 {
			// The pods that moved are ready on the other nodes.
			t.Logf("ready db pods by step: %v", readyBySteps)
			return
		}
		if step > 300 {
			t.Fatalf("leave and the moves did not complete in 300 steps (ready by step %v, running %v)", readyBySteps, c.runningOn())
		}
		ready := readyDB(c)
		readyBySteps = append(readyBySteps, ready)
		if ready < 2 {
			t.Fatalf("step %d: %d db pods ready, the budget wants 2 (ready by step %v, running %v)", step, ready, readyBySteps, c.runningOn())
		}
		c.step()
		c.markDBReady(r)
	}
}

func sortedCopy(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}

// A leaving node whose StatefulSet pods a budget holds, cut off from the
// majority, still stops them: the others start them once fenced, and a
// budget must never make a pod run twice.
func TestFakeClusterLeaveHeldByABudgetStillFencesWithoutQuorum(t *testing.T) {
	c, _ := startBudgetDB(t, map[string]string{"db.yaml": fmt.Sprintf(budgetDB, "busybox:1.36"), "pdb.yaml": fmt.Sprintf(dbMinAvailable, 3)})
	on := c.runningOn()
	leaving := ""
	for _, name := range []string{"n1", "n2", "n3"} {
		if len(on[name]) > 0 && leaving == "" {
			leaving = name
		}
	}
	ag := c.nodes[leaving].ag
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ag.Leave(ctx) }()
	waitFor(t, leaving+" reports the pods its budget holds", func() bool {
		l := ag.Status().Leaving
		return l != nil && len(l.Held) == len(on[leaving])
	})
	c.bus.mu.Lock()
	c.bus.alone[leaving] = true
	c.bus.mu.Unlock()
	c.bus.setState(leaving, gossip.StateDead)
	c.clk.Advance(4 * time.Second) // past the 3 s grace: no quorum
	waitFor(t, leaving+" stops its StatefulSet pods", func() bool { return len(c.runningOn()[leaving]) == 0 })
	if err := <-done; err != nil {
		t.Fatalf("leave: %v", err)
	}
}
