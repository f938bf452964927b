package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ClusterPod is one pod of the cluster as a node sees it, for Rollouts.
type ClusterPod struct {
	Namespace string
	// Workload is "Kind/name" of the object the pod comes from.
	Workload string
	RolloutPod
}

// RolloutView is what a node knows of the cluster's pods.
type RolloutView struct {
	// Pods of every node the node has news of, its own included.
	Pods []ClusterPod
	// Waiting, when set, says why the node may not count the cluster's
	// pods yet (a member it has no news of, a member on another revision):
	// rollouts hold.
	Waiting string
	// Started is when the node began running the revision.
	Started time.Time
	// Draining are the members whose pods move away (unschedulable:
	// leaving or cordoned) and that are alive or suspect. While one
	// drains, the pods that stop before a copy elsewhere is ready (a
	// StatefulSet's that placement moves, one of a draining node that
	// fits nowhere else) are disruptions, which budgets limit (drainedBy).
	Draining []string
	// DrainStarts: a draining node disrupts none of its pods a budget
	// selects before then (its drain began a settle ago): the drains other
	// nodes began about when it did, and what they stopped, reach it
	// first, so that every node orders the same pods to disrupt.
	DrainStarts time.Time
	// Fenced: the node sees no majority of the members (no quorum), so it
	// stops its StatefulSet pods for the others to start once fenced
	// (HandOff): no budget keeps one running here.
	Fenced bool
}

// RolloutResult is what Rollouts decides for one node.
type RolloutResult struct {
	// Share is the node's share with new pods held until they may start
	// and old pods kept until they may stop.
	Share NodeShare
	// Workloads are the health of every workload of the revision, sorted
	// by namespace, kind and name.
	Workloads []WorkloadStatus
	// Wake is when the decision changes without news; zero if never.
	Wake time.Time
	// Held are the node's pods that a drain (its own, or another node's
	// that moves them) would stop but that a PodDisruptionBudget keeps
	// running, sorted.
	Held []BudgetHold
}

// BudgetHold is a pod that a PodDisruptionBudget keeps running.
type BudgetHold struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Budget is the PodDisruptionBudget's name (of the pod's namespace).
	Budget string `json:"budget"`
	// Until, when set: the node's drain settles until then
	// (RolloutView.DrainStarts); the budget may allow the disruption after.
	Until time.Time `json:"until,omitzero"`
}

// rolloutSpec is a workload as Rollouts needs it.
type rolloutSpec struct {
	kind, namespace, name string
	hash                  string
	replicas              int
	daemon                bool
	strategy              Strategy
	// rolls: the workload replaces pods by DecideRollout; the others
	// (StatefulSet, Job, Pod) only get a health.
	rolls bool
	job   *batchv1.Job
	// sts is the StatefulSet (nil for one that left the manifests but
	// whose pods still run).
	sts *appsv1.StatefulSet
}

func (s *rolloutSpec) workload() string { return s.kind + "/" + s.name }

// rolloutSpecs are the workloads of objects with their strategies.
func rolloutSpecs(objects []runtime.Object) []rolloutSpec {
	var out []rolloutSpec
	seconds := func(n int32) time.Duration { return time.Duration(n) * time.Second }
	for _, o := range objects {
		switch o := o.(type) {
		case *appsv1.Deployment:
			r := replicas(o.Spec.Replicas)
			s := rolloutSpec{kind: "Deployment", namespace: o.Namespace, name: o.Name, hash: TemplateHash(&o.Spec.Template), replicas: r, rolls: true}
			s.strategy = Strategy{MinReady: seconds(o.Spec.MinReadySeconds), Paused: o.Spec.Paused}
			if o.Spec.ProgressDeadlineSeconds != nil {
				s.strategy.ProgressDeadline = seconds(*o.Spec.ProgressDeadlineSeconds)
			}
			if o.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
				s.strategy.Recreate = true
			} else {
				ru := o.Spec.Strategy.RollingUpdate
				if ru == nil {
					ru = &appsv1.RollingUpdateDeployment{}
				}
				s.strategy.MaxSurge, s.strategy.MaxUnavailable = ResolveBounds(ru.MaxSurge, ru.MaxUnavailable, r)
			}
			out = append(out, s)
		case *appsv1.ReplicaSet:
			r := replicas(o.Spec.Replicas)
			s := rolloutSpec{kind: "ReplicaSet", namespace: o.Namespace, name: o.Name, hash: TemplateHash(&o.Spec.Template), replicas: r, rolls: true}
			s.strategy.MinReady = seconds(o.Spec.MinReadySeconds)
			s.strategy.MaxSurge, s.strategy.MaxUnavailable = ResolveBounds(nil, nil, r)
			out = append(out, s)
		case *corev1.ReplicationController:
			if o.Spec.Template == nil {
				continue
			}
			r := replicas(o.Spec.Replicas)
			s := rolloutSpec{kind: "ReplicationController", namespace: o.Namespace, name: o.Name, hash: TemplateHash(o.Spec.Template), replicas: r, rolls: true}
			s.strategy.MinReady = seconds(o.Spec.MinReadySeconds)
			s.strategy.MaxSurge, s.strategy.MaxUnavailable = ResolveBounds(nil, nil, r)
			out = append(out, s)
		case *appsv1.DaemonSet:
			s := rolloutSpec{kind: "DaemonSet", namespace: o.Namespace, name: o.Name, hash: TemplateHash(&o.Spec.Template), daemon: true, rolls: true}
			s.strategy.MinReady = seconds(o.Spec.MinReadySeconds)
			s.strategy.MaxUnavailable = 1
			if o.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
				// gitorch deletes no pod by hand: OnDelete replaces them at
				// once, as it did before rolling updates.
				s.rolls = false
			} else if ru := o.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
				// Resolved against the node count in Rollouts.
				s.strategy.MaxUnavailable = -1
			}
			out = append(out, s)
		case *appsv1.StatefulSet:
			out = append(out, rolloutSpec{kind: "StatefulSet", namespace: o.Namespace, name: o.Name, hash: TemplateHash(&o.Spec.Template), replicas: replicas(o.Spec.Replicas), sts: o})
		case *batchv1.Job:
			out = append(out, rolloutSpec{kind: "Job", namespace: o.Namespace, name: o.Name, hash: TemplateHash(&o.Spec.Template), job: o})
		}
	}
	slices.SortFunc(out, func(a, b rolloutSpec) int {
		return cmp.Or(cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.kind, b.kind), cmp.Compare(a.name, b.name))
	})
	return out
}

// Rollouts paces the replacement of pods whose template changed, for one
// node: new pods that DecideRollout does not allow yet are held, and the
// old pods that run here (retained: the last desired pod the node knew
// for each) keep running until it allows them to stop. It also computes
// every workload's health. PodDisruptionBudgets hold the old pods a
// rollout would replace, and, while a node drains (view.Draining), the
// pods that would stop before a copy elsewhere is ready (budgetHolds):
// those of this node keep running, listed in Held. objects are the running
// revision's, share is the node's share of it (NodePods, then HandOff),
// self the node.
func Rollouts(objects []runtime.Object, share NodeShare, retained map[Key]*DesiredPod, self string, view RolloutView, now time.Time) RolloutResult {
	out := RolloutResult{Share: share}
	out.Share.Pods = make(map[Key]*DesiredPod, len(share.Pods))
	for k, d := range share.Pods {
		out.Share.Pods[k] = d
	}
	type wkey struct{ ns, workload string }
	byWorkload := map[wkey][]RolloutPod{}
	for _, p := range view.Pods {
		k := wkey{p.Namespace, p.Workload}
		byWorkload[k] = append(byWorkload[k], p.RolloutPod)
	}
	targets := map[wkey][]RolloutTarget{}
	for _, p := range share.Placement {
		k := wkey{p.Namespace, p.Workload.Kind + "/" + p.Workload.Name}
		targets[k] = append(targets[k], RolloutTarget{Name: p.Name, Node: p.Node})
	}
	specs := rolloutSpecs(objects)
	for k := range byWorkload {
		// A StatefulSet that left the manifests: its pods stop in
		// reverse order.
		if name, ok := strings.CutPrefix(k.workload, "StatefulSet/"); ok && !slices.ContainsFunc(specs, func(s rolloutSpec) bool {
			return s.kind == "StatefulSet" && s.namespace == k.ns && s.name == name
		}) {
			specs = append(specs, rolloutSpec{kind: "StatefulSet", namespace: k.ns, name: name})
		}
	}
	drained := drainedBy(view.Draining, share.Placement)
	replaces := replacedByRollouts(specs)
	settling := now.Before(view.DrainStarts)
	held := budgetHolds(budgetSpecs(objects, specs), func(ns, workload string) []RolloutPod {
		return byWorkload[wkey{ns, workload}]
	}, func(ns, workload string, p *RolloutPod) bool {
		return replaces(ns, workload, p) || drained(ns, workload, p)
	}, func(ns, workload string, p *RolloutPod) bool {
		return settling && p.Node == self && drained(ns, workload, p)
	})
	for _, spec := range specs {
		k := wkey{spec.namespace, spec.workload()}
		ps := byWorkload[k]
		if spec.kind == "StatefulSet" {
			st, wake := statefulSets(&spec, ps, out.Share, retained, self, view.Waiting, held, now)
			if spec.sts != nil {
				out.Workloads = append(out.Workloads, st)
			}
			if !wake.IsZero() && (out.Wake.IsZero() || wake.Before(out.Wake)) {
				out.Wake = wake
			}
			continue
		}
		if !spec.rolls {
			out.Workloads = append(out.Workloads, otherHealth(&spec, targets[k], ps))
			continue
		}
		ts := targets[k]
		if spec.daemon {
			ts = slices.DeleteFunc(slices.Clone(ts), func(t RolloutTarget) bool { return t.Node == "" })
			if spec.strategy.MaxUnavailable < 0 {
				spec.strategy.MaxUnavailable = daemonUnavailable(objects, spec.namespace, spec.name, len(ts))
			}
		} else {
			slices.SortFunc(ts, func(a, b RolloutTarget) int { return cmp.Compare(ordinalOf(a.Name), ordinalOf(b.Name)) })
		}
		in := RolloutInput{Kind: spec.kind, Namespace: spec.namespace, Name: spec.name, Hash: spec.hash,
			Targets: ts, Daemon: spec.daemon, Strategy: spec.strategy, Pods: ps, Waiting: view.Waiting, Started: view.Started}
		d := DecideRollout(&in, now)
		holdForBudgets(&d, spec.namespace, held)
		out.Workloads = append(out.Workloads, d.Status)
		if !d.Wake.IsZero() && (out.Wake.IsZero() || d.Wake.Before(out.Wake)) {
			out.Wake = d.Wake
		}
		for _, p := range ps {
			if p.Node != self {
				continue
			}
			pk := Key{spec.namespace, p.Name}
			if p.TemplateHash == spec.hash {
				continue
			}
			if d.Stop[p.Name] {
				continue
			}
			if r := retained[pk]; r != nil {
				out.Share.Pods[pk] = r
			}
		}
		for pk, dp := range out.Share.Pods {
			if pk.Namespace != spec.namespace || dp.Workload != spec.workload() || dp.TemplateHash != spec.hash || d.Start[pk.Name] {
				continue
			}
			held := *dp
			held.Hold = rolloutHold(&in, &d.Status)
			out.Share.Pods[pk] = &held
		}
	}
	// A drain: the node's pods that would stop before a copy elsewhere is
	// ready keep running while a budget holds them.
	for _, p := range view.Pods {
		k := Key{p.Namespace, p.Name}
		b, ok := held[k]
		if !ok || view.Fenced || p.Node != self || !drained(p.Namespace, p.Workload, &p.RolloutPod) {
			continue
		}
		if _, kept := out.Share.Pods[k]; kept {
			continue
		}
		if r := retained[k]; r != nil {
			out.Share.Pods[k] = r
			h := BudgetHold{Namespace: k.Namespace, Name: k.Name, Budget: b}
			if settling {
				h.Until = view.DrainStarts
				if out.Wake.IsZero() || h.Until.Before(out.Wake) {
					out.Wake = h.Until
				}
			}
			out.Held = append(out.Held, h)
		}
	}
	slices.SortFunc(out.Held, func(x, y BudgetHold) int {
		return Key{x.Namespace, x.Name}.Compare(Key{y.Namespace, y.Name})
	})
	return out
}

// drainedBy says whether a drain disrupts a pod, while a node drains: a
// StatefulSet's pod that placement gives to another node than its own (it
// stops before it starts there; a drain moves some pods between the nodes
// that stay, too, as the spread changes), and a pod of a draining node
// that fits nowhere else. Other pods move make-before-break, which
// disrupts nothing.
func drainedBy(draining []string, placement []Pod) func(ns, workload string, p *RolloutPod) bool {
	if len(draining) == 0 {
		return func(string, string, *RolloutPod) bool { return false }
	}
	placed := make(map[Key]string, len(placement))
	for i := range placement {
		placed[placement[i].Key()] = placement[i].Node
	}
	return func(ns, workload string, p *RolloutPod) bool {
		to, ok := placed[Key{ns, p.Name}]
		if !ok || to == p.Node {
			return false
		}
		return strings.HasPrefix(workload, "StatefulSet/") || to == "" && slices.Contains(draining, p.Node)
	}
}

// replacedByRollouts says whether a rollout replaces a pod: one of an
// older template, and, of a StatefulSet, one its update strategy replaces
// (RollingUpdate, an ordinal from the partition up to the replicas; the
// pods beyond are a scale-down, which budgets do not limit).
func replacedByRollouts(specs []rolloutSpec) func(ns, workload string, p *RolloutPod) bool {
	type spec struct {
		hash     string
		sts      bool
		policy   StatefulSetPolicy
		replicas int
	}
	by := make(map[string]spec, len(specs))
	for i := range specs {
		s := &specs[i]
		sp := spec{hash: s.hash, replicas: s.replicas}
		if s.kind == "StatefulSet" {
			sp.sts = true
			if s.sts == nil {
				continue // deleted: its pods stop, not replaced
			}
			sp.policy = StatefulSetPolicyOf(s.sts)
		}
		by[s.namespace+"/"+s.workload()] = sp
	}
	return func(ns, workload string, p *RolloutPod) bool {
		s, ok := by[ns+"/"+workload]
		if !ok || p.TemplateHash == s.hash {
			return false
		}
		if !s.sts {
			return true
		}
		i := ordinalOf(p.Name)
		return !s.policy.OnDelete && i >= s.policy.Partition && i < s.replicas
	}
}

// holdForBudgets keeps running the old pods a rollout would stop that a
// PodDisruptionBudget holds, and says so in the status.
func holdForBudgets(d *RolloutDecision, ns string, held map[Key]string) {
	heldByBudgets(d.Stop, ns, held, &d.Status.Message)
}

// rolloutHold says why a new pod waits.
func rolloutHold(in *RolloutInput, st *WorkloadStatus) string {
	s := in.Strategy
	switch {
	case st.Health == HealthSuspended:
		return "rollout paused"
	case st.Health == HealthDegraded:
		return "rollout stopped: " + st.Message
	case in.Waiting != "":
		return "rollout waiting: " + in.Waiting
	case s.Recreate:
		return fmt.Sprintf("rollout (Recreate): waiting for %d old pods to stop", st.Old)
	}
	return fmt.Sprintf("rollout: waiting for old pods to stop (%d old, at most %d extra)", st.Old, s.MaxSurge)
}

// daemonUnavailable resolves a DaemonSet's maxUnavailable against its node
// count (a DaemonSet surges by no pod).
func daemonUnavailable(objects []runtime.Object, ns, name string, nodes int) int {
	for _, o := range objects {
		ds, ok := o.(*appsv1.DaemonSet)
		if !ok || ds.Namespace != ns || ds.Name != name || ds.Spec.UpdateStrategy.RollingUpdate == nil {
			continue
		}
		zero := intstr.FromInt32(0)
		_, u := ResolveBounds(&zero, ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable, nodes)
		return u
	}
	return 1
}

// otherHealth is the health of a StatefulSet or a Job, which Rollouts does
// not pace.
func otherHealth(spec *rolloutSpec, targets []RolloutTarget, ps []RolloutPod) WorkloadStatus {
	st := WorkloadStatus{Kind: spec.kind, Namespace: spec.namespace, Name: spec.name, TemplateHash: spec.hash}
	if spec.job != nil {
		j := spec.job
		completions := 1
		if j.Spec.Completions != nil {
			completions = int(*j.Spec.Completions)
		}
		st.Replicas = completions
		succeeded, failed := 0, 0
		for _, p := range ps {
			switch p.Phase {
			case PhaseSucceeded:
				succeeded++
			case PhaseFailed:
				failed++
			}
			if p.Ready {
				st.Ready++
			}
		}
		st.Updated, st.Available = len(ps), succeeded
		limit := 6
		if j.Spec.BackoffLimit != nil {
			limit = int(*j.Spec.BackoffLimit)
		}
		switch {
		case succeeded >= completions:
			st.Health, st.Message = HealthHealthy, fmt.Sprintf("complete: %d of %d succeeded", succeeded, completions)
		case failed > limit:
			st.Health, st.Message = HealthDegraded, fmt.Sprintf("%d pods failed, more than the backoff limit %d", failed, limit)
		case j.Spec.Suspend != nil && *j.Spec.Suspend:
			st.Health, st.Message = HealthSuspended, "suspended"
		default:
			st.Health, st.Message = HealthProgressing, fmt.Sprintf("%d of %d succeeded", succeeded, completions)
			if failed > 0 {
				st.Message += fmt.Sprintf(", %d failed", failed)
			}
		}
		return st
	}
	st.Replicas = len(targets)
	for _, p := range ps {
		if p.TemplateHash != spec.hash {
			st.Old++
			continue
		}
		st.Updated++
		if p.Ready && !p.Unknown {
			st.Ready++
			st.Available++
		}
	}
	if st.Available >= st.Replicas && st.Old == 0 {
		st.Health = HealthHealthy
	} else {
		st.Health = HealthProgressing
		st.Message = fmt.Sprintf("%d of %d pods ready", st.Available, st.Replicas)
	}
	return st
}

// RolloutStep is how plan describes the replacement of a workload's pods.
type RolloutStep struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Strategy is RollingUpdate or Recreate.
	Strategy string `json:"strategy"`
	// Replaced pods; at most MaxUnavailable of the replicas unavailable
	// and MaxSurge extra pods at a time.
	Replaced       int  `json:"replaced"`
	MaxUnavailable int  `json:"maxUnavailable"`
	MaxSurge       int  `json:"maxSurge"`
	Paused         bool `json:"paused,omitempty"`
	// Partition: a StatefulSet's ordinals below it keep their template.
	Partition int `json:"partition,omitempty"`
	// Now is the workload's health in the live cluster, when the plan was
	// made against it.
	Now Health `json:"now,omitempty"`
}

// String is the step as plan prints it: "3 pods replaced, at most 1
// unavailable, at most 1 extra".
func (s RolloutStep) String() string {
	pods := "pods"
	if s.Replaced == 1 {
		pods = "pod"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s replaced", s.Replaced, pods)
	switch {
	case s.Kind == "StatefulSet" && s.Strategy == "OnDelete":
		b.WriteString(" (OnDelete: a running pod keeps its template, one that is gone comes back with the new one)")
	case s.Kind == "StatefulSet":
		fmt.Fprintf(&b, ", highest ordinal first, at most %d unavailable", s.MaxUnavailable)
		if s.Partition > 0 {
			fmt.Fprintf(&b, ", ordinals below %d kept", s.Partition)
		}
	case s.Paused:
		b.WriteString(", paused: not until spec.paused is false")
	case s.Strategy == "Recreate":
		b.WriteString(", all stopped before the new ones start (Recreate)")
	default:
		fmt.Fprintf(&b, ", at most %d unavailable, at most %d extra", s.MaxUnavailable, s.MaxSurge)
	}
	if s.Now != "" {
		fmt.Fprintf(&b, " (now %s)", s.Now)
	}
	return b.String()
}

// RolloutSteps are the rollouts that going from the objects old to new
// makes: the Deployments, ReplicaSets, ReplicationControllers, DaemonSets
// (nodes: how many the DaemonSet runs on) and StatefulSets whose template
// changed, sorted by namespace, kind and name.
func RolloutSteps(old, new []runtime.Object, daemonNodes func(ns, name string) int) []RolloutStep {
	before := map[string]rolloutSpec{}
	for _, s := range rolloutSpecs(old) {
		before[s.namespace+"/"+s.workload()] = s
	}
	var out []RolloutStep
	for _, s := range rolloutSpecs(new) {
		b, ok := before[s.namespace+"/"+s.workload()]
		if ok && b.hash != s.hash && s.sts != nil {
			out = append(out, statefulSetStep(&s, b.replicas))
			continue
		}
		if !ok || b.hash == s.hash || !s.rolls {
			continue
		}
		st := RolloutStep{Kind: s.kind, Namespace: s.namespace, Name: s.name, Strategy: "RollingUpdate",
			Replaced: min(b.replicas, s.replicas), MaxUnavailable: s.strategy.MaxUnavailable, MaxSurge: s.strategy.MaxSurge,
			Paused: s.strategy.Paused}
		if s.strategy.Recreate {
			st.Strategy = "Recreate"
		}
		if s.daemon {
			n := daemonNodes(s.namespace, s.name)
			st.Replaced = n
			st.MaxUnavailable = s.strategy.MaxUnavailable
			if st.MaxUnavailable < 0 {
				st.MaxUnavailable = daemonUnavailable(new, s.namespace, s.name, n)
			}
		}
		out = append(out, st)
	}
	return out
}

// statefulSetStep is the replacement of a StatefulSet's pods that existed
// before (before: the replicas then) and that its update strategy replaces.
func statefulSetStep(s *rolloutSpec, before int) RolloutStep {
	p := StatefulSetPolicyOf(s.sts)
	st := RolloutStep{Kind: s.kind, Namespace: s.namespace, Name: s.name, Strategy: "RollingUpdate",
		MaxUnavailable: p.MaxUnavailable, Partition: p.Partition}
	if p.OnDelete {
		st.Strategy = "OnDelete"
		return st
	}
	st.Replaced = max(0, min(before, s.replicas)-p.Partition)
	return st
}
