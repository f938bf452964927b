package node_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/plan"
)

const orderedDB = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: %d
  serviceName: db
  selector: {matchLabels: {app: db}}
  updateStrategy:
    rollingUpdate: {partition: %d}
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

// dbPods are the db pods of every node's runtime, with the image of their
// first container.
func (c *fakeCluster) dbPods() map[string]string {
	out := map[string]string{}
	for _, n := range c.nodes {
		pods, _ := n.rt.ListPods(context.Background())
		for _, p := range pods {
			if strings.HasPrefix(p.Name, "db-") && len(p.Containers) > 0 {
				out[p.Name] = p.Containers[0].Image
			}
		}
	}
	return out
}

// markReady makes the pods ready on their next probe.
func (r *readiness) markReady(pods map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range pods {
		r.ready[name] = true
	}
}

func (r *readiness) isReady(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready[name]
}

// step advances the cluster a second and lets its agents act.
func (c *fakeCluster) step() {
	c.clk.Advance(time.Second)
	time.Sleep(5 * time.Millisecond)
}

// startDB starts a 3-node cluster with db (3 replicas, OrderedReady) and
// checks, at every step, that db-N exists only once db-N-1 was let be
// ready, and that the pods appear in the order 0, 1, 2.
func startDB(t *testing.T) (*fakeCluster, *readiness) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	r := &readiness{ready: map[string]bool{}}
	for _, n := range c.nodes {
		n.rt.SetExec(r.exec)
	}
	c.src.commit(map[string]string{"db.yaml": fmt.Sprintf(orderedDB, 3, 0, "busybox:1.36")})
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	var order []string
	for step := 0; ; step++ {
		if step > 200 {
			t.Fatalf("db did not start 3 pods in 200 steps (started %v)", order)
		}
		pods := c.dbPods()
		for i := 1; i < 3; i++ {
			if _, ok := pods[fmt.Sprintf("db-%d", i)]; ok && !r.isReady(fmt.Sprintf("db-%d", i-1)) {
				t.Fatalf("step %d: db-%d exists before db-%d was ready (%v)", step, i, i-1, pods)
			}
		}
		for name := range pods {
			if !strings.Contains(strings.Join(order, " "), name) {
				order = append(order, name)
			}
		}
		if len(pods) == 3 && allReady(c, 3) {
			break
		}
		// Let the pods that exist now be ready, one step later.
		c.step()
		r.markReady(pods)
	}
	if got := strings.Join(order, " "); got != "db-0 db-1 db-2" {
		t.Fatalf("start order %q, want db-0 db-1 db-2", got)
	}
	return c, r
}

// allReady: every node's status reports n ready db pods.
func allReady(c *fakeCluster, n int) bool {
	ready := 0
	for _, cn := range c.nodes {
		for _, p := range cn.ag.Status().Pods {
			if strings.HasPrefix(p.Name, "db-") && p.Ready {
				ready++
			}
		}
	}
	return ready == n
}

func (c *fakeCluster) commitDB(t *testing.T, replicas, partition int, image string) {
	t.Helper()
	c.commitWait(t, map[string]string{"db.yaml": fmt.Sprintf(orderedDB, replicas, partition, image)})
}

// OrderedReady over three nodes: db-0, db-1, db-2 start in order, each
// once its predecessor is ready; scaled to 1, db-2 stops before db-1.
func TestFakeClusterStatefulSetOrderedStartAndReverseScaleDown(t *testing.T) {
	c, r := startDB(t)
	c.commitDB(t, 1, 0, "busybox:1.36")
	var gone []string
	for step := 0; ; step++ {
		if step > 200 {
			t.Fatalf("db did not scale down to 1 in 200 steps (stopped %v)", gone)
		}
		pods := c.dbPods()
		if _, ok := pods["db-0"]; !ok {
			t.Fatalf("step %d: db-0 stopped", step)
		}
		_, has1 := pods["db-1"]
		_, has2 := pods["db-2"]
		if has2 && !has1 {
			t.Fatalf("step %d: db-1 stopped before db-2", step)
		}
		if !has2 && len(gone) == 0 {
			gone = append(gone, "db-2")
		}
		if !has1 && len(gone) == 1 {
			gone = append(gone, "db-1")
		}
		if len(pods) == 1 {
			break
		}
		c.step()
		r.markReady(pods)
	}
	if got := strings.Join(gone, " "); got != "db-2 db-1" {
		t.Fatalf("stop order %q, want db-2 db-1", got)
	}
}

// A rolling update with partition 1: db-2 is replaced first, db-1 only once
// the new db-2 is ready, and db-0 keeps the old image. Readiness is per pod
// and image, so a replaced pod is not ready until the test lets it be.
func TestFakeClusterStatefulSetPartitionedRollingUpdate(t *testing.T) {
	c, _ := startDB(t)
	byImage := &readiness{ready: map[string]bool{}}
	for name, img := range c.dbPods() {
		byImage.ready[name+"@"+img] = true
	}
	for _, n := range c.nodes {
		rt := n.rt
		rt.SetExec(func(ns, pod, container string, cmd []string) apply.ExecResult {
			pods, _ := rt.ListPods(context.Background())
			for _, p := range pods {
				if p.Name == pod && len(p.Containers) > 0 {
					return byImage.exec(ns, pod+"@"+p.Containers[0].Image, container, cmd)
				}
			}
			return apply.ExecResult{ExitCode: 1}
		})
	}
	c.commitDB(t, 3, 1, "busybox:1.37")
	const newImage = "docker.io/library/busybox:1.37"
	var replaced []string
	for step := 0; ; step++ {
		if step > 300 {
			t.Fatalf("db-1 and db-2 were not replaced in 300 steps (replaced %v)", replaced)
		}
		pods := c.dbPods()
		if img := pods["db-0"]; img != "docker.io/library/busybox:1.36" {
			t.Fatalf("step %d: db-0 runs %q, want the old image (below the partition)", step, img)
		}
		for _, name := range []string{"db-2", "db-1"} {
			if pods[name] == newImage && !slices.Contains(replaced, name) {
				replaced = append(replaced, name)
			}
		}
		if pods["db-1"] == newImage || pods["db-1"] == "" {
			if pods["db-2"] != newImage || !byImage.isReady("db-2@"+newImage) {
				t.Fatalf("step %d: db-1 replaced before the new db-2 was ready (%v)", step, pods)
			}
		}
		if len(replaced) == 2 && allReady(c, 3) {
			break
		}
		c.step()
		for name, img := range pods {
			byImage.markReady(map[string]string{name + "@" + img: img})
		}
	}
	if got := strings.Join(replaced, " "); got != "db-2 db-1" {
		t.Fatalf("replacement order %q, want db-2 db-1", got)
	}
}

// placeDBAlone starts n1 of a cluster whose n2 and n3 are not members yet:
// n1 places db (3 replicas, OrderedReady) alone, runs db-0 and holds db-1
// for it. join makes n2 and n3 members and starts them.
func placeDBAlone(t *testing.T) (c *fakeCluster, r *readiness, join func()) {
	c = newFakeCluster(t, "n1", "n2", "n3")
	r = &readiness{ready: map[string]bool{}}
	for _, n := range c.nodes {
		n.rt.SetExec(r.exec)
	}
	late := map[string]gossip.Member{}
	c.bus.mu.Lock()
	for _, name := range []string{"n2", "n3"} {
		late[name] = c.bus.member[name]
		delete(c.bus.member, name)
	}
	c.bus.mu.Unlock()
	c.src.commit(map[string]string{"db.yaml": fmt.Sprintf(orderedDB, 3, 0, "busybox:1.36")})
	n1 := c.start("n1")
	waitFor(t, "n1 holds db-1 for db-0", func() bool {
		p, ok := podsOf(n1.ag)["db-1"]
		_, runs := c.dbPods()["db-0"]
		return runs && ok && p.Reason == plan.ReasonHeld
	})
	return c, r, func() {
		c.bus.mu.Lock()
		for name, m := range late {
			m.Since = c.clk.Now()
			c.bus.member[name] = m
		}
		c.bus.mu.Unlock()
		c.start("n2")
		c.start("n3")
		c.bus.changed()
	}
}

// runsOnce fails the test if a db pod runs on two nodes.
func (c *fakeCluster) runsOnce(t *testing.T, step int) {
	t.Helper()
	seen := map[string]string{}
	for name, pods := range c.runningOn() {
		for _, p := range pods {
			if other, ok := seen[p]; ok {
				t.Fatalf("step %d: %s runs on %s and %s (reports %v)", step, p, other, name, c.dbReports())
			}
			seen[p] = name
		}
	}
}

// db1Elsewhere says which node other than n1 reports db-1, and how.
func (c *fakeCluster) db1Elsewhere() string {
	for name, n := range c.nodes {
		if p, ok := podsOf(n.ag)["db-1"]; ok && name != "n1" {
			return name + " (" + p.Phase + " " + p.Reason + ")"
		}
	}
	return ""
}

// The ordered start's hand-off: n1 places db alone and holds db-1 for
// db-0; then n2 and n3 join and placement moves db-1 away from n1. n1
// must stop reporting the pod it never started, and the new owner must
// start it: db-0..db-2 all end Running, each ordinal on one node only.
func TestFakeClusterStatefulSetHeldPodMovesToAJoiningNode(t *testing.T) {
	c, r, join := placeDBAlone(t)
	n1 := c.nodes["n1"]
	join()
	moved := ""
	for step := 0; ; step++ {
		if step > 100 {
			t.Fatalf("db did not run 3 pods in 100 steps after the join: runtimes %v, reports %v (db-1 placed on %q)", c.runningOn(), c.dbReports(), moved)
		}
		c.runsOnce(t, step)
		if moved == "" {
			moved = c.db1Elsewhere()
		}
		pods := c.dbPods()
		if len(pods) == 3 && allReady(c, 3) {
			break
		}
		c.step()
		r.markReady(pods)
	}
	if moved == "" {
		t.Fatal("placement did not move db-1 away from n1: the test shows nothing (choose other node names)")
	}
	if _, ok := podsOf(n1.ag)["db-1"]; ok && !slices.Contains(c.runningOn()["n1"], "db-1") {
		t.Fatalf("n1 still reports db-1, which it does not run: %v", podsOf(n1.ag)["db-1"])
	}
}

// The same join, but n1 does not hear of it for a while: it still places
// db-1 on itself and starts it once db-0 is ready, while the new owner
// sees n1 report db-1 held. The new owner must wait all the same (a held
// report is no promise that the pod will not start), so db-1 never runs
// twice; once n1 hears of the join, db-1 moves, break-before-make.
func TestFakeClusterStatefulSetHeldReportStillFences(t *testing.T) {
	c, r, join := placeDBAlone(t)
	c.bus.mu.Lock()
	c.bus.blind["n1"] = true
	c.bus.mu.Unlock()
	join()
	waitFor(t, "a node that joined to place db-1", func() bool { return c.db1Elsewhere() != "" })
	for step := 0; !slices.Contains(c.runningOn()["n1"], "db-1"); step++ {
		if step > 100 {
			t.Fatalf("n1 did not start db-1 in 100 steps: runtimes %v, reports %v", c.runningOn(), c.dbReports())
		}
		c.runsOnce(t, step)
		pods := c.dbPods()
		c.step()
		r.markReady(pods)
	}
	if got := c.db1Elsewhere(); !strings.Contains(got, "Pending "+plan.ReasonHeld) {
		t.Fatalf("db-1 runs on n1, and its new owner reports it %s", got)
	}
	c.bus.mu.Lock()
	delete(c.bus.blind, "n1")
	c.bus.mu.Unlock()
	c.bus.changed()
	for step := 0; ; step++ {
		if step > 100 {
			t.Fatalf("db did not settle in 100 steps after n1 heard of the join: runtimes %v, reports %v", c.runningOn(), c.dbReports())
		}
		c.runsOnce(t, step)
		pods := c.dbPods()
		if len(pods) == 3 && allReady(c, 3) && !slices.Contains(c.runningOn()["n1"], "db-1") {
			break
		}
		c.step()
		r.markReady(pods)
	}
}

// dbReports are the db pods each node reports, with phase, reason and
// message.
func (c *fakeCluster) dbReports() map[string][]string {
	out := map[string][]string{}
	for name, n := range c.nodes {
		for _, p := range n.ag.Status().Pods {
			if strings.HasPrefix(p.Name, "db-") {
				out[name] = append(out[name], p.Name+":"+p.Phase+"/"+p.Reason+" "+p.Message)
			}
		}
	}
	return out
}
