package plan

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

// The properties of Schedule, checked over seeded random clusters. They are
// the specification; docs/placement.md argues why they hold. A failure
// names its seed: rerun it with that seed to reproduce it.

const clusters = 100

func cluster(seed uint64, o genOptions) (*rand.Rand, []Node, []runtime.Object) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b9))
	n := o.minNodes + r.IntN(o.maxNodes-o.minNodes+1)
	return r, genNodes(r, n, "node-", o), genObjects(r, o)
}

func TestDeterministicUnderPermutation(t *testing.T) {
	o := genOptions{minNodes: 1, maxNodes: 30, workloads: 25, maxReplicas: 10, constraints: true}
	for seed := uint64(0); seed < clusters; seed++ {
		r, nodes, objs := cluster(seed, o)
		want := Schedule(objs, nodes)
		for k := 0; k < 3; k++ {
			got := Schedule(shuffled(r, objs), shuffled(r, nodes))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d: placement changed when nodes and objects were permuted", seed)
			}
		}
	}
}

func TestCapacityAndFilters(t *testing.T) {
	// Big pods on few nodes: many do not fit, so capacity is tested at its
	// limit.
	o := genOptions{minNodes: 1, maxNodes: 12, workloads: 40, maxReplicas: 12, constraints: true}
	for seed := uint64(0); seed < clusters; seed++ {
		_, nodes, objs := cluster(seed, o)
		p := Schedule(objs, nodes)
		byName := map[string]*Node{}
		for i := range nodes {
			byName[nodes[i].Name] = &nodes[i]
		}
		used := map[string]Resources{}
		for _, pod := range p.Pods {
			if pod.Node == "" {
				if pod.Unplaceable == "" {
					t.Fatalf("seed %d: pod %s has neither a node nor a reason", seed, pod.Key())
				}
				continue
			}
			n := byName[pod.Node]
			if r := staticReason(n, &pod.Template.Spec); r != "" {
				t.Fatalf("seed %d: pod %s on %s which the filters refuse: %s", seed, pod.Key(), n.Name, r)
			}
			used[n.Name] = used[n.Name].add(pod.Requests)
		}
		for name, u := range used {
			if !byName[name].Allocatable.fits(u) {
				t.Fatalf("seed %d: node %s over its allocatable: uses %v of %v", seed, name, u, byName[name].Allocatable)
			}
		}
	}
}

func TestSpread(t *testing.T) {
	// Roomy nodes, so that every eligible node has room for the spread cap.
	o := genOptions{minNodes: 1, maxNodes: 30, workloads: 25, maxReplicas: 40, constraints: true, small: true}
	for seed := uint64(0); seed < clusters; seed++ {
		_, nodes, objs := cluster(seed, o)
		for i := range nodes {
			nodes[i].Allocatable.MilliCPU *= 20
			nodes[i].Allocatable.Memory *= 20
		}
		p := Schedule(objs, nodes)
		type wl struct{ ns, kind, name string }
		perNode := map[wl]map[string]int{}
		total := map[wl]int{}
		tmpl := map[wl]*Pod{}
		for i, pod := range p.Pods {
			// A DaemonSet has one pod per node; a Job's attempts are not
			// spread (TestJobAttemptPlacedByItsNameAlone).
			if pod.Workload.Kind == "DaemonSet" || pod.Workload.Kind == "Job" || pod.Workload.Kind == "CronJob" {
				continue
			}
			k := wl{pod.Namespace, pod.Workload.Kind, pod.Workload.Name}
			if perNode[k] == nil {
				perNode[k] = map[string]int{}
			}
			tmpl[k] = &p.Pods[i]
			if pod.Node == "" {
				if !strings.Contains(pod.Unplaceable, "insufficient") && !strings.Contains(pod.Unplaceable, "too many") {
					continue // no node passes the filters
				}
				t.Fatalf("seed %d: pod %s unplaceable in a roomy cluster: %s", seed, pod.Key(), pod.Unplaceable)
			}
			perNode[k][pod.Node]++
			total[k]++
			tmpl[k] = &p.Pods[i]
		}
		for k, counts := range perNode {
			eligible := 0
			for i := range nodes {
				if staticReason(&nodes[i], &tmpl[k].Template.Spec) == "" {
					eligible++
				}
			}
			if eligible == 0 {
				continue
			}
			limit := (total[k] + eligible - 1) / eligible
			for node, c := range counts {
				if c > limit {
					t.Fatalf("seed %d: %s/%s has %d of %d replicas on %s; %d eligible nodes allow %d", seed, k.kind, k.name, c, total[k], node, eligible, limit)
				}
			}
		}
	}
}

// movement compares two placements of the same objects.
type movement struct {
	pods, moved int
	// notToNew counts pods that moved to another node than the one that
	// joined; single counts those of them that belong to workloads with one
	// pod (bare Pods, one replica, DaemonSets), which spreading never
	// constrains.
	notToNew, notToNewSingle int
}

// Pods on the node named gone (one that left) are not counted; to is the
// node that joined.
func compare(before, after Placement, gone, to string) movement {
	replicas := map[string]int{}
	for _, p := range before.Pods {
		replicas[p.Namespace+"/"+p.Workload.Kind+"/"+p.Workload.Name]++
	}
	var m movement
	for _, p := range before.Pods {
		if p.Node == "" || p.Node == gone {
			continue
		}
		q := after.Find(p.Namespace, p.Name)
		if q == nil {
			continue // a DaemonSet's pod for the node that left
		}
		m.pods++
		if q.Node == p.Node {
			continue
		}
		m.moved++
		if q.Node != to {
			m.notToNew++
			if p.Workload.Kind == "DaemonSet" || replicas[p.Namespace+"/"+p.Workload.Kind+"/"+p.Workload.Name] == 1 {
				m.notToNewSingle++
			}
		}
	}
	return m
}

// moveOptions: clusters where capacity is not tight, 3 to 40 nodes,
// workloads of 1 to 8 replicas.
var moveOptions = genOptions{minNodes: 3, maxNodes: 40, workloads: 30, maxReplicas: 8, constraints: true, small: true}

// smallClusters: 3 to 10 nodes and as many replicas, where spreading binds
// most and so moves most.
var smallClusters = genOptions{minNodes: 3, maxNodes: 10, workloads: 30, maxReplicas: 10, constraints: true, small: true}

// figures measure movement over the seeded clusters of o.
type figures struct {
	// Joins: the fraction of pods that move when a node joins, divided by
	// the ideal 1/(N+1).
	joinMean, joinWorst float64
	// Leaves: the fraction of pods that move when a node leaves, divided
	// by 1/N, the share of the node that left.
	leaveMean, leaveWorst float64
	// Pods that moved between two nodes that were members before and
	// after, as a share of the pods on such nodes.
	joinStray, leaveStray float64
}

func measure(t *testing.T, o genOptions) figures {
	var f figures
	var joinStray, joinPods, leaveStray, leavePods int
	for seed := uint64(0); seed < clusters; seed++ {
		r, nodes, objs := cluster(seed, o)
		x := r.IntN(len(nodes))
		z := genNodes(r, 1, "new-", o)[0]
		var before, left Placement
		var rest []Node
		for {
			rest = append(append([]Node(nil), nodes[:x]...), nodes[x+1:]...)
			before, left = Schedule(objs, nodes), Schedule(objs, rest)
			if usage(left, rest) <= 0.7 {
				break
			}
			// Too tight for the properties: give every node more room.
			for i := range nodes {
				nodes[i].Allocatable.MilliCPU = nodes[i].Allocatable.MilliCPU * 3 / 2
				nodes[i].Allocatable.Memory = nodes[i].Allocatable.Memory * 3 / 2
			}
		}
		joined := Schedule(objs, append(append([]Node(nil), nodes...), z))

		m := compare(before, left, nodes[x].Name, "")
		if m.notToNewSingle > 0 {
			t.Fatalf("seed %d: %d pods of unreplicated workloads moved between surviving nodes when %s left", seed, m.notToNewSingle, nodes[x].Name)
		}
		all := compare(before, left, "", "")
		lf := float64(all.moved) / float64(all.pods) * float64(len(nodes))
		f.leaveMean += lf / clusters
		f.leaveWorst = max(f.leaveWorst, lf)
		leaveStray += m.notToNew
		leavePods += m.pods

		m = compare(before, joined, "", z.Name)
		if m.notToNewSingle > 0 {
			t.Fatalf("seed %d: %d pods of unreplicated workloads moved to another node than the new one", seed, m.notToNewSingle)
		}
		jf := float64(m.moved) / float64(m.pods) * float64(len(nodes)+1)
		f.joinMean += jf / clusters
		f.joinWorst = max(f.joinWorst, jf)
		joinStray += m.notToNew
		joinPods += m.pods
	}
	f.joinStray = float64(joinStray) / float64(joinPods)
	f.leaveStray = float64(leaveStray) / float64(leavePods)
	t.Logf("join: moved/ideal mean %.3f worst %.3f, %.2f%% of pods moved between old nodes", f.joinMean, f.joinWorst, 100*f.joinStray)
	t.Logf("leave: moved/ideal mean %.3f worst %.3f, %.2f%% of pods on survivors moved", f.leaveMean, f.leaveWorst, 100*f.leaveStray)
	return f
}

// TestMovement checks, over 100 clusters of 3 to 40 nodes at most 70%
// used, that
//   - survivors stay and joins move only to the new node, exactly, for
//     every workload that spreading does not constrain (bare Pods, one
//     replica, DaemonSets);
//   - for replicated workloads, which spreading does constrain
//     (TestSpreadAndStabilityConflict), at most 5% of the pods on nodes
//     that stay move;
//   - the fraction of pods moved when a node joins averages at most
//     1.25 x 1/(N+1).
func TestMovement(t *testing.T) {
	f := measure(t, moveOptions)
	if f.joinMean > 1.25 {
		t.Errorf("mean fraction moved on join is %.3f x 1/(N+1); the bound is 1.25", f.joinMean)
	}
	if f.joinStray > 0.05 || f.leaveStray > 0.05 {
		t.Errorf("%.2f%% (join), %.2f%% (leave) of pods moved between nodes that stayed; the bound is 5%%", 100*f.joinStray, 100*f.leaveStray)
	}
}

// TestMovementSmallClusters measures the worst case for spreading: 3 to 10
// nodes and workloads of up to 10 replicas. The exact properties still
// hold for unreplicated workloads; the bounds for the others are looser,
// as docs/placement.md reports.
func TestMovementSmallClusters(t *testing.T) {
	f := measure(t, smallClusters)
	if f.joinMean > 2 {
		t.Errorf("mean fraction moved on join is %.3f x 1/(N+1); the bound for small clusters is 2", f.joinMean)
	}
	if f.joinStray > 0.15 || f.leaveStray > 0.15 {
		t.Errorf("%.2f%% (join), %.2f%% (leave) of pods moved between nodes that stayed; the bound for small clusters is 15%%", 100*f.joinStray, 100*f.leaveStray)
	}
}
