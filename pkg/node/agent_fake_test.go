package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/clock/clocktest"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/source"
)

// These tests drive the agent's logic against the in-memory runtime and a
// fake clock: no root, no containerd, no sleeps but polls of the agent's
// status. The scenario tests run the same agent on a real containerd.

// memSource is a Source whose commits are file maps held in memory.
type memSource struct {
	mu      sync.Mutex
	head    string
	commits map[string]fstest.MapFS
}

func newMemSource() *memSource { return &memSource{commits: map[string]fstest.MapFS{}} }

// commit makes files the head commit and returns its SHA.
func (s *memSource) commit(files map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sha := fmt.Sprintf("%040x", len(s.commits)+1)
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	s.commits[sha], s.head = fsys, sha
	return sha
}

func (s *memSource) Fetch(context.Context) error { return nil }
func (s *memSource) URL() string                 { return "mem://repo" }

func (s *memSource) Resolve(rev string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev == "" {
		rev = s.head
	}
	if _, ok := s.commits[rev]; !ok {
		return "", fmt.Errorf("revision %q not found", rev)
	}
	return rev, nil
}

func (s *memSource) Snapshot(_ context.Context, rev string) (*source.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fsys, ok := s.commits[rev]
	if !ok {
		return nil, fmt.Errorf("revision %q not found", rev)
	}
	return &source.Snapshot{Revision: rev, Subject: "commit " + rev[36:], FS: fsys}, nil
}

// fakeNode is an agent on the fake runtime.
type fakeNode struct {
	src     *memSource
	rt      *applytest.FakeRuntime
	clk     *clocktest.Fake
	dataDir string
}

func newFakeNode(t *testing.T) *fakeNode {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return &fakeNode{src: newMemSource(), rt: applytest.NewFakeRuntime(clk), clk: clk, dataDir: t.TempDir()}
}

// start runs an agent, with mod applied to its configuration, until the
// test ends or the returned stop is called.
func (n *fakeNode) start(t *testing.T, mod ...func(*node.Config)) (*node.Agent, func()) {
	t.Helper()
	cfg := node.Config{
		Node:         plan.Node{Name: "n1", Allocatable: plan.Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}},
		Source:       n.src,
		Runtime:      n.rt,
		DataDir:      n.dataDir,
		PollInterval: time.Hour,
		Resync:       time.Hour,
		Clock:        n.clk,
		Logger:       testLogger(t),
	}
	for _, m := range mod {
		m(&cfg)
	}
	ag, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("agent did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return ag, stop
}

// waitFor polls cond (real time, bounded) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func podsOf(ag *node.Agent) map[string]plan.PodStatus {
	out := map[string]plan.PodStatus{}
	for _, p := range ag.Status().Pods {
		out[p.Name] = p
	}
	return out
}

func countPhase(ag *node.Agent, phase string) int {
	n := 0
	for _, p := range ag.Status().Pods {
		if p.Phase == phase {
			n++
		}
	}
	return n
}

const webDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: %s
`

func web(replicas int, image string) map[string]string {
	return map[string]string{"web.yaml": fmt.Sprintf(webDeployment, replicas, image)}
}

func TestFakeAgentRunsAndRemovesADeployment(t *testing.T) {
	n := newFakeNode(t)
	n.src.commit(web(3, "busybox:1.36"))
	ag, _ := n.start(t)
	waitFor(t, "3 pods running", func() bool { return countPhase(ag, plan.PhaseRunning) == 3 })
	if got := n.rt.Count("start default/web-"); got != 3 {
		t.Fatalf("%d starts, want 3: %v", got, n.rt.Ops())
	}
	for _, p := range ag.Status().Pods {
		if !p.Ready || p.IP == "" || p.Node != "n1" || p.Workload != "Deployment/web" || p.TemplateHash == "" {
			t.Fatalf("pod status %+v", p)
		}
	}
	// Scaled to one: two pods stop.
	sha := n.src.commit(web(1, "busybox:1.36"))
	ag.Sync()
	waitFor(t, "one pod left", func() bool {
		l, _ := n.rt.ListPods(context.Background())
		return len(l) == 1 && len(ag.Status().Pods) == 1
	})
	if got := ag.Status().Running.Commit; got != sha {
		t.Fatalf("running %s, want %s", got, sha)
	}
	if got := n.rt.Count("stoppod "); got != 2 {
		t.Fatalf("%d pods stopped, want 2: %v", got, n.rt.Ops())
	}
}

func TestFakeAgentCrashLoopBackOffOnTheClock(t *testing.T) {
	n := newFakeNode(t)
	n.src.commit(web(1, "busybox:1.36"))
	ag, _ := n.start(t)
	waitFor(t, "the pod running", func() bool { return countPhase(ag, plan.PhaseRunning) == 1 })
	pod := ag.Status().Pods[0]
	var waits []time.Duration
	for crash := 1; crash <= 3; crash++ {
		if err := n.rt.Exit("default", pod.Name, "app", 1, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "CrashLoopBackOff", func() bool { return podsOf(ag)[pod.Name].Reason == plan.ReasonCrashLoopBackOff })
		c := podsOf(ag)[pod.Name].Containers[0]
		wait := c.NextStart.Sub(n.clk.Now())
		waits = append(waits, wait)
		// Nothing starts before the back-off ends.
		n.clk.Advance(wait - time.Second)
		if got := n.rt.Count("start default/" + pod.Name); got != crash {
			t.Fatalf("crash %d: restarted before its back-off ended (%d starts)", crash, got)
		}
		n.clk.Advance(2 * time.Second)
		waitFor(t, "the restart", func() bool {
			p := podsOf(ag)[pod.Name]
			return p.Phase == plan.PhaseRunning && p.Reason == "" && p.Restarts() == crash
		})
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("back-offs %v, want %v", waits, want)
		}
	}
	if lt := podsOf(ag)[pod.Name].Containers[0].LastTermination; lt == nil || lt.ExitCode != 1 || lt.Reason != plan.ReasonError {
		t.Fatalf("last termination %+v", lt)
	}
}

func TestFakeAgentImagePullBackOff(t *testing.T) {
	n := newFakeNode(t)
	n.rt.FailImage("docker.io/library/nosuch:1", fmt.Errorf("pull nosuch: %w", apply.ErrImagePull))
	n.src.commit(web(1, "nosuch:1"))
	ag, _ := n.start(t)
	waitFor(t, "ImagePullBackOff", func() bool {
		p := ag.Status().Pods
		return len(p) == 1 && p[0].Reason == plan.ReasonImagePullBackOff
	})
	if msg := ag.Status().Pods[0].Message; !strings.Contains(msg, "nosuch") {
		t.Fatalf("message %q does not name the image", msg)
	}
	n.rt.FailImage("docker.io/library/nosuch:1", nil)
	n.clk.Advance(11 * time.Second)
	waitFor(t, "the pod running after the back-off", func() bool { return countPhase(ag, plan.PhaseRunning) == 1 })
}

func TestFakeAgentRefusesABadRevisionAndKeepsTheGoodOne(t *testing.T) {
	n := newFakeNode(t)
	good := n.src.commit(web(2, "busybox:1.36"))
	ag, _ := n.start(t)
	waitFor(t, "2 pods running", func() bool { return countPhase(ag, plan.PhaseRunning) == 2 })
	bad := n.src.commit(map[string]string{"web.yaml": strings.Replace(fmt.Sprintf(webDeployment, 2, "busybox:1.36"), "containers:", "contianers:", 1)})
	ag.Sync()
	waitFor(t, "the refusal", func() bool { r := ag.Status().Refused; return r != nil && r.Commit == bad })
	st := ag.Status()
	if st.Running.Commit != good || !strings.Contains(strings.Join(st.Refused.Errors, "\n"), "web.yaml:") {
		t.Fatalf("running %s, refused %+v", st.Running.Commit, st.Refused)
	}
	if got := n.rt.Count("stop"); got != 0 {
		t.Fatalf("a refused revision stopped something: %v", n.rt.Ops())
	}
}

func TestFakeAgentRestartAdoptsItsPods(t *testing.T) {
	n := newFakeNode(t)
	n.src.commit(web(2, "busybox:1.36"))
	ag, stop := n.start(t)
	waitFor(t, "2 pods running", func() bool { return countPhase(ag, plan.PhaseRunning) == 2 })
	stop()
	before := len(n.rt.Ops())
	ag2, _ := n.start(t)
	waitFor(t, "2 pods running again", func() bool { return countPhase(ag2, plan.PhaseRunning) == 2 })
	for _, op := range n.rt.Ops()[before:] {
		if strings.HasPrefix(op, "start") || strings.HasPrefix(op, "stop") {
			t.Fatalf("the restarted agent did %q", op)
		}
	}
}

func TestFakeAgentLivenessFailureRestartsTheContainer(t *testing.T) {
	n := newFakeNode(t)
	files := web(1, "busybox:1.36")
	files["web.yaml"] += `        livenessProbe:
          exec: {command: [check]}
          periodSeconds: 5
          failureThreshold: 2
`
	var failing sync.Map
	n.rt.SetExec(func(_, pod, _ string, _ []string) apply.ExecResult {
		if _, ok := failing.Load(pod); ok {
			return apply.ExecResult{ExitCode: 1, Output: []byte("unhealthy")}
		}
		return apply.ExecResult{}
	})
	n.src.commit(files)
	ag, _ := n.start(t)
	waitFor(t, "the pod running", func() bool { return countPhase(ag, plan.PhaseRunning) == 1 })
	pod := ag.Status().Pods[0].Name
	failing.Store(pod, true)
	// Two failed probes, 5 s apart, ask for the kill; then the
	// container restarts after its back-off.
	for i := 0; i < 40 && n.rt.Count("stop default/"+pod+"/app") == 0; i++ {
		n.clk.BlockUntil(t, 1)
		n.clk.Advance(5 * time.Second)
		time.Sleep(5 * time.Millisecond)
	}
	if n.rt.Count("stop default/"+pod+"/app") == 0 {
		t.Fatalf("no kill after the liveness probe failed: %v", n.rt.Ops())
	}
	failing.Delete(pod)
	n.clk.Advance(11 * time.Second)
	waitFor(t, "the restart", func() bool { p := podsOf(ag)[pod]; return p.Restarts() == 1 && p.Phase == plan.PhaseRunning })
}

func TestFakeRuntimeKeepsTheRealRules(t *testing.T) {
	rt := applytest.NewFakeRuntime(nil)
	ctx := context.Background()
	spec := apply.PodSpec{Namespace: "default", Name: "p", Containers: []apply.ContainerSpec{{Name: "c", Image: "busybox"}}}
	if _, err := rt.StartContainer(ctx, spec, "c"); !errors.Is(err, apply.ErrNotFound) {
		t.Fatalf("start without a sandbox: %v", err)
	}
	if _, err := rt.CreateSandbox(ctx, spec); err != nil {
		t.Fatal(err)
	}
	first, _ := rt.StartContainer(ctx, spec, "c")
	again, _ := rt.StartContainer(ctx, spec, "c")
	if again.PID != first.PID {
		t.Fatal("a running container was started again")
	}
	rt.StopContainer(ctx, "default", "p", "c", time.Second)
	if st, _ := rt.Pod(ctx, "default", "p"); st.Containers[0].State != apply.StateExited {
		t.Fatalf("stopped container %+v", st.Containers[0])
	}
	next, _ := rt.StartContainer(ctx, spec, "c")
	if next.Attempt != 1 {
		t.Fatalf("attempt %d, want 1", next.Attempt)
	}
	rt.StopPod(ctx, "default", "p", time.Second)
	if _, err := rt.Pod(ctx, "default", "p"); !errors.Is(err, apply.ErrNotFound) {
		t.Fatalf("pod after StopPod: %v", err)
	}
}
