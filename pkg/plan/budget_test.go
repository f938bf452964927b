package plan

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func readyPods(ready, unready int) []BudgetPod {
	var ps []BudgetPod
	for i := range ready + unready {
		ps = append(ps, BudgetPod{Name: fmt.Sprintf("p-%d", i), Ready: i < ready})
	}
	return ps
}

func TestDisruptionsAllowed(t *testing.T) {
	n := func(v int) *intstr.IntOrString { x := intstr.FromInt32(int32(v)); return &x }
	pct := func(s string) *intstr.IntOrString { x := intstr.FromString(s); return &x }
	for _, c := range []struct {
		name string
		b    Budget
		pods []BudgetPod
		want int
	}{
		{"minAvailable count, all ready", Budget{MinAvailable: n(2)}, readyPods(3, 0), 1},
		{"minAvailable count, one unready", Budget{MinAvailable: n(2)}, readyPods(2, 1), 0},
		{"minAvailable above healthy", Budget{MinAvailable: n(5)}, readyPods(3, 0), 0},
		{"minAvailable 0", Budget{MinAvailable: n(0)}, readyPods(3, 0), 3},
		{"minAvailable percent rounds up", Budget{MinAvailable: pct("50%")}, readyPods(3, 0), 1},
		{"minAvailable 100%", Budget{MinAvailable: pct("100%")}, readyPods(4, 0), 0},
		{"minAvailable percent of expected", Budget{MinAvailable: pct("50%"), Expected: 6}, readyPods(4, 0), 1},
		{"maxUnavailable count", Budget{MaxUnavailable: n(1)}, readyPods(3, 0), 1},
		{"maxUnavailable count, one unready", Budget{MaxUnavailable: n(1)}, readyPods(2, 1), 0},
		{"maxUnavailable of expected replicas", Budget{MaxUnavailable: n(1), Expected: 3}, readyPods(4, 0), 2},
		{"maxUnavailable percent rounds up", Budget{MaxUnavailable: pct("30%")}, readyPods(4, 0), 2},
		{"maxUnavailable 0", Budget{MaxUnavailable: n(0)}, readyPods(3, 0), 0},
		{"no pods", Budget{MinAvailable: n(1)}, nil, 0},
		{"no pods, maxUnavailable", Budget{MaxUnavailable: n(1)}, nil, 0},
		{"no pods expected", Budget{MaxUnavailable: n(1), Expected: 2}, nil, 0},
		{"no bound", Budget{}, readyPods(3, 0), 0},
	} {
		if got := DisruptionsAllowed(c.b, c.pods); got != c.want {
			t.Errorf("%s: %d disruptions allowed, want %d", c.name, got, c.want)
		}
	}
}

func budget(name string, mod func(*policyv1.PodDisruptionBudget)) *policyv1.PodDisruptionBudget {
	b := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	mod(b)
	return b
}

// budgetSimPod is a pod of simulateOneNode's one-node cluster.
type budgetSimPod struct {
	hash  string
	ready bool
}

// simulateOneNode rolls the one workload (Kind/name) of one node from v1
// to v2 through Rollouts, one decision a step: a new pod started in a step
// is ready from the next, an old pod left out of the share (or replaced by
// one of another template) stops. It returns, for each step, the ready
// pods left after the decision acted, and the step the rollout completed
// at (-1 if it did not within steps).
func simulateOneNode(t *testing.T, workload string, v1, v2 []runtime.Object, steps int) (readyAfter []int, done int) {
	t.Helper()
	nodes := []Node{{Name: "a", Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}}}
	cidr := DefaultServiceCIDR
	old := NodePods(v1, nodes, "a", "r1", cidr, nil)
	retained := map[Key]*DesiredPod{}
	pods := map[Key]budgetSimPod{}
	for k, d := range old.Pods {
		retained[k] = d
		pods[k] = budgetSimPod{d.TemplateHash, true}
	}
	now := rt0
	for step := range steps {
		now = now.Add(time.Second)
		view := RolloutView{Started: rt0}
		running := map[Key]bool{}
		for k, p := range pods {
			running[k] = true
			view.Pods = append(view.Pods, ClusterPod{Namespace: "default", Workload: workload,
				RolloutPod: RolloutPod{Name: k.Name, Node: "a", TemplateHash: p.hash, Ready: p.ready, ReadySince: rt0, Phase: PhaseRunning}})
		}
		share := NodePods(v2, nodes, "a", "r2", cidr, running)
		r := Rollouts(v2, share, retained, "a", view, now)
		if r.Workloads[0].Health == HealthHealthy {
			return readyAfter, step
		}
		next := map[Key]budgetSimPod{}
		ready := 0
		for k, d := range r.Share.Pods {
			if d.Hold != "" {
				continue
			}
			p, ok := pods[k]
			if !ok || p.hash != d.TemplateHash {
				p = budgetSimPod{d.TemplateHash, false}
			} else if p.ready {
				ready++
			}
			next[k] = p
		}
		readyAfter = append(readyAfter, ready)
		// Pods started in this step are ready from the next.
		for k, p := range next {
			p.ready = true
			next[k] = p
		}
		pods = next
	}
	return readyAfter, -1
}

// A budget of minAvailable = replicas holds every old pod until a new one
// is ready: the rollout proceeds on its surge alone, never below the
// replicas ready, one pod a step.
func TestRolloutsBudgetMinAvailableAllHoldsOldPods(t *testing.T) {
	three := intstr.FromInt32(3)
	pdb := budget("web", func(b *policyv1.PodDisruptionBudget) { b.Spec.MinAvailable = &three })
	v1 := []runtime.Object{rollingDeployment("web", "web:1", 3), pdb}
	v2 := []runtime.Object{rollingDeployment("web", "web:2", 3), pdb}
	ready, done := simulateOneNode(t, "Deployment/web", v1, v2, 20)
	if done < 0 {
		t.Fatalf("rollout did not complete; ready pods by step %v", ready)
	}
	for i, n := range ready {
		if n < 3 {
			t.Errorf("step %d: %d pods ready, the budget wants 3 (%v)", i, n, ready)
		}
	}
	// Without the budget, maxUnavailable 1 lets it go below 3.
	free, _ := simulateOneNode(t, "Deployment/web", v1[:1], v2[:1], 20)
	t.Logf("ready pods by step: %v with the budget (done at step %d), %v without", ready, done, free)
	if !containsBelow(free, 3) {
		t.Errorf("without the budget, ready pods by step %v: never below 3, so the budget test proves nothing", free)
	}
}

func containsBelow(xs []int, n int) bool {
	for _, x := range xs {
		if x < n {
			return true
		}
	}
	return false
}

// A budget of maxUnavailable 1 paces a rollout whose own maxUnavailable
// is larger: at most one pod below the replicas at any step.
func TestRolloutsBudgetMaxUnavailablePaces(t *testing.T) {
	one := intstr.FromInt32(1)
	pdb := budget("web", func(b *policyv1.PodDisruptionBudget) { b.Spec.MaxUnavailable = &one })
	wide := func(d *appsv1.Deployment) {
		zero, three := intstr.FromInt32(0), intstr.FromInt32(3)
		d.Spec.Strategy.RollingUpdate.MaxSurge = &zero
		d.Spec.Strategy.RollingUpdate.MaxUnavailable = &three
	}
	v1 := []runtime.Object{rollingDeployment("web", "web:1", 4, wide), pdb}
	v2 := []runtime.Object{rollingDeployment("web", "web:2", 4, wide), pdb}
	ready, done := simulateOneNode(t, "Deployment/web", v1, v2, 20)
	if done < 0 {
		t.Fatalf("rollout did not complete; ready pods by step %v", ready)
	}
	for i, n := range ready {
		if n < 3 {
			t.Errorf("step %d: %d pods ready, the budget allows at most 1 unavailable of 4 (%v)", i, n, ready)
		}
	}
	free, _ := simulateOneNode(t, "Deployment/web", v1[:1], v2[:1], 20)
	t.Logf("ready pods by step: %v with the budget (done at step %d), %v without", ready, done, free)
	if !containsBelow(free, 3) {
		t.Errorf("without the budget, ready pods by step %v: never below 3, so the budget test proves nothing", free)
	}
}

// The status says which budget holds old pods, and an unready old pod is
// not protected.
func TestRolloutsBudgetStatusAndUnreadyPods(t *testing.T) {
	three := intstr.FromInt32(3)
	pdb := budget("web-pdb", func(b *policyv1.PodDisruptionBudget) { b.Spec.MinAvailable = &three })
	nodes := []Node{{Name: "a", Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}}}
	v1 := []runtime.Object{rollingDeployment("web", "web:1", 3), pdb}
	v2 := []runtime.Object{rollingDeployment("web", "web:2", 3), pdb}
	old := NodePods(v1, nodes, "a", "r1", DefaultServiceCIDR, nil)
	// The rollout (3 replicas, maxUnavailable 1) would stop the old pod
	// of the highest ordinal; the budget allows no disruption of the two
	// ready ones.
	for _, c := range []struct {
		unready  int
		stopped  int // ordinal of the old pod that stops, -1 for none
		messaged bool
	}{
		{unready: 0, stopped: -1, messaged: true},
		{unready: 2, stopped: 2, messaged: false},
	} {
		retained := map[Key]*DesiredPod{}
		view := RolloutView{Started: rt0}
		running := map[Key]bool{}
		for k, d := range old.Pods {
			retained[k] = d
			running[k] = true
			view.Pods = append(view.Pods, ClusterPod{Namespace: "default", Workload: "Deployment/web",
				RolloutPod: RolloutPod{Name: k.Name, Node: "a", TemplateHash: d.TemplateHash, Ready: ordinalOf(k.Name) != c.unready, ReadySince: rt0}})
		}
		share := NodePods(v2, nodes, "a", "r2", DefaultServiceCIDR, running)
		r := Rollouts(v2, share, retained, "a", view, rt0.Add(time.Second))
		for k := range old.Pods {
			d := r.Share.Pods[k]
			kept := d != nil && d.Revision == "r1"
			if want := ordinalOf(k.Name) != c.stopped; kept != want {
				t.Errorf("unready old pod %d: old pod %s kept %v, want %v", c.unready, k.Name, kept, want)
			}
		}
		if got := strings.Contains(r.Workloads[0].Message, "PodDisruptionBudget web-pdb"); got != c.messaged {
			t.Errorf("unready old pod %d: status %q names the budget: %v, want %v", c.unready, r.Workloads[0].Message, got, c.messaged)
		}
	}
}

// BenchmarkBudgetHolds is the cost a budget adds to one node's rollout
// decision: 10,000 pods of one Deployment, 5,000 old and ready, 5,000 new
// of which half are ready, under a budget of maxUnavailable 10%.
func BenchmarkBudgetHolds(b *testing.B) {
	const n = 10_000
	ten := intstr.FromString("10%")
	objects := []runtime.Object{rollingDeployment("web", "web:2", n/2),
		budget("web", func(p *policyv1.PodDisruptionBudget) { p.Spec.MaxUnavailable = &ten })}
	specs := rolloutSpecs(objects)
	var pods []RolloutPod
	for i := range n / 2 {
		pods = append(pods, RolloutPod{Name: fmt.Sprintf("web-old-%d", i), Node: "node", TemplateHash: "old", Ready: true})
		pods = append(pods, RolloutPod{Name: fmt.Sprintf("web-new-%d", i), Node: "node", TemplateHash: specs[0].hash, Ready: i%2 == 0})
	}
	view := func(ns, workload string) []RolloutPod { return pods }
	replaces := replacedByRollouts(specs)
	b.ReportAllocs()
	for b.Loop() {
		held := budgetHolds(budgetSpecs(objects, specs), view, replaces, nil)
		if len(held) == 0 {
			b.Fatal("the budget holds nothing")
		}
	}
}
