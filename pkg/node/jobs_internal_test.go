package node

import (
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/plan"
)

// TestJobBookHearsAndKeeps: what peers gossip of Jobs' pods is merged
// (a running pod's start too, so that every node counts a deadline from
// the same time), other workloads are ignored, and the records survive a
// reload from the data dir.
func TestJobBookHearsAndKeeps(t *testing.T) {
	dir := t.TempDir()
	b := newJobBook(dir)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	states := map[string]gossip.NodeState{
		"n2": {Node: "n2", Pods: []gossip.PodStatus{
			{Namespace: "default", Name: "pi-0123456789-0", Phase: plan.PhaseRunning, StartedAt: t0, Workload: "Job/pi"},
			{Namespace: "default", Name: "pi-0123456789-1", Phase: plan.PhaseSucceeded, StartedAt: t0, Workload: "Job/pi"},
			{Namespace: "default", Name: "web-0123456789-0", Phase: plan.PhaseFailed, StartedAt: t0, Workload: "Deployment/web"},
		}},
		"n1": {Node: "n1", Pods: []gossip.PodStatus{
			{Namespace: "default", Name: "pi-0123456789-2", Phase: plan.PhaseFailed, StartedAt: t0, Workload: "Job/pi"},
		}},
	}
	if !b.hear(states, "n1") {
		t.Fatal("nothing heard")
	}
	if b.hear(states, "n1") {
		t.Error("hearing the same again changed the records")
	}
	want := map[string]plan.Outcome{"pi-0123456789-0": plan.OutcomeStarted, "pi-0123456789-1": plan.OutcomeSucceeded}
	if len(b.recs) != len(want) {
		t.Fatalf("records %+v", b.recs)
	}
	for pod, o := range want {
		if r := b.recs[plan.Key{Namespace: "default", Name: pod}]; r.Outcome != o || !r.Started.Equal(t0) {
			t.Errorf("%s: %+v, want %v", pod, r, o)
		}
	}
	mine := &plan.PodStatus{Namespace: "default", Name: "pi-0123456789-3", Workload: "Job/pi", Phase: plan.PhaseFailed, StartedAt: t0}
	if !b.observe(mine, t0.Add(time.Minute)) {
		t.Fatal("own outcome not recorded")
	}
	if err := b.save(); err != nil {
		t.Fatal(err)
	}
	c := newJobBook(dir)
	if err := c.load(); err != nil {
		t.Fatal(err)
	}
	if len(c.recs) != 3 || !c.own[mine.Key()] || c.own[plan.Key{Namespace: "default", Name: "pi-0123456789-1"}] {
		t.Fatalf("reloaded %+v, own %v", c.recs, c.own)
	}
	if pods := c.ownPods(nil); len(pods) != 1 || pods[0].Name != mine.Name || pods[0].Phase != plan.PhaseFailed || pods[0].Workload != "Job/pi" {
		t.Fatalf("own pods gossiped: %+v", pods)
	}
}
