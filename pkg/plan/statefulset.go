package plan

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// StatefulSetPolicy is how a StatefulSet starts, stops and replaces its
// pods (podManagementPolicy and updateStrategy).
type StatefulSetPolicy struct {
	// Parallel starts and stops pods all at once; otherwise (OrderedReady)
	// ordinal N starts once 0..N-1 are Running and Ready, and pods stop
	// from the highest ordinal, one at a time.
	Parallel bool
	// OnDelete never replaces a running pod for a changed template; a pod
	// that is gone comes back with the current one.
	OnDelete bool
	// Partition: with RollingUpdate, only ordinals >= Partition are
	// replaced, highest first.
	Partition int
	// MaxUnavailable is how many of the replaced ordinals may be
	// unavailable at once (at least 1).
	MaxUnavailable int
	// MinReady: a pod counts as Running and Ready once it has been ready
	// this long (minReadySeconds), as the viewing node timed it.
	MinReady time.Duration
}

// StatefulSetPolicyOf reads the policy of a StatefulSet's spec.
func StatefulSetPolicyOf(s *appsv1.StatefulSet) StatefulSetPolicy {
	p := StatefulSetPolicy{Parallel: s.Spec.PodManagementPolicy == appsv1.ParallelPodManagement, MaxUnavailable: 1,
		MinReady: time.Duration(s.Spec.MinReadySeconds) * time.Second}
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		p.OnDelete = true
		return p
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		if ru.Partition != nil && *ru.Partition > 0 {
			p.Partition = int(*ru.Partition)
		}
		if ru.MaxUnavailable != nil {
			if n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, replicas(s.Spec.Replicas), false); err == nil && n > 1 {
				p.MaxUnavailable = n
			}
		}
	}
	return p
}

// StatefulSetInput is what DecideStatefulSet needs of one StatefulSet.
type StatefulSetInput struct {
	Namespace, Name string
	// Hash is the current template's hash.
	Hash     string
	Replicas int
	Policy   StatefulSetPolicy
	// Deleted: the StatefulSet left the manifests; its pods stop from the
	// highest ordinal, one at a time, whatever their readiness.
	Deleted bool
	// Pods are the StatefulSet's pods the node knows of, cluster-wide.
	Pods []RolloutPod
	// Waiting, as in RolloutInput: nothing starts, stops or is replaced.
	Waiting string
	// Now, for MinReady.
	Now time.Time
}

// StatefulSetDecision is what every node decides for one StatefulSet;
// each carries out the part that concerns its own pods.
type StatefulSetDecision struct {
	// Start are the pods of the current template that may run (start if
	// absent, keep running if present).
	Start map[string]bool
	// Replace are the existing pods of an older template that may stop
	// now, to come back with the current one; the others keep theirs.
	Replace map[string]bool
	// Stop are the pods beyond the replicas that may stop now; the others
	// keep running.
	Stop map[string]bool
	// Hold says why the pods not in Start wait.
	Hold   string
	Status WorkloadStatus
	// Wake is when a ready pod's minReadySeconds ends, which may change
	// the decision; zero if none.
	Wake time.Time
}

// DecideStatefulSet orders a StatefulSet's pods by ordinal, from what the
// node sees by gossip:
//
//   - OrderedReady: the lowest missing ordinal N starts once 0..N-1 exist
//     and are Running and Ready; the highest ordinal beyond the replicas
//     stops once every lower one is Running and Ready, and the next only
//     when it is gone. Parallel: all start and stop at once.
//   - RollingUpdate: the ordinals >= partition that run an older template
//     are replaced from the highest, as long as at most maxUnavailable of
//     them are unavailable (missing, not ready, or just replaced); an
//     older pod that is not ready is replaced at no cost, so a broken
//     template can be fixed by a commit. OrderedReady replaces nothing
//     while a pod is missing, unready or beyond the replicas.
//   - OnDelete: nothing is replaced.
//
// Each node stops or replaces only its own pods, and a pod's state moves
// one way (old and ready, gone, new and unready, new and ready): a node
// whose view lags behind sees an earlier state, in which the pod above its
// own is still to be replaced or still unavailable, so with maxUnavailable
// 1 it never replaces its pod before the one above is ready again.
func DecideStatefulSet(in *StatefulSetInput) StatefulSetDecision {
	out := StatefulSetDecision{Start: map[string]bool{}, Replace: map[string]bool{}, Stop: map[string]bool{},
		Status: WorkloadStatus{Kind: "StatefulSet", Namespace: in.Namespace, Name: in.Name, TemplateHash: in.Hash}}
	healthy := func(p RolloutPod) bool {
		if !p.Ready || p.Unknown || p.Phase == PhaseTerminating {
			return false
		}
		if in.Policy.MinReady <= 0 {
			return true
		}
		until := p.ReadySince.Add(in.Policy.MinReady)
		if in.Now.Before(until) {
			if out.Wake.IsZero() || until.Before(out.Wake) {
				out.Wake = until
			}
			return false
		}
		return true
	}
	n := in.Replicas
	if in.Deleted {
		n = 0
	}
	pods := ordinals{at: make([]int, max(n, len(in.Pods))), pods: in.Pods}
	prefix := in.Name + "-"
	for j, p := range in.Pods {
		i, ok := ordinalAfter(p.Name, prefix)
		if !ok {
			continue
		}
		if q, seen := pods.get(i); !seen || healthy(q) {
			// Seen twice (moving): the unready copy counts.
			pods.set(i, j)
		}
	}
	name := func(i int) string { return prefix + strconv.Itoa(i) }
	var condemned []int
	for i := n; i < len(pods.at); i++ {
		if pods.at[i] != 0 {
			condemned = append(condemned, i)
		}
	}
	for i := range pods.beyond {
		condemned = append(condemned, i)
	}
	slices.Sort(condemned)
	out.Status.Replicas = n
	for i := range n {
		p, ok := pods.get(i)
		if !ok {
			continue
		}
		if p.TemplateHash == in.Hash {
			out.Status.Updated++
		} else if !in.Policy.OnDelete && i >= in.Policy.Partition {
			out.Status.Old++
		}
		if healthy(p) {
			out.Status.Ready++
		}
	}
	out.Status.Available = out.Status.Ready
	out.Status.Old += len(condemned)
	if out.Status.Ready == n && out.Status.Old == 0 {
		out.Status.Health = HealthHealthy
	} else {
		out.Status.Health = HealthProgressing
		out.Status.Message = fmt.Sprintf("%d of %d pods ready", out.Status.Ready, n)
		if len(condemned) > 0 {
			out.Status.Message += fmt.Sprintf(", %d to stop", len(condemned))
		}
	}
	if in.Waiting != "" {
		out.Hold = "StatefulSet waiting: " + in.Waiting
		for i := range n {
			if p, ok := pods.get(i); ok && p.TemplateHash == in.Hash {
				out.Start[p.Name] = true // it runs already
			}
		}
		return out
	}

	// Start: every ordinal of the current template; a missing one only
	// after its predecessors (OrderedReady).
	blocked := -1 // the first ordinal not Running and Ready
	for i := range n {
		p, ok := pods.get(i)
		switch {
		case ok && p.TemplateHash == in.Hash:
			out.Start[p.Name] = true
		case !ok && (in.Policy.Parallel || blocked < 0):
			out.Start[name(i)] = true
		case !ok && out.Hold == "":
			out.Hold = "OrderedReady: waiting for " + name(blocked) + " to be Running and Ready"
		}
		if blocked < 0 && (!ok || !healthy(p)) {
			blocked = i
		}
	}

	// Scale-down: from the highest ordinal.
	if len(condemned) > 0 {
		if in.Policy.Parallel && !in.Deleted {
			for _, i := range condemned {
				out.Stop[name(i)] = true
			}
		} else {
			top := condemned[len(condemned)-1]
			ok := in.Deleted || blocked < 0
			for _, i := range condemned[:len(condemned)-1] {
				if p, _ := pods.get(i); !healthy(p) && !in.Deleted {
					ok = false
				}
			}
			if ok {
				out.Stop[name(top)] = true
			}
		}
	}
	if in.Policy.OnDelete || in.Deleted {
		return out
	}

	// RollingUpdate, highest first, within maxUnavailable.
	from := in.Policy.Partition
	if !in.Policy.Parallel {
		if len(condemned) > 0 {
			return out
		}
		from = 0
	}
	unavailable := 0
	for i := from; i < n; i++ {
		if p, ok := pods.get(i); !ok || !healthy(p) {
			unavailable++
		}
	}
	budget := max(in.Policy.MaxUnavailable, 1) - unavailable
	for i := n - 1; i >= in.Policy.Partition; i-- {
		p, ok := pods.get(i)
		if !ok || p.TemplateHash == in.Hash {
			continue
		}
		if healthy(p) {
			if budget <= 0 {
				break
			}
			budget--
		} // else: already unavailable, replaced at no cost
		out.Replace[p.Name] = true
		out.Start[p.Name] = true
	}
	return out
}

// statefulSets decides the StatefulSets of the objects and those that left
// them but whose pods still run (ps: the cluster's pods by workload), and
// adjusts the node's share: pods held until they may start, old pods kept
// until they may be replaced, pods beyond the replicas kept until they may
// stop (retained: the last desired pod the node knew of each), and old pods
// that PodDisruptionBudgets hold (held, from budgetHolds) kept.
func statefulSets(spec *rolloutSpec, ps []RolloutPod, share NodeShare, retained map[Key]*DesiredPod, self, waiting string, held map[Key]string, now time.Time) (WorkloadStatus, time.Time) {
	in := StatefulSetInput{Namespace: spec.namespace, Name: spec.name, Hash: spec.hash, Replicas: spec.replicas,
		Pods: ps, Waiting: waiting, Deleted: spec.sts == nil, Now: now}
	if spec.sts != nil {
		in.Policy = StatefulSetPolicyOf(spec.sts)
	}
	d := DecideStatefulSet(&in)
	for _, name := range heldByBudgets(d.Replace, spec.namespace, held, &d.Status.Message) {
		delete(d.Start, name)
	}
	kept := map[string]bool{} // running, not to stop yet
	placedOn := map[string]string{}
	for _, pl := range share.Placement {
		if pl.Namespace == spec.namespace && pl.Workload.Kind == "StatefulSet" && pl.Workload.Name == spec.name {
			placedOn[pl.Name] = pl.Node
		}
	}
	for _, p := range ps {
		if p.Node != self {
			continue
		}
		pk := Key{spec.namespace, p.Name}
		keep := false
		switch {
		case ordinalOf(p.Name) >= in.Replicas || in.Deleted:
			keep = !d.Stop[p.Name]
		case p.TemplateHash != spec.hash:
			// A pod placement gives to another node is moving
			// (HandOff released it): it is not kept here.
			keep = !d.Replace[p.Name] && placedOn[p.Name] == self
		}
		if r := retained[pk]; keep && r != nil && r.TemplateHash == p.TemplateHash {
			share.Pods[pk] = r
			kept[p.Name] = true
		}
	}
	for pk, dp := range share.Pods {
		if pk.Namespace != spec.namespace || dp.Workload != spec.workload() || dp.TemplateHash != spec.hash || d.Start[pk.Name] || kept[pk.Name] || dp.Hold != "" {
			continue
		}
		held := *dp
		held.Hold = d.Hold
		if held.Hold == "" {
			held.Hold = "StatefulSet: waiting for the pod to be replaced"
		}
		share.Pods[pk] = &held
	}
	return d.Status, d.Wake
}

// ordinals are a StatefulSet's pods by ordinal: at[i] is 1 + the index in
// pods of ordinal i, 0 when absent; ordinals past at (a few pods left
// from a larger scale) are in beyond.
type ordinals struct {
	at     []int
	beyond map[int]int
	pods   []RolloutPod
}

func (o *ordinals) get(i int) (RolloutPod, bool) {
	j := 0
	if i < len(o.at) {
		j = o.at[i]
	} else {
		j = o.beyond[i]
	}
	if j == 0 {
		return RolloutPod{}, false
	}
	return o.pods[j-1], true
}

func (o *ordinals) set(i, j int) {
	if i < len(o.at) {
		o.at[i] = j + 1
		return
	}
	if o.beyond == nil {
		o.beyond = map[int]int{}
	}
	o.beyond[i] = j + 1
}

// ordinalAfter parses name as prefix followed by an ordinal written as
// strconv.Itoa writes it (no sign, no leading zero).
func ordinalAfter(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" || len(rest) > 9 || (rest[0] == '0' && len(rest) > 1) {
		return 0, false
	}
	i := 0
	for _, c := range []byte(rest) {
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, true
}
