package node_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
)

const piJob = `apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  completions: 5
  parallelism: 2
  backoffLimit: %d
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: pi
        image: busybox:1.36
`

// runningJobPods are the names of the running pods of Job name.
func runningJobPods(ag *node.Agent, name string) []string {
	var out []string
	for _, p := range ag.Status().Pods {
		if p.Workload == "Job/"+name && p.Phase == plan.PhaseRunning {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestFakeAgentJobRunsFiveCompletionsAcrossARestart: a Job of 5
// completions, 2 at a time, runs exactly 5 successful pods, though the
// agent restarts after the first two succeeded; nothing runs once it is
// complete, after another restart too.
func TestFakeAgentJobRunsFiveCompletionsAcrossARestart(t *testing.T) {
	n := newFakeNode(t)
	n.src.commit(map[string]string{"pi.yaml": fmt.Sprintf(piJob, 6)})
	ag, stop := n.start(t)
	succeeded := map[string]bool{}
	finish := func(ag *node.Agent, want int) {
		t.Helper()
		var pods []string
		waitFor(t, fmt.Sprintf("%d pods of pi running", want), func() bool {
			pods = runningJobPods(ag, "pi")
			return len(pods) == want
		})
		for _, p := range pods {
			if succeeded[p] {
				t.Fatalf("%s runs again after it succeeded", p)
			}
			if err := n.rt.Exit("default", p, "pi", 0, false); err != nil {
				t.Fatal(err)
			}
			succeeded[p] = true
		}
		waitFor(t, "the pods' successes recorded", func() bool {
			for _, p := range runningJobPods(ag, "pi") {
				if succeeded[p] {
					return false
				}
			}
			return true
		})
	}
	finish(ag, 2)
	stop()
	ag, stop = n.start(t)
	finish(ag, 2)
	finish(ag, 1)
	stop()
	// A restarted agent, given a new revision with the same Job and a
	// Deployment: once the Deployment's pod runs, placement has decided
	// the Job from the records, and none of its pods started again.
	files := web(1, "busybox:1.36")
	files["pi.yaml"] = fmt.Sprintf(piJob, 6)
	n.src.commit(files)
	ag, _ = n.start(t)
	ag.Sync()
	waitFor(t, "the Deployment's pod running", func() bool { return countPhase(ag, plan.PhaseRunning) == 1 })
	if len(succeeded) != 5 {
		t.Fatalf("%d pods succeeded, want 5: %v", len(succeeded), succeeded)
	}
	starts := 0
	for _, op := range n.rt.Ops() {
		if strings.HasPrefix(op, "start default/pi-") {
			starts++
		}
	}
	if starts != 5 {
		t.Fatalf("%d starts of pi's pods, want 5: %v", starts, n.rt.Ops())
	}
	if pods := runningJobPods(ag, "pi"); len(pods) != 0 {
		t.Fatalf("pods of a complete Job run: %v", pods)
	}
}

// TestFakeAgentJobReplacesFailedPodsUntilTheBackoffLimit: each failed pod
// is replaced by a new one until more than backoffLimit failed.
func TestFakeAgentJobReplacesFailedPodsUntilTheBackoffLimit(t *testing.T) {
	n := newFakeNode(t)
	n.src.commit(map[string]string{"pi.yaml": fmt.Sprintf(piJob, 2)})
	ag, _ := n.start(t)
	failed := map[string]bool{}
	for len(failed) < 3 {
		var pods []string
		// Parallelism 2: two pods run before one fails.
		waitFor(t, "two pods of pi running", func() bool {
			pods = nil
			for _, p := range runningJobPods(ag, "pi") {
				if !failed[p] {
					pods = append(pods, p)
				}
			}
			return len(pods) == 2
		})
		p := pods[0]
		if err := n.rt.Exit("default", p, "pi", 1, false); err != nil {
			t.Fatal(err)
		}
		failed[p] = true
	}
	// backoffLimit 2: the third failure fails the Job; nothing replaces
	// the failed pods, and the one that still ran is stopped.
	waitFor(t, "no pod of pi running", func() bool { return len(runningJobPods(ag, "pi")) == 0 })
	starts := n.rt.Count("start default/pi-")
	// 2 at first, one for each of the first two failures.
	if starts != 4 {
		t.Fatalf("%d starts, want 4: %v", starts, n.rt.Ops())
	}
}

const helloCronJob = `apiVersion: batch/v1
kind: CronJob
metadata: {name: hello}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: hello
            image: busybox:1.36
`

// TestFakeClusterCronJobRunsOncePerMinute: three agents on one clock run
// a CronJob of every minute once a minute, each run on one node.
func TestFakeClusterCronJobRunsOncePerMinute(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(map[string]string{"hello.yaml": helloCronJob})
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	ran := map[string]string{} // pod -> node
	for minute := range 5 {
		var node, pod string
		waitFor(t, fmt.Sprintf("a run of minute %d", minute), func() bool {
			for name, pods := range c.runningOn() {
				for _, p := range pods {
					if _, done := ran[p]; !done {
						node, pod = name, p
						return true
					}
				}
			}
			return false
		})
		ran[pod] = node
		if err := c.nodes[node].rt.Exit("default", pod, "hello", 0, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the run finished", func() bool { return c.total() == 0 })
		// The run stays done for the rest of its minute.
		c.clk.Advance(20 * time.Second)
		for _, n := range c.nodes {
			n.ag.Sync()
		}
		if got := c.runningOn(); c.total() != 0 {
			t.Fatalf("a finished run runs again: %v", got)
		}
		next := c.clk.Now().Truncate(time.Minute).Add(time.Minute)
		c.clk.Advance(next.Sub(c.clk.Now()))
	}
	if len(ran) != 5 {
		t.Fatalf("%d runs in 5 minutes: %v", len(ran), ran)
	}
	starts := 0
	for _, n := range c.nodes {
		starts += n.rt.Count("start default/hello-")
	}
	if starts != 5 {
		t.Fatalf("%d starts of runs, want 5: %v", starts, ran)
	}
}

// TestFakeClusterFinishedJobStaysFinishedWhenItsNodeDies: the node that
// ran a Job's only pod dies after it succeeded; the survivors heard the
// success by gossip and do not run the Job again.
func TestFakeClusterFinishedJobStaysFinishedWhenItsNodeDies(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(map[string]string{"once.yaml": strings.ReplaceAll(fmt.Sprintf(piJob, 6), "  completions: 5\n  parallelism: 2\n", "")})
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	var node, pod string
	waitFor(t, "the Job's pod running", func() bool {
		for name, pods := range c.runningOn() {
			node, pod = name, pods[0]
			return true
		}
		return false
	})
	if err := c.nodes[node].rt.Exit("default", pod, "pi", 0, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every node knows the Job complete", func() bool {
		for _, n := range c.nodes {
			st := n.ag.Status()
			if len(st.Jobs) != 1 || st.Jobs[0].Condition != plan.JobComplete {
				return false
			}
		}
		return true
	})
	c.nodes[node].stop()
	c.bus.setState(node, gossip.StateDead)
	c.clk.Advance(10 * time.Second)
	for name, n := range c.nodes {
		if name == node {
			continue
		}
		waitFor(t, name+" placing without "+node, func() bool {
			for _, m := range n.ag.Cluster().Members {
				if m.Name == node && m.Status != "alive" {
					return true
				}
			}
			return false
		})
		n.ag.Sync()
	}
	starts := 0
	for _, n := range c.nodes {
		starts += n.rt.Count("start default/pi-")
	}
	if starts != 1 || c.total() != 0 {
		t.Fatalf("%d starts of the Job's pods, %d running: %v", starts, c.total(), c.runningOn())
	}
	for name, n := range c.nodes {
		if name == node {
			continue
		}
		if st := n.ag.Status(); len(st.Jobs) != 1 || st.Jobs[0].Condition != plan.JobComplete {
			t.Fatalf("%s: Job %+v", name, st.Jobs)
		}
	}
}

// TestFakeAgentJobHealthCountsItsOwnFinishedPods: once the pods of a Job
// succeeded and the agent removed them, the Job's health counts them from
// the node's records, as its Job status does: Healthy, 5 of 5.
func TestFakeAgentJobHealthCountsItsOwnFinishedPods(t *testing.T) {
	n := newFakeNode(t)
	n.src.commit(map[string]string{"pi.yaml": fmt.Sprintf(piJob, 6)})
	ag, _ := n.start(t)
	done := map[string]bool{}
	for len(done) < 5 {
		var pods []string
		waitFor(t, "a new pod of pi running", func() bool {
			pods = slices.DeleteFunc(runningJobPods(ag, "pi"), func(p string) bool { return done[p] })
			return len(pods) > 0
		})
		for _, p := range pods {
			if err := n.rt.Exit("default", p, "pi", 0, false); err != nil {
				t.Fatal(err)
			}
			done[p] = true
		}
	}
	var last []plan.WorkloadStatus
	healthy := func() bool {
		ag.Sync()
		st := ag.Status()
		last = st.Workloads
		if len(st.Jobs) != 1 || st.Jobs[0].Condition != plan.JobComplete {
			return false
		}
		for _, w := range st.Workloads {
			if w.Kind == "Job" && w.Name == "pi" {
				return w.Health == plan.HealthHealthy && w.Available == 5
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !healthy(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pi not Healthy with 5 of 5 succeeded within 10s: %+v; pods %+v", last, ag.Status().Pods)
		}
	}
	// The cluster's status (gitorch status) lists them, Succeeded, as
	// peers list them from gossip.
	var listed []string
	for _, p := range ag.Cluster().Pods {
		if p.Workload == "Job/pi" && p.Phase == plan.PhaseSucceeded && p.Node == "n1" {
			listed = append(listed, p.Name)
		}
	}
	if want := slices.Sorted(maps.Keys(done)); !slices.Equal(listed, want) {
		t.Fatalf("the cluster's status lists %v Succeeded, want %v", listed, want)
	}
}
