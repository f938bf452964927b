package plan

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// drainPod is a pod of drainCase's cluster: where it runs and whether it
// is ready.
type drainPod struct {
	name, node string
	ready      bool
}

// drain decides for node self, among nodes a, b and c (those in draining
// unschedulable), what happens to its pods of objects when the cluster's
// pods are pods: it returns the pods self keeps running (sorted) and those
// a budget holds.
func drain(t *testing.T, objects []runtime.Object, self string, draining []string, pods []drainPod) (kept []string, held []BudgetHold) {
	return drainSettling(t, objects, self, draining, pods, time.Time{})
}

// drainSettling is drain with the node's drain settling until starts.
func drainSettling(t *testing.T, objects []runtime.Object, self string, draining []string, pods []drainPod, starts time.Time) (kept []string, held []BudgetHold) {
	t.Helper()
	var nodes []Node
	for _, n := range []string{"a", "b", "c"} {
		nodes = append(nodes, Node{Name: n, Labels: map[string]string{"node": n}, Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110},
			Unschedulable: slices.Contains(draining, n)})
	}
	// What each node was given before the drain: its desired pods.
	var before []Node
	for _, n := range nodes {
		n.Unschedulable = false
		before = append(before, n)
	}
	running := map[Key]bool{}
	for _, p := range pods {
		if p.node == self {
			running[Key{"default", p.name}] = true
		}
	}
	was := NodePods(objects, before, self, "r1", DefaultServiceCIDR, running)
	retained := was.Pods
	for k, d := range was.Leaving {
		retained[k] = d
	}
	view := RolloutView{Started: rt0, Draining: draining, DrainStarts: starts}
	peers := map[string]*Peer{}
	for _, p := range pods {
		k := Key{"default", p.name}
		workload := "StatefulSet/db"
		if !strings.HasPrefix(p.name, "db-") {
			workload = "Deployment/" + p.name[:strings.IndexByte(p.name, '-')]
		}
		hash := ""
		for _, pl := range Schedule(objects, before).Pods {
			if pl.Name == p.name {
				hash = pl.TemplateHash
				if hash == "" {
					hash = TemplateHash(pl.Template)
				}
			}
		}
		if hash == "" {
			t.Fatalf("no pod %s in the placement", p.name)
		}
		view.Pods = append(view.Pods, ClusterPod{Namespace: "default", Workload: workload, RolloutPod: RolloutPod{
			Name: p.name, Node: p.node, TemplateHash: hash, Ready: p.ready, ReadySince: rt0, Phase: PhaseRunning}})
		if p.node == self {
			if retained[k] == nil {
				t.Fatalf("%s runs on %s, which placement did not give it", p.name, self)
			}
			continue
		}
		if peers[p.node] == nil {
			peers[p.node] = &Peer{Member: Member{Node: Node{Name: p.node}, State: MemberAlive}, Pods: map[Key]PeerPod{}}
		}
		peers[p.node].Pods[k] = PeerPod{Ready: p.ready, TemplateHash: hash}
	}
	var ps []Peer
	for _, n := range []string{"a", "b", "c"} {
		if p := peers[n]; p != nil && n != self {
			ps = append(ps, *p)
		}
	}
	share := NodePods(objects, nodes, self, "r1", DefaultServiceCIDR, running)
	h := HandOff(share, ps, true, time.Time{}, HandoffPolicy{}, rt0)
	r := Rollouts(objects, h.Share, retained, self, view, rt0.Add(time.Minute))
	for k, d := range r.Share.Pods {
		if running[k] && d.Hold == "" {
			kept = append(kept, k.Name)
		}
	}
	slices.Sort(kept)
	return kept, r.Held
}

// A node's drain stops a StatefulSet pod before it starts elsewhere, and a
// pod that fits nowhere else: each waits while a budget selecting it
// allows no disruption; the order of the pods to disrupt is the same on
// every node, so two draining nodes together disrupt no more than the
// budget allows. A Deployment's pod that moves make-before-break is no
// disruption.
func TestRolloutsDrainHonoursBudgets(t *testing.T) {
	db := budgetSTS(3, "db:1")
	// web fits only on a.
	web := rollingDeployment("web", "web:1", 1)
	web.Spec.Template.Spec.NodeSelector = map[string]string{"node": "a"}
	webPods := func() []drainPod {
		return []drainPod{{"web-" + TemplateHash(&web.Spec.Template) + "-0", "a", true}}
	}
	all := func(on ...string) []drainPod {
		var ps []drainPod
		for i, n := range on {
			ps = append(ps, drainPod{"db-" + string(rune('0'+i)), n, true})
		}
		return ps
	}
	for _, c := range []struct {
		name     string
		objects  []runtime.Object
		self     string
		draining []string
		pods     []drainPod
		kept     string // the pods self keeps running
		held     string // "pod:budget ..."
	}{
		{name: "no budget: both StatefulSet pods stop", objects: []runtime.Object{db}, self: "a", draining: []string{"a"},
			pods: all("b", "a", "a")},
		{name: "minAvailable 2: the highest ordinal goes, the other waits", objects: []runtime.Object{db, dbBudget("db", "2", "")},
			self: "a", draining: []string{"a"}, pods: all("b", "a", "a"), kept: "db-1", held: "db-1:db"},
		{name: "minAvailable 3: both wait", objects: []runtime.Object{db, dbBudget("db", "3", "")},
			self: "a", draining: []string{"a"}, pods: all("b", "a", "a"), kept: "db-1 db-2", held: "db-1:db db-2:db"},
		{name: "maxUnavailable 50% allows 2", objects: []runtime.Object{db, dbBudget("db", "", "50%")},
			self: "a", draining: []string{"a"}, pods: all("b", "a", "a")},
		{name: "a pod unready elsewhere: none allowed", objects: []runtime.Object{db, dbBudget("db", "2", "")},
			self: "a", draining: []string{"a"}, pods: []drainPod{{"db-0", "b", false}, {"db-1", "a", true}, {"db-2", "a", true}},
			kept: "db-1 db-2", held: "db-1:db db-2:db"},
		{name: "an unready pod of its own is not protected", objects: []runtime.Object{db, dbBudget("db", "2", "")},
			self: "a", draining: []string{"a"}, pods: []drainPod{{"db-0", "b", true}, {"db-1", "a", true}, {"db-2", "a", false}},
			kept: "db-1", held: "db-1:db"},
		{name: "two draining nodes, seen from a: a's db-2 is first and goes", objects: []runtime.Object{db, dbBudget("db", "2", "")},
			self: "a", draining: []string{"a", "c"}, pods: all("b", "c", "a")},
		{name: "two draining nodes, seen from c: c's db-1 waits", objects: []runtime.Object{db, dbBudget("db", "2", "")},
			self: "c", draining: []string{"a", "c"}, pods: all("b", "c", "a"), kept: "db-1", held: "db-1:db"},
		{name: "a node not draining keeps its pods", objects: []runtime.Object{db, dbBudget("db", "3", "")},
			self: "b", draining: []string{"a", "c"}, pods: all("b", "a", "c"), kept: "db-0"},
		{name: "a pod two nodes report counts once", objects: []runtime.Object{db, dbBudget("db", "2", "")},
			self: "a", draining: []string{"a"}, pods: []drainPod{{"db-0", "b", true}, {"db-1", "b", false}, {"db-2", "a", true}, {"db-2", "c", true}},
			kept: "db-2", held: "db-2:db"},
		{name: "a pod that fits nowhere else waits for its budget", objects: []runtime.Object{web, budget("web", func(b *policyv1.PodDisruptionBudget) { b.Spec.MinAvailable = intOrPercent("1") })},
			self: "a", draining: []string{"a"}, pods: webPods(), kept: webPods()[0].name, held: webPods()[0].name + ":web"},
		{name: "a pod that fits nowhere else, no budget: it stops", objects: []runtime.Object{web},
			self: "a", draining: []string{"a"}, pods: webPods()},
	} {
		kept, held := drain(t, c.objects, c.self, c.draining, c.pods)
		if got := strings.Join(kept, " "); got != c.kept {
			t.Errorf("%s: %s keeps %q, want %q", c.name, c.self, got, c.kept)
		}
		var hs []string
		for _, h := range held {
			hs = append(hs, h.Name+":"+h.Budget)
		}
		if got := strings.Join(hs, " "); got != c.held {
			t.Errorf("%s: held %q, want %q", c.name, got, c.held)
		}
	}
}

// While its drain settles, a node disrupts none of the pods budgets
// select, even those the budget allows, and says until when; pods of no
// budget do not wait. After, the budget decides.
func TestRolloutsDrainSettles(t *testing.T) {
	db := budgetSTS(3, "db:1")
	pods := []drainPod{{"db-0", "b", true}, {"db-1", "a", true}, {"db-2", "a", true}}
	now := rt0.Add(time.Minute) // as drain decides
	for _, c := range []struct {
		name    string
		objects []runtime.Object
		starts  time.Time
		kept    string
	}{
		{"settling: both wait", []runtime.Object{db, dbBudget("db", "2", "")}, now.Add(time.Second), "db-1 db-2"},
		{"settled: the budget allows db-2", []runtime.Object{db, dbBudget("db", "2", "")}, now, "db-1"},
		{"settling, no budget: nothing waits", []runtime.Object{db}, now.Add(time.Second), ""},
	} {
		kept, held := drainSettling(t, c.objects, "a", []string{"a"}, pods, c.starts)
		if got := strings.Join(kept, " "); got != c.kept {
			t.Errorf("%s: a keeps %q, want %q", c.name, got, c.kept)
		}
		for _, h := range held {
			if settling := now.Before(c.starts); settling != h.Until.Equal(c.starts) {
				t.Errorf("%s: %+v: until %v, want %v while settling", c.name, h, h.Until, c.starts)
			}
		}
	}
}

// BenchmarkBudgetHoldsDrain is the cost budgets add to one node's decision
// while a node drains: a StatefulSet of 10,000 pods over 10 nodes, one of
// them draining (its 1,000 pods placed on the others), under a budget of
// maxUnavailable 5%: 500 may go, 500 are held.
func BenchmarkBudgetHoldsDrain(b *testing.B) {
	const n = 10_000
	objects := []runtime.Object{budgetSTS(n, "db:1"), dbBudget("db", "", "5%")}
	specs := rolloutSpecs(objects)
	pods := make([]RolloutPod, n)
	placement := make([]Pod, n)
	for i := range n {
		name, node := fmt.Sprintf("db-%d", i), fmt.Sprintf("n%d", i%10)
		pods[i] = RolloutPod{Name: name, Node: node, TemplateHash: specs[0].hash, Ready: true}
		if node == "n0" {
			node = fmt.Sprintf("n%d", 1+i%9)
		}
		placement[i] = Pod{Namespace: "default", Name: name, Node: node}
	}
	view := func(ns, workload string) []RolloutPod { return pods }
	replaces := replacedByRollouts(specs)
	b.ReportAllocs()
	for b.Loop() {
		drained := drainedBy([]string{"n0"}, placement)
		held := budgetHolds(budgetSpecs(objects, specs), view, func(ns, workload string, p *RolloutPod) bool {
			return replaces(ns, workload, p) || drained(ns, workload, p)
		}, nil)
		if len(held) != 500 {
			b.Fatalf("the budget holds %d pods, want 500", len(held))
		}
	}
}
