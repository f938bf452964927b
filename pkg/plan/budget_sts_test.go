package plan

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// budgetSTS is a StatefulSet db labelled app: db whose RollingUpdate
// replaces up to all its pods at once (maxUnavailable = replicas), so
// that only a budget paces it.
func budgetSTS(replicas int32, image string, mod ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	all := intstr.FromInt32(replicas)
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"}, Spec: appsv1.StatefulSetSpec{
		Replicas: &replicas, ServiceName: "db",
		UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: &all}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}},
	}}
	for _, m := range mod {
		m(s)
	}
	return s
}

// dbBudget selects app: db with minAvailable (min) or maxUnavailable
// (max), each a count or a percentage; "" leaves it unset.
func dbBudget(name, min, max string) *policyv1.PodDisruptionBudget {
	return budget(name, func(b *policyv1.PodDisruptionBudget) {
		b.Spec.Selector.MatchLabels = map[string]string{"app": "db"}
		b.Spec.MinAvailable, b.Spec.MaxUnavailable = intOrPercent(min), intOrPercent(max)
	})
}

func intOrPercent(s string) *intstr.IntOrString {
	if s == "" {
		return nil
	}
	v := intstr.Parse(s)
	return &v
}

var oneNode = []Node{{Name: "a", Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}}}

// stsRollout runs Rollouts on node a, which runs db-0..n-1 of v1 (ready
// unless listed in unready), against v2. It returns the old pods it
// replaces or stops now, sorted, and db's status.
func stsRollout(t *testing.T, v1, v2 []runtime.Object, unready ...string) ([]string, WorkloadStatus) {
	t.Helper()
	old := NodePods(v1, oneNode, "a", "r1", DefaultServiceCIDR, nil)
	retained := map[Key]*DesiredPod{}
	running := map[Key]bool{}
	view := RolloutView{Started: rt0}
	for k, d := range old.Pods {
		retained[k], running[k] = d, true
		view.Pods = append(view.Pods, ClusterPod{Namespace: k.Namespace, Workload: d.Workload, RolloutPod: RolloutPod{
			Name: k.Name, Node: "a", TemplateHash: d.TemplateHash, Ready: !slices.Contains(unready, k.Name), ReadySince: rt0, Phase: PhaseRunning}})
	}
	share := NodePods(v2, oneNode, "a", "r2", DefaultServiceCIDR, running)
	r := Rollouts(v2, share, retained, "a", view, rt0.Add(time.Minute))
	var gone []string
	for k, d := range old.Pods {
		if now := r.Share.Pods[k]; now == nil || now.TemplateHash != d.TemplateHash {
			gone = append(gone, k.Name)
		}
	}
	slices.Sort(gone)
	for _, w := range r.Workloads {
		if w.Kind == "StatefulSet" {
			return gone, w
		}
	}
	t.Fatal("no StatefulSet status")
	return nil, WorkloadStatus{}
}

// A StatefulSet's rolling update replaces an old pod only while the
// budgets that select it allow a disruption, counted as the eviction API
// counts them (healthy: Running and Ready pods the budget selects); the
// stricter of two budgets holds; the status names the budget.
func TestRolloutsStatefulSetBudget(t *testing.T) {
	other := budget("web", func(b *policyv1.PodDisruptionBudget) { b.Spec.MinAvailable = intOrPercent("100%") })
	for _, c := range []struct {
		name     string
		budgets  []runtime.Object
		unready  []string
		replaced string // the old pods replaced now
		heldBy   string // the budgets the status names
	}{
		{name: "no budget: the StatefulSet's own maxUnavailable", replaced: "db-0 db-1 db-2"},
		{name: "a budget of other pods", budgets: []runtime.Object{other}, replaced: "db-0 db-1 db-2"},
		{name: "minAvailable 2 allows 1", budgets: []runtime.Object{dbBudget("db", "2", "")}, replaced: "db-2", heldBy: "db"},
		{name: "minAvailable 3 allows 0", budgets: []runtime.Object{dbBudget("db", "3", "")}, heldBy: "db"},
		{name: "maxUnavailable 1 allows 1", budgets: []runtime.Object{dbBudget("db", "", "1")}, replaced: "db-2", heldBy: "db"},
		{name: "maxUnavailable 0 allows 0", budgets: []runtime.Object{dbBudget("db", "", "0")}, heldBy: "db"},
		{name: "minAvailable 50% rounds up to 2", budgets: []runtime.Object{dbBudget("db", "50%", "")}, replaced: "db-2", heldBy: "db"},
		{name: "maxUnavailable 34% rounds up to 2", budgets: []runtime.Object{dbBudget("db", "", "34%")}, replaced: "db-1 db-2", heldBy: "db"},
		{name: "minAvailable 100% allows 0", budgets: []runtime.Object{dbBudget("db", "100%", "")}, heldBy: "db"},
		{name: "two budgets: the stricter holds", budgets: []runtime.Object{dbBudget("loose", "1", ""), dbBudget("strict", "", "1")},
			replaced: "db-2", heldBy: "strict"},
		{name: "two budgets, the other order", budgets: []runtime.Object{dbBudget("strict", "", "1"), dbBudget("loose", "1", "")},
			replaced: "db-2", heldBy: "strict"},
		{name: "an unready old pod is replaced at no cost", budgets: []runtime.Object{dbBudget("db", "2", "")}, unready: []string{"db-0"},
			replaced: "db-0", heldBy: "db"},
	} {
		v1 := append([]runtime.Object{budgetSTS(3, "db:1")}, c.budgets...)
		v2 := append([]runtime.Object{budgetSTS(3, "db:2")}, c.budgets...)
		gone, st := stsRollout(t, v1, v2, c.unready...)
		if got := strings.Join(gone, " "); got != c.replaced {
			t.Errorf("%s: replaced %q, want %q", c.name, got, c.replaced)
		}
		named := ""
		if _, after, ok := strings.Cut(st.Message, "held by PodDisruptionBudget "); ok {
			named = after
		}
		if named != c.heldBy {
			t.Errorf("%s: status %q names budgets %q, want %q", c.name, st.Message, named, c.heldBy)
		}
	}
}

// Scale-down is no disruption a budget limits (Kubernetes checks no budget
// for it): db-2 stops although the budget allows none.
func TestRolloutsStatefulSetScaleDownIgnoresBudgets(t *testing.T) {
	pdb := dbBudget("db", "100%", "")
	gone, _ := stsRollout(t, []runtime.Object{budgetSTS(3, "db:1"), pdb}, []runtime.Object{budgetSTS(2, "db:1"), pdb})
	if got := strings.Join(gone, " "); got != "db-2" {
		t.Fatalf("scaled from 3 to 2 under a budget of 100%%: stopped %q, want db-2", got)
	}
}

// The ordinals below the partition are not replaced, so they take no
// disruption the budget allows: of partition 1 and maxUnavailable 1, db-2
// is replaced.
func TestRolloutsStatefulSetBudgetPartition(t *testing.T) {
	pdb := dbBudget("db", "", "1")
	part := func(s *appsv1.StatefulSet) {
		one := int32(1)
		s.Spec.UpdateStrategy.RollingUpdate.Partition = &one
	}
	gone, _ := stsRollout(t, []runtime.Object{budgetSTS(3, "db:1", part), pdb}, []runtime.Object{budgetSTS(3, "db:2", part), pdb})
	if got := strings.Join(gone, " "); got != "db-2" {
		t.Fatalf("replaced %q, want db-2", got)
	}
}

// A StatefulSet of 3 replicas rolled with a minAvailable 2 budget never has
// fewer than 2 pods ready, and completes; without the budget its own
// maxUnavailable 3 replaces all at once.
func TestRolloutsStatefulSetBudgetKeepsMinAvailable(t *testing.T) {
	pdb := dbBudget("db", "2", "")
	v1 := []runtime.Object{budgetSTS(3, "db:1"), pdb}
	v2 := []runtime.Object{budgetSTS(3, "db:2"), pdb}
	ready, done := simulateOneNode(t, "StatefulSet/db", v1, v2, 30)
	if done < 0 {
		t.Fatalf("rollout did not complete; ready pods by step %v", ready)
	}
	for i, n := range ready {
		if n < 2 {
			t.Errorf("step %d: %d pods ready, the budget wants 2 (%v)", i, n, ready)
		}
	}
	free, _ := simulateOneNode(t, "StatefulSet/db", v1[:1], v2[:1], 30)
	t.Logf("ready pods by step: %v with the budget (done at step %d), %v without", ready, done, free)
	if !containsBelow(free, 2) {
		t.Errorf("without the budget, ready pods by step %v: never below 2, so the test proves nothing", free)
	}
}
