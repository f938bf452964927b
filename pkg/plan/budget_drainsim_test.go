package plan

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Two nodes leave at about the same time, each running pods of one
// StatefulSet under a minAvailable budget, and the drains move a few pods
// between the nodes that stay (as the spread changes); every node decides each step
// through Rollouts on a view in which each peer's pods are of a different
// age (up to lagP steps) and another node's drain is known up to lagM
// steps late. With the drain's settle (lagM + lagP steps) the cluster
// never has fewer ready pods than minAvailable, and the leaves complete;
// without it, some seeds go below (which shows the settle is needed).
func TestRolloutsDrainSkewSimulation(t *testing.T) {
	const seeds = 300
	for seed := range seeds {
		if msg, done := simulateDrain(uint64(seed), true); msg != "" || !done {
			t.Fatalf("with the settle: seed %d: %s (completed %v)", seed, msg, done)
		}
	}
	below := 0
	for seed := range seeds {
		if msg, _ := simulateDrain(uint64(seed), false); msg != "" {
			below++
		}
	}
	t.Logf("without the settle, %d of %d seeds went below minAvailable", below, seeds)
	if below == 0 {
		t.Error("without the settle no seed went below minAvailable: the simulation does not exercise the skew")
	}
}

// drainSimPod is one copy of a pod: where it runs, when it is ready, when
// it is gone (-1 while running).
type drainSimPod struct {
	name, node      string
	readyAt, goneAt int
}

// simulateDrain runs one seed; it returns what went wrong ("" if nothing)
// and whether the leaves completed.
func simulateDrain(seed uint64, settle bool) (string, bool) {
	rng := rand.New(rand.NewPCG(seed, 11))
	nNodes := 4 + rng.IntN(2)
	nodes := make([]string, nNodes)
	for i := range nodes {
		nodes[i] = "node-" + strconv.Itoa(i)
	}
	r := 3 + rng.IntN(4)
	m := r - 1 - rng.IntN(2)
	lagM, lagP := 1+rng.IntN(3), 1+rng.IntN(3)
	s := 0
	if settle {
		s = lagM + lagP
	}
	perm := rng.Perm(nNodes)
	leaveAt := map[string]int{nodes[perm[0]]: 1, nodes[perm[1]]: 1 + rng.IntN(2*lagM+2)}
	// memberLag[viewer][x]: how late viewer learns that x drains.
	memberLag := map[string]map[string]int{}
	for _, v := range nodes {
		memberLag[v] = map[string]int{}
		for _, x := range nodes {
			if x != v {
				memberLag[v][x] = rng.IntN(lagM + 1)
			}
		}
	}
	knows := func(viewer, x string, at int) bool {
		la, ok := leaveAt[x]
		return ok && at >= la+memberLag[viewer][x]
	}
	// Where a pod of a leaving node goes: the same for every viewer.
	target := func(i int) string {
		for k := range nNodes {
			if n := nodes[(i+k)%nNodes]; leaveAt[n] == 0 {
				return n
			}
		}
		return ""
	}
	db := budgetSTS(int32(r), "db:1")
	objects := []runtime.Object{db, dbBudget("db", strconv.Itoa(m), "")}
	hash := TemplateHash(&db.Spec.Template)
	var pods []*drainSimPod
	for i := range r {
		pods = append(pods, &drainSimPod{name: "db-" + strconv.Itoa(i), node: nodes[rng.IntN(nNodes)], goneAt: -1})
	}
	exists := func(p *drainSimPod, at int) bool { return p.goneAt < 0 || p.goneAt > at }
	report := func(at int) map[string][]RolloutPod {
		out := map[string][]RolloutPod{}
		for _, p := range pods {
			if exists(p, at) {
				out[p.node] = append(out[p.node], RolloutPod{Name: p.name, Node: p.node, TemplateHash: hash,
					Ready: p.goneAt < 0 && p.readyAt <= at, Phase: PhaseRunning})
			}
		}
		return out
	}
	var history []map[string][]RolloutPod
	desc := fmt.Sprintf("(%d nodes, %d replicas, minAvailable %d, lags %d/%d, settle %d, leaves %v)", nNodes, r, m, lagM, lagP, s, leaveAt)
	for at := 0; at < 300; at++ {
		history = append(history, report(at))
		now := rt0.Add(time.Duration(at) * time.Second)
		for _, si := range rng.Perm(nNodes) {
			me := nodes[si]
			view := RolloutView{Started: rt0}
			for _, x := range nodes {
				if knows(me, x, at) {
					view.Draining = append(view.Draining, x)
				}
			}
			if la, ok := leaveAt[me]; ok && at >= la {
				view.DrainStarts = rt0.Add(time.Duration(la+s) * time.Second)
			}
			where := map[string]string{}
			for _, x := range nodes {
				seen := at
				if x != me {
					seen = max(0, at-rng.IntN(lagP+1))
				}
				for _, p := range history[seen][x] {
					view.Pods = append(view.Pods, ClusterPod{Namespace: "default", Workload: "StatefulSet/db", RolloutPod: p})
					where[p.Name] = x
				}
			}
			placed := map[string]string{}
			for i := range r {
				name := "db-" + strconv.Itoa(i)
				to, ok := where[name]
				// While a drain is known, the spread changes: a pod of
				// three moves to its target from wherever it runs,
				// between nodes that stay too.
				if !ok || slices.Contains(view.Draining, to) || len(view.Draining) > 0 && i%3 == 1 {
					to = target(i)
				}
				placed[name] = to
			}
			res := decideManually(objects, me, view, placed, hash, now)
			for _, p := range pods {
				if p.node == me && p.goneAt < 0 && res.Share.Pods[Key{"default", p.name}] == nil {
					p.goneAt = at + 1
				}
			}
			// A pod placed here starts once no node reports it (HandOff).
			for k, d := range res.Share.Pods {
				if _, reported := where[k.Name]; reported || d.Hold != "" {
					continue
				}
				if slices.ContainsFunc(pods, func(p *drainSimPod) bool { return p.name == k.Name && exists(p, at) }) {
					continue
				}
				pods = append(pods, &drainSimPod{name: k.Name, node: me, readyAt: at + 1 + rng.IntN(3), goneAt: -1})
			}
		}
		ready, done := 0, true
		copies := map[string]int{}
		for _, p := range pods {
			if !exists(p, at) {
				continue
			}
			copies[p.name]++
			if p.goneAt < 0 && p.readyAt <= at {
				ready++
			} else {
				done = false
			}
			if leaveAt[p.node] > 0 {
				done = false
			}
		}
		for name, n := range copies {
			if n > 1 {
				return fmt.Sprintf("step %d: %s runs %d times %s", at, name, n, desc), false
			}
		}
		if ready < m {
			return fmt.Sprintf("step %d: %d pods ready, below minAvailable %d %s", at, ready, m, desc), false
		}
		if done && len(copies) == r {
			return "", true
		}
	}
	return "", false
}

// decideManually runs Rollouts for node me over a StatefulSet db whose pods
// placement puts where placed says (pod name to node; "" for none).
func decideManually(objects []runtime.Object, me string, view RolloutView, placed map[string]string, hash string, now time.Time) RolloutResult {
	share := NodeShare{Pods: map[Key]*DesiredPod{}}
	retained := map[Key]*DesiredPod{}
	for _, name := range slices.Sorted(maps.Keys(placed)) {
		to := placed[name]
		share.Placement = append(share.Placement, Pod{Namespace: "default", Name: name, Node: to,
			Workload: WorkloadRef{"StatefulSet", "db"}, TemplateHash: hash})
		k := Key{"default", name}
		d := &DesiredPod{Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}},
			Workload: "StatefulSet/db", TemplateHash: hash}
		retained[k] = d
		if to == me {
			share.Pods[k] = d
		}
	}
	return Rollouts(objects, share, retained, me, view, now)
}

// While a node drains, a StatefulSet pod that placement moves between two
// nodes that stay is a disruption too, which the budget orders with the
// drain's; a node without quorum keeps none (fencing wins); with no
// drain, moves are not this rule's.
func TestRolloutsDrainMovesBetweenStayingNodes(t *testing.T) {
	db := budgetSTS(3, "db:1")
	hash := TemplateHash(&db.Spec.Template)
	objects := []runtime.Object{db, dbBudget("db", "2", "")}
	pod := func(name, node string) ClusterPod {
		return ClusterPod{Namespace: "default", Workload: "StatefulSet/db", RolloutPod: RolloutPod{
			Name: name, Node: node, TemplateHash: hash, Ready: true, Phase: PhaseRunning}}
	}
	// db-0 on b moves to c; db-1 on the draining a goes to c; db-2 stays on c.
	pods := []ClusterPod{pod("db-0", "b"), pod("db-1", "a"), pod("db-2", "c")}
	placed := map[string]string{"db-0": "c", "db-1": "c", "db-2": "c"}
	now := rt0.Add(time.Minute)
	for _, c := range []struct {
		name     string
		self     string
		draining []string
		fenced   bool
		kept     bool // self keeps its pod
	}{
		{name: "a's db-1 is first of the budget's order and goes", self: "a", draining: []string{"a"}},
		{name: "b's db-0 waits behind it", self: "b", draining: []string{"a"}, kept: true},
		{name: "b without quorum lets it go", self: "b", draining: []string{"a"}, fenced: true},
		{name: "no drain: the move is not held here", self: "b"},
	} {
		view := RolloutView{Started: rt0, Pods: pods, Draining: c.draining, Fenced: c.fenced}
		res := decideManually(objects, c.self, view, placed, hash, now)
		mine := "db-1"
		if c.self == "b" {
			mine = "db-0"
		}
		if _, kept := res.Share.Pods[Key{"default", mine}]; kept != c.kept {
			t.Errorf("%s: %s keeps %s: %v, want %v", c.name, c.self, mine, kept, c.kept)
		}
		if held := len(res.Held) > 0; held != c.kept {
			t.Errorf("%s: held %+v", c.name, res.Held)
		}
	}
}
