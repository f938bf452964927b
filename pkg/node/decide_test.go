package node

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitorch/gitorch/pkg/apply"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testPod(policy corev1.RestartPolicy, inits []string, containers ...string) *desiredPod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}
	p.Spec.RestartPolicy = policy
	p.Spec.NodeName = "n1"
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: n, Image: "busybox"})
	}
	for _, n := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: "busybox"})
	}
	return &desiredPod{pod: p, workload: "Deployment/web", templateHash: "h1", revision: "r1"}
}

func running(name string, attempt int) apply.ContainerStatus {
	return apply.ContainerStatus{Name: name, ID: "default_web_" + name, Attempt: attempt, State: apply.StateRunning,
		PID: 100, CreatedAt: t0, TemplateHash: "h1", Revision: "r1"}
}

func exited(name string, attempt int, code uint32, ranFor time.Duration) apply.ContainerStatus {
	c := running(name, attempt)
	c.State, c.PID, c.ExitCode, c.ExitedAt = apply.StateExited, 0, code, t0.Add(ranFor)
	return c
}

func observedPod(cs ...apply.ContainerStatus) *apply.PodStatus {
	return &apply.PodStatus{Namespace: "default", Name: "web", IP: netip.MustParseAddr("10.88.0.2"), Containers: cs}
}

func actions(d decision) []string {
	var out []string
	for _, a := range d.actions {
		out = append(out, a.String())
	}
	return out
}

var testBackoff = Backoff{Initial: 10 * time.Second, Max: 300 * time.Second, Reset: 10 * time.Minute}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 8; n++ {
		got = append(got, testBackoff.delay(n))
	}
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300, 300}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
}

func TestNewPodStartsItsContainers(t *testing.T) {
	d := decide(testPod(corev1.RestartPolicyAlways, nil, "a", "b"), nil, newPodMemory(), nil, testBackoff, t0)
	if got := actions(d); !slices.Equal(got, []string{"start a", "start b"}) {
		t.Fatalf("actions %v", got)
	}
	if d.status.Phase != PhasePending || d.status.Reason != ReasonContainerCreating {
		t.Fatalf("status %s/%s, want Pending/ContainerCreating", d.status.Phase, d.status.Reason)
	}
}

func TestInitContainersRunOneAtATimeInOrder(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, []string{"i1", "i2"}, "app")
	mem := newPodMemory()
	steps := []struct {
		name     string
		observed *apply.PodStatus
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
		d := decide(pod, s.observed, mem, nil, testBackoff, t0.Add(time.Minute))
		if got := actions(d); !slices.Equal(got, s.actions) {
			t.Errorf("%s: actions %v, want %v", s.name, got, s.actions)
		}
		if s.reason != "" && d.status.Reason != s.reason {
			t.Errorf("%s: reason %q, want %q", s.name, d.status.Reason, s.reason)
		}
	}
}

func TestFailedInitContainerFailsAPodThatNeverRestarts(t *testing.T) {
	pod := testPod(corev1.RestartPolicyNever, []string{"i1"}, "app")
	d := decide(pod, observedPod(exited("i1", 0, 1, time.Second)), newPodMemory(), nil, testBackoff, t0.Add(time.Minute))
	if len(d.actions) != 0 || d.status.Phase != PhaseFailed || d.status.Reason != "Init:Error" {
		t.Fatalf("actions %v, status %s/%s; want none, Failed/Init:Error", actions(d), d.status.Phase, d.status.Reason)
	}
}

func TestFailedInitContainerIsRetriedWithBackoff(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, []string{"i1"}, "app")
	mem := newPodMemory()
	obs := observedPod(exited("i1", 0, 1, time.Second))
	d := decide(pod, obs, mem, nil, testBackoff, t0.Add(2*time.Second))
	if len(d.actions) != 0 || d.status.Reason != "Init:CrashLoopBackOff" {
		t.Fatalf("actions %v, reason %q; want none, Init:CrashLoopBackOff", actions(d), d.status.Reason)
	}
	if want := t0.Add(11 * time.Second); !d.wake.Equal(want) {
		t.Fatalf("wake %v, want %v", d.wake, want)
	}
	d = decide(pod, obs, mem, nil, testBackoff, t0.Add(11*time.Second))
	if got := actions(d); !slices.Equal(got, []string{"start i1"}) {
		t.Fatalf("after the back-off: actions %v", got)
	}
}

// A container that keeps crashing waits 10 s, 20 s, 40 s … 300 s before
// each restart, counted from its exit.
func TestCrashLoopBackOffGrowsAndIsCapped(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	mem := newPodMemory()
	exitAt := t0
	var waits []time.Duration
	for attempt := range 8 {
		c := running("app", attempt)
		c.CreatedAt = exitAt.Add(-time.Second)
		c.State, c.ExitCode, c.ExitedAt = apply.StateExited, 1, exitAt
		obs := observedPod(c)
		d := decide(pod, obs, mem, nil, testBackoff, exitAt)
		if len(d.actions) != 0 {
			t.Fatalf("attempt %d: restarted at once: %v", attempt, actions(d))
		}
		if d.status.Phase != PhaseRunning || d.status.Reason != ReasonCrashLoopBackOff {
			t.Fatalf("attempt %d: status %s/%s, want Running/CrashLoopBackOff", attempt, d.status.Phase, d.status.Reason)
		}
		if lt := d.status.Containers[0].LastTermination; lt == nil || lt.Reason != ReasonError || lt.ExitCode != 1 {
			t.Fatalf("attempt %d: last termination %+v", attempt, lt)
		}
		waits = append(waits, d.wake.Sub(exitAt))
		// Just before the back-off ends nothing happens; at its end the
		// container is started.
		if d := decide(pod, obs, mem, nil, testBackoff, d.wake.Add(-time.Millisecond)); len(d.actions) != 0 {
			t.Fatalf("attempt %d: started before the back-off ended", attempt)
		}
		if got := actions(decide(pod, obs, mem, nil, testBackoff, d.wake)); !slices.Equal(got, []string{"start app"}) {
			t.Fatalf("attempt %d: at the end of the back-off: %v", attempt, got)
		}
		exitAt = d.wake.Add(time.Second)
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
	mem := newPodMemory()
	for attempt := range 3 {
		obs := observedPod(exited("app", attempt, 1, time.Second))
		obs.Containers[0].CreatedAt = t0.Add(time.Duration(attempt) * time.Hour)
		obs.Containers[0].ExitedAt = obs.Containers[0].CreatedAt.Add(time.Second)
		decide(pod, obs, mem, nil, testBackoff, obs.Containers[0].ExitedAt)
	}
	if mem.container("app").crashes != 3 {
		t.Fatalf("crashes %d, want 3", mem.container("app").crashes)
	}
	long := exited("app", 3, 1, 11*time.Minute)
	long.CreatedAt = t0.Add(5 * time.Hour)
	long.ExitedAt = long.CreatedAt.Add(11 * time.Minute)
	d := decide(pod, observedPod(long), mem, nil, testBackoff, long.ExitedAt)
	if got := d.wake.Sub(long.ExitedAt); got != 10*time.Second {
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
		d := decide(pod, obs, newPodMemory(), nil, testBackoff, t0.Add(time.Hour))
		if got := len(d.actions) == 1; got != c.restarts {
			t.Errorf("%s exit %d: restarts %v, want %v", c.policy, c.code, got, c.restarts)
		}
		d = decide(pod, obs, newPodMemory(), nil, testBackoff, t0.Add(2*time.Second))
		if d.status.Phase != c.phase || d.status.Reason != c.wantsReason {
			t.Errorf("%s exit %d: status %s/%s, want %s/%s", c.policy, c.code, d.status.Phase, d.status.Reason, c.phase, c.wantsReason)
		}
	}
}

func TestOOMKilledIsReported(t *testing.T) {
	pod := testPod(corev1.RestartPolicyNever, nil, "app")
	c := exited("app", 0, 137, time.Second)
	c.OOMKilled = true
	d := decide(pod, observedPod(c), newPodMemory(), nil, testBackoff, t0.Add(time.Minute))
	if d.status.Phase != PhaseFailed || d.status.Reason != ReasonOOMKilled || d.status.Containers[0].Reason != ReasonOOMKilled {
		t.Fatalf("status %s/%s, container %q; want Failed/OOMKilled", d.status.Phase, d.status.Reason, d.status.Containers[0].Reason)
	}
}

func TestImagePullFailureShowsErrImagePullThenBackOff(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	mem := newPodMemory()
	cm := mem.container("app")
	cm.startFailures, cm.startReason, cm.startMessage = 1, ReasonErrImagePull, "pull failed: 401"
	cm.startRetry = t0.Add(10 * time.Second)
	d := decide(pod, nil, mem, nil, testBackoff, t0)
	if len(d.actions) != 0 || d.status.Reason != ReasonErrImagePull {
		t.Fatalf("first look: actions %v, reason %q", actions(d), d.status.Reason)
	}
	d = decide(pod, nil, mem, nil, testBackoff, t0.Add(time.Second))
	if len(d.actions) != 0 || d.status.Reason != ReasonImagePullBackOff || !d.wake.Equal(cm.startRetry) {
		t.Fatalf("in back-off: actions %v, reason %q, wake %v", actions(d), d.status.Reason, d.wake)
	}
	d = decide(pod, nil, mem, nil, testBackoff, cm.startRetry)
	if got := actions(d); !slices.Equal(got, []string{"start app"}) {
		t.Fatalf("after the back-off: %v", got)
	}
}

type fixedProbes map[string][2]bool

func (f fixedProbes) State(_, container, _ string) (bool, bool, bool) {
	s, ok := f[container]
	if !ok {
		return false, false, false
	}
	return s[0], s[1], true
}

func TestReadinessGatesThePod(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "a", "b")
	obs := observedPod(running("a", 0), running("b", 0))
	d := decide(pod, obs, newPodMemory(), fixedProbes{"b": {true, false}}, testBackoff, t0)
	if d.status.Phase != PhaseRunning || d.status.Ready {
		t.Fatalf("status %s ready=%v, want Running and not ready", d.status.Phase, d.status.Ready)
	}
	if r, n := d.status.ReadyCount(); r != 1 || n != 2 {
		t.Fatalf("ready %d/%d, want 1/2", r, n)
	}
	d = decide(pod, obs, newPodMemory(), fixedProbes{}, testBackoff, t0)
	if !d.status.Ready {
		t.Fatal("not ready without readiness probes")
	}
	// A new instance whose readiness probe has not run yet is not ready.
	pod.pod.Spec.Containers[1].ReadinessProbe = &corev1.Probe{}
	d = decide(pod, obs, newPodMemory(), fixedProbes{}, testBackoff, t0)
	if d.status.Ready || container0(d, "b").Ready {
		t.Fatal("ready before its readiness probe ran")
	}
}

func container0(d decision, name string) ContainerStatus {
	for _, c := range d.status.Containers {
		if c.Name == name {
			return c
		}
	}
	return ContainerStatus{}
}

func TestKillAppliesOnlyToTheInstanceItNames(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	mem := newPodMemory()
	old := running("app", 0)
	cm := mem.container("app")
	cm.killInstance, cm.killReason = instanceID(old), "Liveness probe failed: HTTP probe failed with statuscode: 500"
	if got := actions(decide(pod, observedPod(old), mem, nil, testBackoff, t0)); len(got) != 1 || got[0] != "kill app: "+cm.killReason {
		t.Fatalf("actions %v", got)
	}
	restarted := running("app", 1)
	restarted.CreatedAt = t0.Add(time.Minute)
	if got := actions(decide(pod, observedPod(restarted), mem, nil, testBackoff, t0.Add(time.Minute))); len(got) != 0 {
		t.Fatalf("the new instance is killed too: %v", got)
	}
}

func TestChangedTemplateReplacesThePod(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	c := running("app", 0)
	c.TemplateHash = "old"
	got := actions(decide(pod, observedPod(c), newPodMemory(), nil, testBackoff, t0))
	if len(got) != 1 || got[0] != "stop pod: its template changed" {
		t.Fatalf("actions %v", got)
	}
}

func TestNewRevisionRewritesVolumesWithoutRestart(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	mem := newPodMemory()
	mem.volumesRevision = "r0"
	pod.pod.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}}
	c := running("app", 0)
	c.Revision = "r0"
	if got := actions(decide(pod, observedPod(c), mem, nil, testBackoff, t0)); !slices.Equal(got, []string{"sync volumes"}) {
		t.Fatalf("actions %v", got)
	}
}

func TestPodLeavingTheNodeIsStopped(t *testing.T) {
	mem := newPodMemory()
	d := decide(nil, observedPod(running("app", 0)), mem, nil, testBackoff, t0)
	if got := actions(d); len(got) != 1 || got[0] != "stop pod: no longer in the manifests for this node" {
		t.Fatalf("actions %v", got)
	}
	if d.status.Phase != PhaseTerminating {
		t.Fatalf("phase %s", d.status.Phase)
	}
}
