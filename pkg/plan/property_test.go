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
			if pod.Workload.Kind == "DaemonSet" {
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

// moveOptions: clusters where capacity is not tight.
var moveOptions = genOptions{minNodes: 3, maxNodes: 40, workloads: 30, maxReplicas: 8, constraints: true, small: true}

func TestSurvivorsStay(t *testing.T) {
	var pods, moved int
	for seed := uint64(0); seed < clusters; seed++ {
		r, nodes, objs := cluster(seed, moveOptions)
		before := Schedule(objs, nodes)
		x := r.IntN(len(nodes))
		rest := append(append([]Node(nil), nodes[:x]...), nodes[x+1:]...)
		after := Schedule(objs, rest)
		for usage(after, rest) > 0.7 {
			// Too tight for the property: give every node more room.
			for i := range nodes {
				nodes[i].Allocatable.MilliCPU = nodes[i].Allocatable.MilliCPU * 3 / 2
				nodes[i].Allocatable.Memory = nodes[i].Allocatable.Memory * 3 / 2
			}
			rest = append(append([]Node(nil), nodes[:x]...), nodes[x+1:]...)
			before, after = Schedule(objs, nodes), Schedule(objs, rest)
		}
		// Pods on the node that left move; count the others.
		m := compare(before, after, nodes[x].Name, "")
		if m.notToNewSingle > 0 {
			t.Fatalf("seed %d: %d pods of unreplicated workloads moved between surviving nodes when %s left", seed, m.notToNewSingle, nodes[x].Name)
		}
		pods += m.pods
		moved += m.notToNew
	}
	frac := float64(moved) / float64(pods)
	t.Logf("survivors: %d of %d pods on surviving nodes moved (%.2f%%), all of them replicas of spread workloads", moved, pods, frac*100)
	if frac > maxSurvivorMoves {
		t.Errorf("%.2f%% of pods on surviving nodes moved; the bound is %.0f%%", frac*100, maxSurvivorMoves*100)
	}
}

// maxSurvivorMoves bounds the share of pods on surviving nodes that
// spreading moves when a node leaves (docs/placement.md: spreading and
// exact stability cannot both hold).
const maxSurvivorMoves = 0.05

func TestJoinsMoveLittle(t *testing.T) {
	var sum, worst float64
	var notToNew, pods int
	for seed := uint64(0); seed < clusters; seed++ {
		r, nodes, objs := cluster(seed, moveOptions)
		before := Schedule(objs, nodes)
		z := genNodes(r, 1, "new-", moveOptions)[0]
		after := Schedule(objs, append(append([]Node(nil), nodes...), z))
		m := compare(before, after, "", z.Name)
		if m.notToNewSingle > 0 {
			t.Fatalf("seed %d: %d pods of unreplicated workloads moved to another node than the new one", seed, m.notToNewSingle)
		}
		f := float64(m.moved) / float64(m.pods) * float64(len(nodes)+1)
		sum += f
		worst = max(worst, f)
		notToNew += m.notToNew
		pods += m.pods
	}
	mean := sum / clusters
	t.Logf("joins: fraction moved / ideal 1/(N+1): mean %.3f, worst %.3f; %d of %d pods moved elsewhere than the new node", mean, worst, notToNew, pods)
	if mean > 1.25 {
		t.Errorf("mean fraction moved is %.3f x 1/(N+1); the bound is 1.25", mean)
	}
	if frac := float64(notToNew) / float64(pods); frac > maxSurvivorMoves {
		t.Errorf("%.2f%% of pods moved between old nodes; the bound is %.0f%%", frac*100, maxSurvivorMoves*100)
	}
}
