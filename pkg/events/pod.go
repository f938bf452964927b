package events

import (
	"fmt"

	"github.com/gitorch/gitorch/pkg/plan"
)

// ForPod returns the events that tell how a pod went from old to cur
// (nil old: the pod is new to the node; nil cur: it is gone). Times and
// nodes are left for the caller to fill in. A container instance is told
// apart from the one before by its start time.
func ForPod(old, cur *plan.PodStatus) []Event {
	if cur == nil {
		return nil
	}
	obj := Pod(cur.Namespace, cur.Name)
	prev := map[string]plan.ContainerStatus{}
	if old != nil {
		for _, c := range old.Containers {
			prev[c.Name] = c
		}
	}
	var out []Event
	add := func(typ, reason, msg string) {
		out = append(out, Event{Type: typ, Reason: reason, Object: obj, Message: msg})
	}
	for _, c := range cur.Containers {
		p, seen := prev[c.Name]
		if c.State == plan.StateRunning && (!seen || p.State != plan.StateRunning || !p.StartedAt.Equal(c.StartedAt)) {
			add(Normal, ReasonStarted, fmt.Sprintf("Started container %s", c.Name))
		}
		// How an instance ended: seen terminated now, or as the last
		// termination of a container that was restarted meanwhile.
		if end, ok := newEnd(p, seen, c); ok {
			switch {
			case end.Reason == plan.ReasonOOMKilled:
				add(Warning, ReasonOOMKilled, fmt.Sprintf("Container %s was killed: out of memory (exit code %d)", c.Name, end.ExitCode))
			case end.ExitCode != 0:
				add(Warning, ReasonFailed, fmt.Sprintf("Container %s exited with code %d", c.Name, end.ExitCode))
			}
		}
		if c.State == plan.StateWaiting && (!seen || p.State != plan.StateWaiting || p.Reason != c.Reason) {
			switch c.Reason {
			case plan.ReasonCrashLoopBackOff:
				add(Warning, ReasonBackOff, fmt.Sprintf("Back-off restarting failed container %s in pod %s", c.Name, cur.Name))
			case plan.ReasonImagePullBackOff:
				add(Warning, ReasonBackOff, fmt.Sprintf("Back-off pulling image %q", c.Image))
			case plan.ReasonErrImagePull, plan.ReasonErrImageNeverPull:
				add(Warning, ReasonFailed, withDetail(fmt.Sprintf("Failed to pull image %q", c.Image), c.Message))
			case plan.ReasonCreateContainerErr, plan.ReasonCreateContainerConf:
				add(Warning, ReasonFailed, withDetail(fmt.Sprintf("Error: %s", c.Reason), c.Message))
			}
		}
		if seen && p.Ready && !c.Ready && c.State == plan.StateRunning && p.StartedAt.Equal(c.StartedAt) {
			add(Warning, ReasonUnhealthy, fmt.Sprintf("Readiness probe of container %s failed", c.Name))
		}
	}
	return out
}

// newEnd is the end of an instance of c that old did not show yet.
func newEnd(old plan.ContainerStatus, seen bool, c plan.ContainerStatus) (plan.Termination, bool) {
	if c.State == plan.StateTerminated && (!seen || old.State != plan.StateTerminated || !old.FinishedAt.Equal(c.FinishedAt)) {
		return plan.Termination{Reason: c.Reason, ExitCode: c.ExitCode, FinishedAt: c.FinishedAt}, true
	}
	if c.LastTermination == nil || seen && old.State == plan.StateTerminated && old.FinishedAt.Equal(c.LastTermination.FinishedAt) {
		// Already told when it was seen terminated.
		return plan.Termination{}, false
	}
	if seen && old.LastTermination != nil && old.LastTermination.FinishedAt.Equal(c.LastTermination.FinishedAt) {
		return plan.Termination{}, false
	}
	if !seen {
		// A pod new to the node (an agent restarted): its history is old
		// news.
		return plan.Termination{}, false
	}
	return *c.LastTermination, true
}

func withDetail(s, detail string) string {
	if detail == "" {
		return s
	}
	return s + ": " + detail
}
