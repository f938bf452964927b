package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// Health is how a workload is doing, as every node computes it from what
// gossip reports of its pods.
type Health string

// The health of a workload.
const (
	// HealthHealthy: every pod asked for runs the current template and is
	// available (ready for minReadySeconds); a Job has completed.
	HealthHealthy Health = "Healthy"
	// HealthProgressing: a rollout or a start is under way and within its
	// progress deadline.
	HealthProgressing Health = "Progressing"
	// HealthDegraded: the rollout made no progress within its deadline (the
	// old pods keep serving), or a Job failed.
	HealthDegraded Health = "Degraded"
	// HealthSuspended: spec.paused (Deployment) or spec.suspend (Job).
	HealthSuspended Health = "Suspended"
)

// Strategy is how a workload replaces its pods when its template changes,
// with the bounds resolved to pod counts.
type Strategy struct {
	// Recreate stops every old pod before any new one starts.
	Recreate bool
	// MaxSurge is how many pods may exist above the replicas; MaxUnavailable
	// how many of the replicas may be unavailable. Never both 0.
	MaxSurge, MaxUnavailable int
	// MinReady is how long a new pod must be ready to count as available.
	MinReady time.Duration
	// ProgressDeadline: a rollout that made no progress for this long is
	// Degraded and stops replacing pods; 0 for none.
	ProgressDeadline time.Duration
	// Paused: nothing is replaced (spec.paused).
	Paused bool
}

// ResolveBounds turns maxSurge and maxUnavailable (counts or percentages of
// replicas) into pod counts as Kubernetes does: surge rounded up,
// unavailable rounded down, and when both come to 0, one pod may be
// unavailable. A nil value is the default, 25%.
func ResolveBounds(maxSurge, maxUnavailable *intstr.IntOrString, replicas int) (surge, unavailable int) {
	def := intstr.FromString("25%")
	if maxSurge == nil {
		maxSurge = &def
	}
	if maxUnavailable == nil {
		maxUnavailable = &def
	}
	surge, err := intstr.GetScaledValueFromIntOrPercent(maxSurge, replicas, true)
	if err != nil || surge < 0 {
		surge = 0
	}
	unavailable, err = intstr.GetScaledValueFromIntOrPercent(maxUnavailable, replicas, false)
	if err != nil || unavailable < 0 {
		unavailable = 0
	}
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// RolloutPod is one pod of a workload as a node sees it: its own pods from
// its runtime, the others' from gossip.
type RolloutPod struct {
	Name         string
	Node         string
	TemplateHash string
	Ready        bool
	// ReadySince is when the viewing node learnt the pod was ready (its
	// own clock), for minReadySeconds.
	ReadySince time.Time
	// Unknown: the pod's node is suspect or dead; the pod counts as
	// existing and not ready.
	Unknown bool
	// Phase as its node reports it (Jobs: Succeeded, Failed).
	Phase string
}

// RolloutTarget is one pod the current template asks for: its name and,
// for a DaemonSet, the node placement gives it.
type RolloutTarget struct {
	Name string
	Node string
}

// RolloutInput is what DecideRollout needs of one Deployment, ReplicaSet,
// ReplicationController or DaemonSet.
type RolloutInput struct {
	Kind, Namespace, Name string
	// Hash is the current template's hash; pods with another are old.
	Hash string
	// Targets are the pods the current template asks for, in ordinal
	// order (a DaemonSet's: one per node, by node name).
	Targets  []RolloutTarget
	Daemon   bool
	Strategy Strategy
	// Pods are the workload's pods the node knows of, cluster-wide, old
	// and new.
	Pods []RolloutPod
	// Waiting, when set, says why the node's view cannot be trusted to
	// count pods (a member whose pods it has not heard of, a member
	// running another revision): nothing is started or stopped.
	Waiting string
	// Started is when the node began running the revision; the progress
	// deadline counts from it or from the last new pod that became ready.
	Started time.Time
}

// RolloutDecision is what DecideRollout allows.
type RolloutDecision struct {
	// Start are the names of the new pods that may exist (run or start).
	Start map[string]bool
	// Stop are the names of the old pods that may stop now; every other
	// old pod keeps running.
	Stop   map[string]bool
	Status WorkloadStatus
	// Wake is when the decision changes without news (a pod becomes
	// available after minReadySeconds, a deadline passes); zero if never.
	Wake time.Time
}

// WorkloadStatus is a workload's health and pod counts, as status, the API
// and rollout status show them.
type WorkloadStatus struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Health    Health `json:"health"`
	Message   string `json:"message,omitempty"`
	// Replicas asked for; Updated pods run the current template, Ready
	// of them are ready, Available have been ready for minReadySeconds;
	// Old pods run an earlier template.
	Replicas  int `json:"replicas"`
	Updated   int `json:"updated"`
	Ready     int `json:"ready"`
	Available int `json:"available"`
	Old       int `json:"old"`
	// TemplateHash is the current template's.
	TemplateHash string `json:"templateHash,omitempty"`
}

// Ref is "kind/name" in lower case, as kubectl writes a workload.
func (s WorkloadStatus) Ref() string { return strings.ToLower(s.Kind) + "/" + s.Name }

// DecideRollout decides, for one workload, which new pods may exist and
// which old pods may stop, from one node's view of the cluster. Every node
// evaluates it and acts only on its own pods. The bounds hold cluster-wide
// even when the nodes' views lag behind each other (docs/rollouts.md gives
// the argument):
//
//   - old pods are never started during a rollout, so a lagging view
//     counts too many old pods, never too few: new pod i (in ordinal
//     order) may exist only while i < replicas + maxSurge − old pods seen,
//     and that bound only grows;
//   - new pods are never stopped during a rollout and a view sees a pod
//     ready only after it became so, so a lagging view counts too few
//     available new pods: it keeps at least replicas − maxUnavailable −
//     available new pods of the old ones, always the last in one fixed
//     order, so a pod that one view keeps no other view stops;
//   - a DaemonSet replaces nodes in name order, the old pod of a node
//     stopping only while at most maxUnavailable nodes up to and
//     including it lack an available new pod.
func DecideRollout(in *RolloutInput, now time.Time) RolloutDecision {
	d := RolloutDecision{Start: make(map[string]bool, len(in.Targets)), Stop: map[string]bool{}}
	st := &d.Status
	*st = WorkloadStatus{Kind: in.Kind, Namespace: in.Namespace, Name: in.Name, Replicas: len(in.Targets), TemplateHash: in.Hash}
	wake := func(t time.Time) {
		if !t.After(now) {
			return
		}
		if d.Wake.IsZero() || t.Before(d.Wake) {
			d.Wake = t
		}
	}
	s := in.Strategy
	available := func(p *RolloutPod) bool {
		if !p.Ready || p.Unknown {
			return false
		}
		if s.MinReady > 0 {
			at := p.ReadySince.Add(s.MinReady)
			if now.Before(at) {
				wake(at)
				return false
			}
		}
		return true
	}
	isTarget := make(map[string]bool, len(in.Targets))
	for _, t := range in.Targets {
		isTarget[t.Name] = true
	}
	var old []*RolloutPod
	newPods := make(map[string]*RolloutPod, len(in.Targets))
	progress := in.Started
	for i := range in.Pods {
		p := &in.Pods[i]
		if p.TemplateHash != in.Hash {
			old = append(old, p)
			continue
		}
		if !isTarget[p.Name] {
			// A new-template pod no target names (a DaemonSet's on a node
			// it left, an ordinal above a lowered replica count): placement
			// stops it, it is neither old nor wanted.
			continue
		}
		newPods[p.Name] = p
		st.Updated++
		if p.Ready && !p.Unknown {
			st.Ready++
		}
		if available(p) {
			st.Available++
			if t := p.ReadySince.Add(s.MinReady); t.After(progress) {
				progress = t
			}
		}
	}
	st.Old = len(old)
	// Existing new pods keep running whatever is decided.
	for name := range newPods {
		d.Start[name] = true
	}
	complete := st.Old == 0 && st.Available == st.Replicas
	deadline := time.Time{}
	if s.ProgressDeadline > 0 && !complete {
		deadline = progress.Add(s.ProgressDeadline)
	}
	switch {
	case complete:
		st.Health = HealthHealthy
	case s.Paused && st.Old > 0:
		st.Health, st.Message = HealthSuspended, "paused: no pod is replaced"
	case !deadline.IsZero() && !now.Before(deadline):
		st.Health = HealthDegraded
		st.Message = fmt.Sprintf("no progress for %s: %d of %d new pods available, %d old pods still serving",
			s.ProgressDeadline, st.Available, st.Replicas, st.Old)
		if st.Old == 0 {
			st.Message = fmt.Sprintf("no progress for %s: %d of %d pods available", s.ProgressDeadline, st.Available, st.Replicas)
		}
	default:
		st.Health = HealthProgressing
		st.Message = fmt.Sprintf("%d of %d new pods available, %d old", st.Available, st.Replicas, st.Old)
		if !deadline.IsZero() {
			wake(deadline)
		}
	}
	if st.Old == 0 {
		// Nothing to replace: every pod asked for runs.
		for _, t := range in.Targets {
			d.Start[t.Name] = true
		}
		return d
	}
	switch {
	case st.Health == HealthSuspended:
		return d
	case st.Health == HealthDegraded:
		// The rollout stops where it is: no more old pods stop and no
		// more new pods are added (those that exist keep trying).
		return d
	case in.Waiting != "":
		st.Message += "; waiting: " + in.Waiting
		return d
	}
	if in.Daemon {
		decideDaemon(in, old, newPods, available, &d)
		return d
	}
	if s.Recreate {
		for _, p := range old {
			d.Stop[p.Name] = true
		}
		return d
	}
	r := len(in.Targets)
	// New pods: the first replicas + maxSurge − old ones may exist.
	for i, t := range in.Targets {
		if i >= r+s.MaxSurge-len(old) {
			break
		}
		d.Start[t.Name] = true
	}
	// Old pods: the last keep of them in the fixed stop order stay.
	keep := max(0, r-s.MaxUnavailable-st.Available)
	sortStopOrder(old)
	for _, p := range old[:max(0, len(old)-keep)] {
		d.Stop[p.Name] = true
	}
	return d
}

// decideDaemon is DecideRollout for a DaemonSet: nodes are replaced in
// name order; a node's old pod stops while at most maxUnavailable nodes
// up to and including it lack an available new pod, and its new pod
// starts once no old pod runs on it.
func decideDaemon(in *RolloutInput, old []*RolloutPod, newPods map[string]*RolloutPod, available func(*RolloutPod) bool, d *RolloutDecision) {
	oldOn := map[string][]*RolloutPod{}
	for _, p := range old {
		oldOn[p.Node] = append(oldOn[p.Node], p)
	}
	targets := slices.Clone(in.Targets)
	slices.SortFunc(targets, func(a, b RolloutTarget) int { return cmp.Compare(a.Node, b.Node) })
	onTarget := map[string]bool{}
	lacking := 0
	for _, t := range targets {
		onTarget[t.Node] = true
		if p := newPods[t.Name]; p == nil || !available(p) {
			lacking++
		}
		if len(oldOn[t.Node]) == 0 {
			d.Start[t.Name] = true
			continue
		}
		if lacking <= in.Strategy.MaxUnavailable {
			for _, p := range oldOn[t.Node] {
				d.Stop[p.Name] = true
			}
		}
	}
	// Old pods on nodes the DaemonSet no longer runs on are not replaced.
	for node, ps := range oldOn {
		if !onTarget[node] {
			for _, p := range ps {
				d.Stop[p.Name] = true
			}
		}
	}
}

// sortStopOrder sorts old pods in the order they stop: highest ordinal
// first, then by name. The order depends on nothing that changes while
// the rollout runs, so every node agrees on it.
func sortStopOrder(old []*RolloutPod) {
	type keyed struct {
		ord int
		p   *RolloutPod
	}
	ks := make([]keyed, len(old))
	for i, p := range old {
		ks[i] = keyed{ordinalOf(p.Name), p}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(b.ord, a.ord), strings.Compare(a.p.Name, b.p.Name))
	})
	for i := range ks {
		old[i] = ks[i].p
	}
}

// ordinalOf is the number after a pod name's last dash, or -1.
func ordinalOf(name string) int {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil {
		return -1
	}
	return n
}
