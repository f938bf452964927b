package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// WorkloadRef names the object a pod comes from.
type WorkloadRef struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// Pod is one pod the manifests ask for, and where it runs.
type Pod struct {
	Namespace    string      `json:"namespace"`
	Name         string      `json:"name"`
	Workload     WorkloadRef `json:"workload"`
	TemplateHash string      `json:"templateHash,omitempty"`
	Requests     Resources   `json:"requests"`
	// Node is the node the pod runs on; empty when it fits nowhere.
	Node string `json:"node,omitempty"`
	// Unplaceable says why no node took the pod, in kube-scheduler's
	// words: "0/3 nodes are available: 2 insufficient memory, 1 node(s)
	// didn't match nodeSelector."
	Unplaceable string `json:"unplaceable,omitempty"`
	// Template is the pod template the pod runs, shared with the workload
	// object: do not modify it.
	Template *corev1.PodTemplateSpec `json:"-"`
}

// Key is the pod's namespace and name.
func (p *Pod) Key() Key { return Key{p.Namespace, p.Name} }

// Placement is the result of Schedule: every pod, sorted by namespace and
// name.
type Placement struct {
	Pods []Pod
	// Jobs and CronJobs are where each stands (DecideJob, DecideCronJob),
	// sorted by namespace and name.
	Jobs     []JobStatus
	CronJobs []CronJobStatus
}

// Find returns the pod named namespace/name, or nil.
func (p *Placement) Find(namespace, name string) *Pod {
	i, ok := find(p.Pods, Key{namespace, name}, (*Pod).Key)
	if !ok {
		return nil
	}
	return &p.Pods[i]
}

// nodeState is a node during placement.
type nodeState struct {
	*Node
	hash uint64
	w    uint64
	free Resources
	// taintReasons[i] is the unplaceable reason for Taints[i].
	taintReasons []string
}

// Schedule places the pods that objects ask for on nodes. It is a pure
// function: the same objects and nodes, in any order, give the same
// placement. See docs/placement.md for the algorithm.
//
// objects holds k8s.io/api pointer types; Deployments, ReplicaSets,
// ReplicationControllers, StatefulSets, DaemonSets, Jobs and Pods ask for
// pods, other kinds are ignored. Node names must be unique.
func Schedule(objects []runtime.Object, nodes []Node) Placement {
	return ScheduleBatch(objects, nodes, Batch{})
}

// ScheduleBatch is Schedule given the records of Jobs' pods and the time,
// which decide the pods of Jobs and CronJobs (docs/jobs.md). Schedule
// knows of no record and no time: every Job runs its first attempts and no
// CronJob runs.
func ScheduleBatch(objects []runtime.Object, nodes []Node, batch Batch) Placement {
	ns := make([]nodeState, len(nodes))
	for i := range nodes {
		ns[i] = nodeState{Node: &nodes[i]}
	}
	slices.SortFunc(ns, func(a, b nodeState) int { return cmp.Compare(a.Name, b.Name) })
	for i := range ns {
		ns[i].hash = hashString(ns[i].Name)
		ns[i].w = ns[i].weight()
		ns[i].free = ns[i].Allocatable
		for _, t := range ns[i].Taints {
			ns[i].taintReasons = append(ns[i].taintReasons, fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value))
		}
	}
	s := scheduler{nodes: ns}
	bd := newBatchDecider(batch)
	for _, w := range workloads(objects, bd) {
		s.place(&w)
	}
	slices.SortFunc(s.pods, func(a, b Pod) int { return a.Key().Compare(b.Key()) })
	sortJobStatuses(bd.jobs)
	slices.SortFunc(bd.crons, func(a, b CronJobStatus) int { return Key{a.Namespace, a.Name}.Compare(Key{b.Namespace, b.Name}) })
	return Placement{Pods: s.pods, Jobs: bd.jobs, CronJobs: bd.crons}
}

type scheduler struct {
	nodes []nodeState
	pods  []Pod
	// scratch, reused between workloads
	eligible []int    // indices of nodes passing the static filters
	reasons  []string // per node: why the static filters refused it
	count    []int    // per node: pods of the current workload
}

func (s *scheduler) place(w *workload) {
	n := len(s.nodes)
	s.eligible = s.eligible[:0]
	s.reasons = slices.Grow(s.reasons[:0], n)[:n]
	for i := range s.nodes {
		r := s.nodes[i].staticReason(&w.template.Spec)
		s.reasons[i] = r
		if r == "" {
			s.eligible = append(s.eligible, i)
		}
	}
	newPod := func(name string) Pod {
		return Pod{Namespace: w.namespace, Name: name, Workload: WorkloadRef{w.kind, w.name},
			TemplateHash: w.hash, Requests: w.requests, Template: w.template}
	}
	if w.daemon {
		for _, i := range s.eligible {
			nd := &s.nodes[i]
			p := newPod(w.podName(0, nd.Name))
			if nd.free.fits(w.requests) {
				nd.free = nd.free.sub(w.requests)
				p.Node = nd.Name
			} else {
				counts := map[string]int{}
				for _, r := range insufficient(nd.free, w.requests) {
					counts[r] = 1
				}
				p.Unplaceable = "0/1 nodes are available: " + joinCounts(counts) + "."
			}
			s.pods = append(s.pods, p)
		}
		return
	}
	if w.replicas == 0 {
		return
	}
	// The spread cap: with N eligible nodes that have room for one more
	// pod, no node takes more than ceil(r/N) of this workload's pods.
	room := 0
	for _, i := range s.eligible {
		if s.nodes[i].free.fits(w.requests) {
			room++
		}
	}
	// A Job's active attempts are not spread: which attempts are active
	// differs between nodes while their records travel by gossip, and a
	// spread cap would then place the same attempt on two nodes, each
	// running it. Uncapped, an attempt goes to its best node with room,
	// whatever the others.
	limit := w.replicas
	if room > 0 && w.names == nil {
		limit = (w.replicas + room - 1) / room
	}
	s.count = slices.Grow(s.count[:0], n)[:n]
	clear(s.count)
	pods := make([]Pod, w.replicas)
	keys := make([]uint64, w.replicas)
	// Pairs (pod, node) are granted in descending order of score while the
	// node is below the spread cap and has room. Every pod wishes for its
	// best node below the cap with room; the highest wish of the workload
	// is granted first; a pod whose node has filled up in the meantime
	// wishes again. So where more replicas want a node than the cap allows,
	// the node keeps those that score highest on it — and a pod for which
	// a node is the first choice among more nodes tends to score higher on
	// it than one that wants it only because its better node left, so
	// incumbents stay.
	h := make(wishHeap, 0, w.replicas)
	wishOrFallBack := func(ord int) {
		if best, sc := s.choose(keys[ord], w.requests, limit); best >= 0 {
			h.push(wish{ord, best, sc})
			return
		}
		// No node below the cap has room (some nodes had room for fewer
		// pods than the cap): running beats spreading.
		if best, _ := s.choose(keys[ord], w.requests, w.replicas+1); best >= 0 {
			s.bind(&pods[ord], best, w.requests)
		} else {
			pods[ord].Unplaceable = s.unplaceable(w.requests)
		}
	}
	for ord := range pods {
		pods[ord] = newPod(w.podName(ord, ""))
		keys[ord] = hashKey(w.namespace, pods[ord].Name)
		wishOrFallBack(ord)
	}
	for len(h) > 0 {
		x := h.pop()
		if s.count[x.node] < limit && s.nodes[x.node].free.fits(w.requests) {
			s.bind(&pods[x.ord], x.node, w.requests)
		} else {
			wishOrFallBack(x.ord)
		}
	}
	s.pods = append(s.pods, pods...)
}

func (s *scheduler) bind(p *Pod, node int, req Resources) {
	nd := &s.nodes[node]
	nd.free = nd.free.sub(req)
	s.count[node]++
	p.Node = nd.Name
}

// choose returns the index of the eligible node with the highest weighted
// rendezvous score for key among those with room for req and fewer than
// limit pods of the current workload, or -1.
func (s *scheduler) choose(key uint64, req Resources, limit int) (int, score) {
	best := -1
	var bestScore score
	for _, i := range s.eligible {
		nd := &s.nodes[i]
		if s.count[i] >= limit || !nd.free.fits(req) {
			continue
		}
		sc := score{weight: nd.w, nlog: negLog2(mix(key, nd.hash))}
		// Ties (vanishingly rare) go to the node first by name, which is
		// the first one seen.
		if best < 0 || sc.higher(bestScore) {
			best, bestScore = i, sc
		}
	}
	return best, bestScore
}

// unplaceable explains, node class by node class, why no node takes a pod
// requesting req.
func (s *scheduler) unplaceable(req Resources) string {
	if len(s.nodes) == 0 {
		return "0/0 nodes are available: the cluster has no nodes."
	}
	counts := map[string]int{}
	for i := range s.nodes {
		if r := s.reasons[i]; r != "" {
			counts[r]++
			continue
		}
		for _, r := range insufficient(s.nodes[i].free, req) {
			counts[r]++
		}
	}
	return fmt.Sprintf("0/%d nodes are available: %s.", len(s.nodes), joinCounts(counts))
}

// joinCounts formats reasons with their counts, most frequent first.
func joinCounts(counts map[string]int) string {
	type rc struct {
		r string
		c int
	}
	var l []rc
	for r, c := range counts {
		l = append(l, rc{r, c})
	}
	slices.SortFunc(l, func(a, b rc) int { return cmp.Or(cmp.Compare(b.c, a.c), cmp.Compare(a.r, b.r)) })
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i] = strconv.Itoa(x.c) + " " + x.r
	}
	return strings.Join(parts, ", ")
}

// insufficient lists the resources free lacks for req.
func insufficient(free, req Resources) []string {
	var r []string
	if req.MilliCPU > free.MilliCPU {
		r = append(r, "insufficient cpu")
	}
	if req.Memory > free.Memory {
		r = append(r, "insufficient memory")
	}
	if req.Pods > free.Pods {
		r = append(r, "too many pods")
	}
	return r
}

// staticReason is like the function staticReason, with the taint messages
// formatted once per node rather than once per workload.
func (n *nodeState) staticReason(spec *corev1.PodSpec) string {
	r, taint := staticCheck(n.Node, spec)
	if taint >= 0 {
		return n.taintReasons[taint]
	}
	return r
}

// staticReason is why node cannot run a pod with spec whatever its free
// resources, or "" when it can.
func staticReason(node *Node, spec *corev1.PodSpec) string {
	r, taint := staticCheck(node, spec)
	if taint >= 0 {
		t := node.Taints[taint]
		return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)
	}
	return r
}

// staticCheck returns staticReason's answer, except that for an
// untolerated taint it returns the taint's index (else -1).
func staticCheck(node *Node, spec *corev1.PodSpec) (string, int) {
	if node.Unschedulable {
		return "node(s) were unschedulable", -1
	}
	for k, v := range spec.NodeSelector {
		if got, ok := node.Labels[k]; !ok || got != v {
			return "node(s) didn't match nodeSelector", -1
		}
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil {
		if req := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
			if !matchNodeSelector(node, req) {
				return "node(s) didn't match node affinity", -1
			}
		}
	}
	for i := range node.Taints {
		t := &node.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !tolerated(spec.Tolerations, t) {
			return "", i
		}
	}
	return "", -1
}

func tolerated(tols []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tols {
		tol := &tols[i]
		if tol.Effect != "" && tol.Effect != t.Effect {
			continue
		}
		switch tol.Operator {
		case corev1.TolerationOpExists:
			if tol.Key == "" || tol.Key == t.Key {
				return true
			}
		case corev1.TolerationOpEqual, "":
			if tol.Key == t.Key && tol.Value == t.Value {
				return true
			}
		}
	}
	return false
}

// matchNodeSelector reports whether node satisfies a required node
// affinity: any one of its terms, each term all of its expressions.
func matchNodeSelector(node *Node, sel *corev1.NodeSelector) bool {
	for i := range sel.NodeSelectorTerms {
		term := &sel.NodeSelectorTerms[i]
		if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
			continue // an empty term matches nothing
		}
		ok := true
		for j := range term.MatchExpressions {
			e := &term.MatchExpressions[j]
			v, has := node.Labels[e.Key]
			if !matchRequirement(e.Operator, v, has, e.Values) {
				ok = false
				break
			}
		}
		for j := range term.MatchFields {
			e := &term.MatchFields[j]
			if e.Key != "metadata.name" || !matchRequirement(e.Operator, node.Name, true, e.Values) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func matchRequirement(op corev1.NodeSelectorOperator, v string, has bool, values []string) bool {
	switch op {
	case corev1.NodeSelectorOpIn:
		return has && slices.Contains(values, v)
	case corev1.NodeSelectorOpNotIn:
		return !has || !slices.Contains(values, v)
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !has || len(values) != 1 {
			return false
		}
		a, err1 := strconv.ParseInt(v, 10, 64)
		b, err2 := strconv.ParseInt(values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if op == corev1.NodeSelectorOpGt {
			return a > b
		}
		return a < b
	}
	return false
}

// wish is a pod's choice of a node, with its score there.
type wish struct {
	ord, node int
	sc        score
}

// before orders wishes by descending score, then ordinal.
func (a wish) before(b wish) bool {
	switch {
	case a.sc.higher(b.sc):
		return true
	case b.sc.higher(a.sc):
		return false
	}
	return a.ord < b.ord
}

// wishHeap is a binary max-heap of wishes by wish.before.
type wishHeap []wish

func (h *wishHeap) push(x wish) {
	*h = append(*h, x)
	i := len(*h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !(*h)[i].before((*h)[p]) {
			break
		}
		(*h)[i], (*h)[p] = (*h)[p], (*h)[i]
		i = p
	}
}

func (h *wishHeap) pop() wish {
	old := *h
	top := old[0]
	n := len(old) - 1
	old[0] = old[n]
	*h = old[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && (*h)[l].before((*h)[m]) {
			m = l
		}
		if r < n && (*h)[r].before((*h)[m]) {
			m = r
		}
		if m == i {
			break
		}
		(*h)[i], (*h)[m] = (*h)[m], (*h)[i]
		i = m
	}
	return top
}
