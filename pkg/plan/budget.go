package plan

import (
	"cmp"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Budget is a PodDisruptionBudget as DisruptionsAllowed needs it.
type Budget struct {
	Namespace, Name string
	// MinAvailable or MaxUnavailable (one of them; a count or a
	// percentage).
	MinAvailable, MaxUnavailable *intstr.IntOrString
	// Expected is how many pods the budget's workloads ask for (the sum
	// of their replicas, as Kubernetes takes the scale of the pods'
	// controllers); 0 counts the pods given.
	Expected int
}

// BudgetPod is one pod a budget selects, as gossip reports it.
type BudgetPod struct {
	Name  string
	Ready bool
}

// DisruptionsAllowed is how many of the pods a budget selects may be
// disrupted now, as Kubernetes computes status.disruptionsAllowed:
// currentHealthy is the ready pods; desiredHealthy is minAvailable (a
// percentage of the expected pods, rounded up) or the expected pods less
// maxUnavailable (a percentage rounded up); allowed is currentHealthy −
// desiredHealthy, at least 0. A budget with neither bound allows none
// when it selects pods (maxUnavailable 0 would allow none; minAvailable
// 0 is spelt out).
func DisruptionsAllowed(b Budget, pods []BudgetPod) int {
	expected := b.Expected
	if expected <= 0 {
		expected = len(pods)
	}
	healthy := 0
	for _, p := range pods {
		if p.Ready {
			healthy++
		}
	}
	var desired int
	switch {
	case b.MinAvailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(b.MinAvailable, expected, true)
		if err != nil {
			return 0
		}
		desired = n
	case b.MaxUnavailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(b.MaxUnavailable, expected, true)
		if err != nil {
			return 0
		}
		desired = max(0, expected-n)
	default:
		desired = expected
	}
	return max(0, healthy-desired)
}

// budgetSpec is a PodDisruptionBudget of the revision with its selector.
type budgetSpec struct {
	Budget
	selector labels.Selector
	// workloads are "Kind/name" of the workloads whose pod template the
	// selector matches, in the revision's fixed order.
	workloads []string
}

// budgetSpecs are the revision's PodDisruptionBudgets, each with the
// workloads it selects: a budget selects a workload's pods when its
// selector matches the workload's pod template labels (gossip reports a
// pod's workload, not its labels). Budgets with a selector that does not
// parse or selects nothing are left out.
func budgetSpecs(objects []runtime.Object, specs []rolloutSpec) []budgetSpec {
	type tmpl struct {
		ns, workload string
		labels       labels.Set
		replicas     int
	}
	var tmpls []tmpl
	for _, o := range objects {
		var t *corev1.PodTemplateSpec
		var ns, w string
		r := 0
		switch o := o.(type) {
		case *appsv1.Deployment:
			t, ns, w, r = &o.Spec.Template, o.Namespace, "Deployment/"+o.Name, replicas(o.Spec.Replicas)
		case *appsv1.ReplicaSet:
			t, ns, w, r = &o.Spec.Template, o.Namespace, "ReplicaSet/"+o.Name, replicas(o.Spec.Replicas)
		case *corev1.ReplicationController:
			t, ns, w, r = o.Spec.Template, o.Namespace, "ReplicationController/"+o.Name, replicas(o.Spec.Replicas)
		case *appsv1.DaemonSet:
			t, ns, w = &o.Spec.Template, o.Namespace, "DaemonSet/"+o.Name
		case *appsv1.StatefulSet:
			t, ns, w, r = &o.Spec.Template, o.Namespace, "StatefulSet/"+o.Name, replicas(o.Spec.Replicas)
		}
		if t != nil {
			tmpls = append(tmpls, tmpl{ns, w, labels.Set(t.Labels), r})
		}
	}
	order := map[string]int{}
	for i, s := range specs {
		order[s.namespace+"/"+s.workload()] = i
	}
	var out []budgetSpec
	for _, o := range objects {
		pdb, ok := o.(*policyv1.PodDisruptionBudget)
		if !ok || pdb.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() {
			continue
		}
		b := budgetSpec{Budget: Budget{Namespace: pdb.Namespace, Name: pdb.Name,
			MinAvailable: pdb.Spec.MinAvailable, MaxUnavailable: pdb.Spec.MaxUnavailable}, selector: sel}
		daemon := false
		for _, t := range tmpls {
			if t.ns == pdb.Namespace && sel.Matches(t.labels) {
				b.workloads = append(b.workloads, t.workload)
				b.Expected += t.replicas
				daemon = daemon || strings.HasPrefix(t.workload, "DaemonSet/")
			}
		}
		if daemon {
			// A DaemonSet asks for a pod per node: count the pods.
			b.Expected = 0
		}
		if len(b.workloads) == 0 {
			continue
		}
		slices.SortFunc(b.workloads, func(x, y string) int {
			return cmp.Compare(order[b.Namespace+"/"+x], order[b.Namespace+"/"+y])
		})
		out = append(out, b)
	}
	return out
}

// budgetHolds are the pods that budgets keep running, keyed by namespace
// and pod name, each with the budget that keeps it. disrupts says which
// pods a change would disrupt (an old pod a rollout replaces, a pod a
// drain stops before its copy elsewhere is ready). For each budget, its
// Ready pods to disrupt are put in one fixed order (its workloads in the
// revision's order, each's in stop order); the first allowed of them may
// go, the others are held. waits (nil: none) names pods to disrupt that
// may not go yet even within the allowance: they keep their place in the
// order, and are held. A pod several budgets select is held by any that
// holds it, so the stricter one decides, and it is the one named (the
// fewest disruptions allowed, then the name). Unready pods are not
// protected and take no place in the order.
//
// Every node computes the same order from what gossip told it, and a
// pod's state moves one way (ready and to disrupt, gone or unready, ready
// again and no longer to disrupt): a node whose view lags sees the pod
// ahead of its own still ready and first, or already unready (fewer
// allowed), so it never disrupts its pod before the budget allows it.
func budgetHolds(budgets []budgetSpec, pods func(ns, workload string) []RolloutPod, disrupts, waits func(ns, workload string, p *RolloutPod) bool) map[Key]string {
	type cand struct {
		p        *RolloutPod
		workload string
	}
	held := map[Key]string{}
	allows := map[Key]int{} // by budget: how many disruptions it allows
	for _, b := range budgets {
		// A pod seen twice (moving, or reported by two nodes whose news
		// is of different ages) counts once, ready only if every copy is:
		// counted twice, it would allow one disruption too many.
		n := 0
		for _, w := range b.workloads {
			n += len(pods(b.Namespace, w))
		}
		at := make(map[string]int, n) // index in all by name
		all := make([]BudgetPod, 0, n)
		var cands []cand
		for _, w := range b.workloads {
			var wc []*RolloutPod
			ps := pods(b.Namespace, w)
			for i := range ps {
				p := &ps[i]
				ready := p.Ready && !p.Unknown
				if j, seen := at[p.Name]; seen {
					all[j].Ready = all[j].Ready && ready
				} else {
					at[p.Name] = len(all)
					all = append(all, BudgetPod{Name: p.Name, Ready: ready})
				}
				if ready && disrupts(b.Namespace, w, p) {
					wc = append(wc, p)
				}
			}
			sortStopOrder(wc)
			for _, p := range wc {
				cands = append(cands, cand{p, w})
			}
		}
		allowed := DisruptionsAllowed(b.Budget, all)
		allows[Key{b.Namespace, b.Name}] = allowed
		for i, c := range cands {
			if i < allowed && (waits == nil || !waits(b.Namespace, c.workload, c.p)) {
				continue
			}
			k := Key{b.Namespace, c.p.Name}
			prev, ok := held[k]
			if n := allows[Key{b.Namespace, prev}]; !ok || allowed < n || allowed == n && b.Name < prev {
				held[k] = b.Name
			}
		}
	}
	return held
}

// heldByBudgets takes out of stop the pods that budgets hold (held, from
// budgetHolds) and adds to message which budgets hold them. It returns the
// pods taken out.
func heldByBudgets(stop map[string]bool, ns string, held map[Key]string, message *string) []string {
	var by, out []string
	for name := range stop {
		if b, ok := held[Key{ns, name}]; ok {
			delete(stop, name)
			out = append(out, name)
			if !slices.Contains(by, b) {
				by = append(by, b)
			}
		}
	}
	if len(by) > 0 {
		slices.Sort(by)
		*message += "; old pods held by PodDisruptionBudget " + strings.Join(by, ", ")
	}
	return out
}
