package plan

import (
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Options tune Build.
type Options struct {
	// ServiceCIDR is the range ClusterIPs come from; zero means
	// DefaultServiceCIDR.
	ServiceCIDR netip.Prefix
	// Actual, when set, is where each pod runs now (the live cluster's
	// view): pods move from there, rather than from where the old objects
	// on the old nodes would place them, and pods that run but are not
	// placed any more are destroyed.
	Actual map[Key]string
	// Health, when set, is each workload's health in the live cluster:
	// the plan shows it with the rollouts and lists the workloads that
	// are not Healthy.
	Health []WorkloadStatus
	// Now, when set, is the time CronJobs' next runs are computed from.
	Now time.Time
}

// PodChange is what happens to one pod.
type PodChange struct {
	Action    Action      `json:"action"`
	Namespace string      `json:"namespace"`
	Name      string      `json:"name"`
	Workload  WorkloadRef `json:"workload"`
	// Node is where the pod runs after the plan (create, move); for
	// destroy, where it ran.
	Node string `json:"node,omitempty"`
	// From is where a moved pod ran before.
	From string `json:"from,omitempty"`
	// Reason says why a pod moves ("node-a left") or cannot be placed.
	Reason string `json:"reason,omitempty"`
}

// Summary counts a plan: objects added, changed and destroyed; pods placed
// on a node after the plan, pods that move, and pods that fit nowhere.
type Summary struct {
	Add         int `json:"add"`
	Change      int `json:"change"`
	Destroy     int `json:"destroy"`
	Placed      int `json:"placed"`
	Moved       int `json:"moved"`
	Unplaceable int `json:"unplaceable"`
}

// Plan is what taking a cluster from one revision and membership to
// another does.
type Plan struct {
	Changes []Change    `json:"changes"`
	Pods    []PodChange `json:"pods"`
	// Rollouts are the workloads whose pods are replaced gradually, with
	// their bounds.
	Rollouts []RolloutStep `json:"rollouts,omitempty"`
	// Unhealthy are the workloads of the live cluster that are not
	// Healthy now (with Options.Health).
	Unhealthy []WorkloadStatus `json:"unhealthy,omitempty"`
	Services  []ServiceIP      `json:"services"`
	// Jobs of the new objects (their completions as placement knows them:
	// none recorded) and CronJobs with their next run after Options.Now.
	Jobs     []JobStatus     `json:"jobs,omitempty"`
	CronJobs []CronJobStatus `json:"cronJobs,omitempty"`
	Summary  Summary         `json:"summary"`
}

// HasChanges reports whether the plan changes any object or pod.
func (p *Plan) HasChanges() bool {
	for _, c := range p.Pods {
		if c.Action != ActionUnplaceable {
			return true
		}
	}
	return len(p.Changes) > 0
}

// actualPlacement is a placement of the pods where they run.
func actualPlacement(actual map[Key]string) Placement {
	var p Placement
	for k, node := range actual {
		p.Pods = append(p.Pods, Pod{Namespace: k.Namespace, Name: k.Name, Node: node})
	}
	slices.SortFunc(p.Pods, func(a, b Pod) int { return a.Key().Compare(b.Key()) })
	return p
}

// Build compares the objects old placed on oldNodes with the objects new
// placed on newNodes. Pods that keep their node are not listed; pods that
// fit nowhere after the plan are, as unplaceable.
func Build(old, new []runtime.Object, oldNodes, newNodes []Node, opts Options) Plan {
	cidr := opts.ServiceCIDR
	if !cidr.IsValid() {
		cidr = DefaultServiceCIDR
	}
	p := Plan{Changes: Diff(old, new)}
	for _, c := range p.Changes {
		switch c.Action {
		case ActionCreate:
			p.Summary.Add++
		case ActionDestroy:
			p.Summary.Destroy++
		case ActionUpdate:
			p.Summary.Change++
		}
	}
	before, after := Schedule(old, oldNodes), Schedule(new, newNodes)
	p.Jobs = after.Jobs
	for _, c := range after.CronJobs {
		if sched, err := ParseCronSchedule(c.Schedule, c.TimeZone); err == nil && !opts.Now.IsZero() {
			c.NextScheduleTime = sched.Next(opts.Now)
		}
		p.CronJobs = append(p.CronJobs, c)
	}
	if opts.Actual != nil {
		before = actualPlacement(opts.Actual)
	}
	alive := map[string]bool{}
	for _, n := range newNodes {
		alive[n.Name] = true
	}
	for _, q := range after.Pods {
		c := PodChange{Namespace: q.Namespace, Name: q.Name, Workload: q.Workload, Node: q.Node}
		prev := before.Find(q.Namespace, q.Name)
		switch {
		case q.Node == "":
			c.Action, c.Reason = ActionUnplaceable, q.Unplaceable
			if prev != nil {
				c.From = prev.Node
			}
			p.Summary.Unplaceable++
		case prev == nil || prev.Node == "":
			c.Action = ActionCreate
		case prev.Node != q.Node:
			c.Action, c.From = ActionMove, prev.Node
			if !alive[prev.Node] {
				c.Reason = prev.Node + " left"
			}
			p.Summary.Moved++
		}
		if q.Node != "" {
			p.Summary.Placed++
		}
		if c.Action != "" {
			p.Pods = append(p.Pods, c)
		}
	}
	for _, q := range before.Pods {
		if q.Node != "" && after.Find(q.Namespace, q.Name) == nil {
			p.Pods = append(p.Pods, PodChange{Action: ActionDestroy, Namespace: q.Namespace, Name: q.Name, Workload: q.Workload, Node: q.Node})
		}
	}
	slices.SortFunc(p.Pods, func(a, b PodChange) int {
		return Key{a.Namespace, a.Name}.Compare(Key{b.Namespace, b.Name})
	})
	p.Rollouts = RolloutSteps(old, new, func(ns, name string) int {
		n := 0
		for _, q := range after.Pods {
			if q.Namespace == ns && q.Workload == (WorkloadRef{"DaemonSet", name}) && q.Node != "" {
				n++
			}
		}
		return n
	})
	for i := range p.Rollouts {
		r := &p.Rollouts[i]
		for _, h := range opts.Health {
			if h.Kind == r.Kind && h.Namespace == r.Namespace && h.Name == r.Name {
				r.Now = h.Health
			}
		}
	}
	for _, h := range opts.Health {
		if h.Health != HealthHealthy {
			p.Unhealthy = append(p.Unhealthy, h)
		}
	}
	var svcs []*corev1.Service
	for _, o := range new {
		if s, ok := o.(*corev1.Service); ok {
			svcs = append(svcs, s)
		}
	}
	p.Services = AllocateClusterIPs(svcs, cidr)
	return p
}
