package plan

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitorch/gitorch/pkg/backoff"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testPod(policy corev1.RestartPolicy, inits []string, containers ...string) *DesiredPod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}
	p.Spec.RestartPolicy = policy
	p.Spec.NodeName = "n1"
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: n, Image: "busybox"})
	}
	for _, n := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: "busybox"})
	}
	return &DesiredPod{Pod: p, Workload: "Deployment/web", TemplateHash: "h1", Revision: "r1"}
}

func running(name string, attempt int) ObservedContainer {
	return ObservedContainer{Name: name, ID: "default_web_" + name, Attempt: attempt, State: ContainerRunning,
		PID: 100, CreatedAt: t0, TemplateHash: "h1", Revision: "r1"}
}

func exited(name string, attempt int, code uint32, ranFor time.Duration) ObservedContainer {
	c := running(name, attempt)
	c.State, c.PID, c.ExitCode, c.ExitedAt = ContainerExited, 0, code, t0.Add(ranFor)
	return c
}

func observedPod(cs ...ObservedContainer) *ObservedPod {
	return &ObservedPod{Namespace: "default", Name: "web", IP: netip.MustParseAddr("10.88.0.2"), Containers: cs}
}

func actions(d PodDecision) []string {
	var out []string
	for _, a := range d.Actions {
		out = append(out, a.String())
	}
	return out
}

var testBackoff = backoff.Backoff{Initial: 10 * time.Second, Max: 300 * time.Second, Reset: 10 * time.Minute}

// decider threads a pod's memory through successive decisions, as a pod
// worker does.
type decider struct{ mem PodMemory }

func (s *decider) decide(pod *DesiredPod, obs *ObservedPod, probes ProbeView, now time.Time) PodDecision {
	d := DecidePod(pod, obs, s.mem, probes, testBackoff, now)
	s.mem = d.Memory
	return d
}

func TestNewPodStartsItsContainers(t *testing.T) {
	d := (&decider{}).decide(testPod(corev1.RestartPolicyAlways, nil, "a", "b"), nil, nil, t0)
	if got := actions(d); !slices.Equal(got, []string{"start a", "start b"}) {
		t.Fatalf("actions %v", got)
	}
	if d.Status.Phase != PhasePending || d.Status.Reason != ReasonContainerCreating {
		t.Fatalf("status %s/%s, want Pending/ContainerCreating", d.Status.Phase, d.Status.Reason)
	}
}

func TestInitContainersRunOneAtATimeInOrder(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, []string{"i1", "i2"}, "app")
	mem := &decider{}
	steps := []struct {
		name     string
		observed *ObservedPod
		actions  []string
		reason   string
	}{
		{"nothing yet: the first init container", nil, []string{"start i1"}, "Init:0/2"},
		{"first running: wait", observedPod(running("i1", 0)), nil, "Init:0/2"},
		{"first done: the second", observedPod(exited("i1", 0, 0, time.Second)), []string{"start i2"}, "Init:1/2"},
		{"both done: the app", observedPod(exited("i1", 0, 0, time.Second), exited("i2", 0, 0, time.Second)), []string{"start app"}, ReasonContainerCreating},
		{"app exists: init containers are not run again", observedPod(running("app", 0)), nil, ""},
	}
	for _, s := range steps {
		d := mem.decide(pod, s.observed, nil, t0.Add(time.Minute))
		if got := actions(d); !slices.Equal(got, s.actions) {
			t.Errorf("%s: actions %v, want %v", s.name, got, s.actions)
		}
		if s.reason != "" && d.Status.Reason != s.reason {
			t.Errorf("%s: reason %q, want %q", s.name, d.Status.Reason, s.reason)
		}
	}
}

func TestFailedInitContainerFailsAPodThatNeverRestarts(t *testing.T) {
	pod := testPod(corev1.RestartPolicyNever, []string{"i1"}, "app")
	d := (&decider{}).decide(pod, observedPod(exited("i1", 0, 1, time.Second)), nil, t0.Add(time.Minute))
	if len(d.Actions) != 0 || d.Status.Phase != PhaseFailed || d.Status.Reason != "Init:Error" {
		t.Fatalf("actions %v, status %s/%s; want none, Failed/Init:Error", actions(d), d.Status.Phase, d.Status.Reason)
	}
}

func TestFailedInitContainerIsRetriedWithBackoff(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, []string{"i1"}, "app")
	mem := &decider{}
	obs := observedPod(exited("i1", 0, 1, time.Second))
	d := mem.decide(pod, obs, nil, t0.Add(2*time.Second))
	if len(d.Actions) != 0 || d.Status.Reason != "Init:CrashLoopBackOff" {
		t.Fatalf("actions %v, reason %q; want none, Init:CrashLoopBackOff", actions(d), d.Status.Reason)
	}
	if want := t0.Add(11 * time.Second); !d.Wake.Equal(want) {
		t.Fatalf("wake %v, want %v", d.Wake, want)
	}
	d = mem.decide(pod, obs, nil, t0.Add(11*time.Second))
	if got := actions(d); !slices.Equal(got, []string{"start i1"}) {
		t.Fatalf("after the back-off: actions %v", got)
	}
}

// A container that keeps crashing waits 10 s, 20 s, 40 s … 300 s before
// each restart, counted from its exit.
func TestCrashLoopBackOffGrowsAndIsCapped(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	mem := &decider{}
	exitAt := t0
	var waits []time.Duration
	for attempt := range 8 {
		c := running("app", attempt)
		c.CreatedAt = exitAt.Add(-time.Second)
		c.State, c.ExitCode, c.ExitedAt = ContainerExited, 1, exitAt
		obs := observedPod(c)
		d := mem.decide(pod, obs, nil, exitAt)
		if len(d.Actions) != 0 {
			t.Fatalf("attempt %d: restarted at once: %v", attempt, actions(d))
		}
		if d.Status.Phase != PhaseRunning || d.Status.Reason != ReasonCrashLoopBackOff {
			t.Fatalf("attempt %d: status %s/%s, want Running/CrashLoopBackOff", attempt, d.Status.Phase, d.Status.Reason)
		}
		if lt := d.Status.Containers[0].LastTermination; lt == nil || lt.Reason != ReasonError || lt.ExitCode != 1 {
			t.Fatalf("attempt %d: last termination %+v", attempt, lt)
		}
		waits = append(waits, d.Wake.Sub(exitAt))
		// Just before the back-off ends nothing happens; at its end the
		// container is started.
		if d := mem.decide(pod, obs, nil, d.Wake.Add(-time.Millisecond)); len(d.Actions) != 0 {
			t.Fatalf("attempt %d: started before the back-off ended", attempt)
		}
		if got := actions(mem.decide(pod, obs, nil, d.Wake)); !slices.Equal(got, []string{"start app"}) {
			t.Fatalf("attempt %d: at the end of the back-off: %v", attempt, got)
		}
		exitAt = d.Wake.Add(time.Second)
	}
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300, 300}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(waits, want) {
		t.Fatalf("back-offs %v, want %v", waits, want)
	}
}

func TestBackoffResetsAfterTenMinutesOfRunning(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	mem := &decider{}
	for attempt := range 3 {
		obs := observedPod(exited("app", attempt, 1, time.Second))
		obs.Containers[0].CreatedAt = t0.Add(time.Duration(attempt) * time.Hour)
		obs.Containers[0].ExitedAt = obs.Containers[0].CreatedAt.Add(time.Second)
		mem.decide(pod, obs, nil, obs.Containers[0].ExitedAt)
	}
	if c := mem.mem.Containers["app"].Crashes; c != 3 {
		t.Fatalf("crashes %d, want 3", c)
	}
	long := exited("app", 3, 1, 11*time.Minute)
	long.CreatedAt = t0.Add(5 * time.Hour)
	long.ExitedAt = long.CreatedAt.Add(11 * time.Minute)
	d := mem.decide(pod, observedPod(long), nil, long.ExitedAt)
	if got := d.Wake.Sub(long.ExitedAt); got != 10*time.Second {
		t.Fatalf("back-off after a long run %v, want 10s", got)
	}
}

func TestRestartPolicies(t *testing.T) {
	cases := []struct {
		policy      corev1.RestartPolicy
		code        uint32
		restarts    bool
		phase       string
		wantsReason string
	}{
		{corev1.RestartPolicyAlways, 0, true, PhaseRunning, ReasonCrashLoopBackOff},
		{corev1.RestartPolicyAlways, 1, true, PhaseRunning, ReasonCrashLoopBackOff},
		{corev1.RestartPolicyOnFailure, 0, false, PhaseSucceeded, ReasonCompleted},
		{corev1.RestartPolicyOnFailure, 1, true, PhaseRunning, ReasonCrashLoopBackOff},
		{corev1.RestartPolicyNever, 0, false, PhaseSucceeded, ReasonCompleted},
		{corev1.RestartPolicyNever, 1, false, PhaseFailed, ReasonError},
	}
	for _, c := range cases {
		pod := testPod(c.policy, nil, "app")
		obs := observedPod(exited("app", 0, c.code, time.Second))
		d := (&decider{}).decide(pod, obs, nil, t0.Add(time.Hour))
		if got := len(d.Actions) == 1; got != c.restarts {
			t.Errorf("%s exit %d: restarts %v, want %v", c.policy, c.code, got, c.restarts)
		}
		d = (&decider{}).decide(pod, obs, nil, t0.Add(2*time.Second))
		if d.Status.Phase != c.phase || d.Status.Reason != c.wantsReason {
			t.Errorf("%s exit %d: status %s/%s, want %s/%s", c.policy, c.code, d.Status.Phase, d.Status.Reason, c.phase, c.wantsReason)
		}
	}
}

func TestOOMKilledIsReported(t *testing.T) {
	pod := testPod(corev1.RestartPolicyNever, nil, "app")
	c := exited("app", 0, 137, time.Second)
	c.OOMKilled = true
	d := (&decider{}).decide(pod, observedPod(c), nil, t0.Add(time.Minute))
	if d.Status.Phase != PhaseFailed || d.Status.Reason != ReasonOOMKilled || d.Status.Containers[0].Reason != ReasonOOMKilled {
		t.Fatalf("status %s/%s, container %q; want Failed/OOMKilled", d.Status.Phase, d.Status.Reason, d.Status.Containers[0].Reason)
	}
}

func TestImagePullFailureShowsErrImagePullThenBackOff(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	mem := &decider{}
	mem.mem = mem.mem.StartFailed("app", ReasonErrImagePull, "pull failed: 401", testBackoff, t0)
	cm := mem.mem.Containers["app"]
	d := mem.decide(pod, nil, nil, t0)
	if len(d.Actions) != 0 || d.Status.Reason != ReasonErrImagePull {
		t.Fatalf("first look: actions %v, reason %q", actions(d), d.Status.Reason)
	}
	d = mem.decide(pod, nil, nil, t0.Add(time.Second))
	if len(d.Actions) != 0 || d.Status.Reason != ReasonImagePullBackOff || !d.Wake.Equal(cm.StartRetry) {
		t.Fatalf("in back-off: actions %v, reason %q, wake %v", actions(d), d.Status.Reason, d.Wake)
	}
	d = mem.decide(pod, nil, nil, cm.StartRetry)
	if got := actions(d); !slices.Equal(got, []string{"start app"}) {
		t.Fatalf("after the back-off: %v", got)
	}
}

type fixedProbes map[string][2]bool

func (f fixedProbes) State(_ Key, container, _ string) (bool, bool, bool) {
	s, ok := f[container]
	if !ok {
		return false, false, false
	}
	return s[0], s[1], true
}

func TestReadinessGatesThePod(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "a", "b")
	obs := observedPod(running("a", 0), running("b", 0))
	d := (&decider{}).decide(pod, obs, fixedProbes{"b": {true, false}}, t0)
	if d.Status.Phase != PhaseRunning || d.Status.Ready {
		t.Fatalf("status %s ready=%v, want Running and not ready", d.Status.Phase, d.Status.Ready)
	}
	if r, n := d.Status.ReadyCount(); r != 1 || n != 2 {
		t.Fatalf("ready %d/%d, want 1/2", r, n)
	}
	d = (&decider{}).decide(pod, obs, fixedProbes{}, t0)
	if !d.Status.Ready {
		t.Fatal("not ready without readiness probes")
	}
	// A new instance whose readiness probe has not run yet is not ready.
	pod.Pod.Spec.Containers[1].ReadinessProbe = &corev1.Probe{}
	d = (&decider{}).decide(pod, obs, fixedProbes{}, t0)
	if d.Status.Ready || container0(d, "b").Ready {
		t.Fatal("ready before its readiness probe ran")
	}
}

func container0(d PodDecision, name string) ContainerStatus {
	for _, c := range d.Status.Containers {
		if c.Name == name {
			return c
		}
	}
	return ContainerStatus{}
}

func TestKillAppliesOnlyToTheInstanceItNames(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	mem := &decider{}
	old := running("app", 0)
	reason := "Liveness probe failed: HTTP probe failed with statuscode: 500"
	mem.mem = mem.mem.KillAsked("app", InstanceID(old), reason)
	if got := actions(mem.decide(pod, observedPod(old), nil, t0)); len(got) != 1 || got[0] != "kill app: "+reason {
		t.Fatalf("actions %v", got)
	}
	restarted := running("app", 1)
	restarted.CreatedAt = t0.Add(time.Minute)
	if got := actions(mem.decide(pod, observedPod(restarted), nil, t0.Add(time.Minute))); len(got) != 0 {
		t.Fatalf("the new instance is killed too: %v", got)
	}
}

func TestChangedTemplateReplacesThePod(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	c := running("app", 0)
	c.TemplateHash = "old"
	got := actions((&decider{}).decide(pod, observedPod(c), nil, t0))
	if len(got) != 1 || got[0] != "stop pod: its template changed" {
		t.Fatalf("actions %v", got)
	}
}

func TestNewRevisionRewritesVolumesWithoutRestart(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	mem := &decider{}
	mem.mem = mem.mem.VolumesSynced("r0")
	pod.Pod.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}}
	c := running("app", 0)
	c.Revision = "r0"
	if got := actions(mem.decide(pod, observedPod(c), nil, t0)); !slices.Equal(got, []string{"sync volumes"}) {
		t.Fatalf("actions %v", got)
	}
}

func TestPodLeavingTheNodeIsStopped(t *testing.T) {
	mem := &decider{}
	d := mem.decide(nil, observedPod(running("app", 0)), nil, t0)
	if got := actions(d); len(got) != 1 || got[0] != "stop pod: no longer in the manifests for this node" {
		t.Fatalf("actions %v", got)
	}
	if d.Status.Phase != PhaseTerminating {
		t.Fatalf("phase %s", d.Status.Phase)
	}
}
