package node

import (
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gitorch/gitorch/pkg/apply"
)

// Backoff is an exponential back-off: Initial, doubled after each
// failure up to Max, and forgotten after Reset of good running.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	// Reset: a container that ran at least this long before it exited
	// starts its back-off from Initial again.
	Reset time.Duration
}

// DefaultBackoff is kubelet's: 10 s, 20 s, 40 s … capped at 300 s, reset
// after 10 minutes of running.
var DefaultBackoff = Backoff{Initial: 10 * time.Second, Max: 300 * time.Second, Reset: 10 * time.Minute}

// delay is the wait before the n-th retry (n ≥ 1).
func (b Backoff) delay(n int) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Waiting reasons a container shows, as kubelet's.
const (
	ReasonContainerCreating   = "ContainerCreating"
	ReasonPodInitializing     = "PodInitializing"
	ReasonCrashLoopBackOff    = "CrashLoopBackOff"
	ReasonErrImagePull        = "ErrImagePull"
	ReasonImagePullBackOff    = "ImagePullBackOff"
	ReasonErrImageNeverPull   = "ErrImageNeverPull"
	ReasonCreateContainerErr  = "CreateContainerError"
	ReasonCreateContainerConf = "CreateContainerConfigError"
	ReasonCompleted           = "Completed"
	ReasonError               = "Error"
	ReasonOOMKilled           = "OOMKilled"
	ReasonTerminating         = "Terminating"
)

// containerMemory is what the agent remembers of a container between
// passes: what the observed state alone does not tell. It is lost when
// the agent restarts, which only resets back-offs.
type containerMemory struct {
	// Crash back-off: the exited instance it was computed for, how many
	// back-offs in a row, and when the container may start again.
	exitSeen  string
	crashes   int
	nextStart time.Time
	// Start failures (image pull, container creation): the reason,
	// message, failures in a row, when to try again, and whether the
	// failure was shown yet (ErrImagePull is shown once, then
	// ImagePullBackOff).
	startReason   string
	startMessage  string
	startFailures int
	startRetry    time.Time
	startShown    bool
	// A kill asked by a failed liveness or startup probe, for the
	// instance it names.
	killInstance string
	killReason   string
	// How the previous instance ended.
	lastTermination *Termination
}

// podMemory is what the agent remembers of a pod between passes.
type podMemory struct {
	containers map[string]*containerMemory
	// volumesRevision is the revision whose volume contents were last
	// written.
	volumesRevision string
	// grace is the pod's termination grace period, kept for when it is
	// stopped after it left the manifests.
	grace time.Duration
	// spec is the last desired pod, for status and stopping.
	spec *desiredPod
	// firstSeen is when the agent first worked on the pod: its age while
	// no container of it has started.
	firstSeen time.Time
}

func newPodMemory() *podMemory { return &podMemory{containers: map[string]*containerMemory{}} }

func (m *podMemory) container(name string) *containerMemory {
	c := m.containers[name]
	if c == nil {
		c = &containerMemory{}
		m.containers[name] = c
	}
	return c
}

// probeView tells decide what the probes of a container instance say.
type probeView interface {
	// State is whether the instance has started (its startup probe
	// succeeded, or it has none) and is ready (its readiness probe
	// succeeded, or it has none and has started); known is false when
	// none of its probes runs yet.
	State(podKey, container, instance string) (started, ready, known bool)
}

// instanceID names one run of a container: a restarted container is a new
// instance, so probe results and kills of the old one do not carry over.
func instanceID(c apply.ContainerStatus) string {
	return c.ID + "/" + strconv.Itoa(c.Attempt) + "/" + strconv.FormatInt(c.CreatedAt.UnixNano(), 36)
}

type actionKind int

const (
	// actStart starts (or replaces an exited instance of) a container.
	actStart actionKind = iota
	// actKill stops a running container (probe failure); it is restarted
	// by policy afterwards.
	actKill
	// actStopPod stops and removes the whole pod.
	actStopPod
	// actSyncVolumes rewrites configMap and secret volume files.
	actSyncVolumes
)

type podAction struct {
	kind      actionKind
	container string
	reason    string
}

func (a podAction) String() string {
	switch a.kind {
	case actStart:
		return "start " + a.container
	case actKill:
		return "kill " + a.container + ": " + a.reason
	case actStopPod:
		return "stop pod: " + a.reason
	default:
		return "sync volumes"
	}
}

// decision is what decide returns: what to do now, when to look again,
// and the pod's status as it stands.
type decision struct {
	actions []podAction
	// wake is when the pod should be looked at again (a back-off ends);
	// zero when only an event can change anything.
	wake   time.Time
	status PodStatus
}

func (d *decision) wakeAt(t time.Time) {
	if d.wake.IsZero() || t.Before(d.wake) {
		d.wake = t
	}
}

// decide computes what to do with one pod: desired is nil when the pod
// no longer belongs to the node, observed is nil when nothing of it
// exists. It updates mem (back-offs) and does no I/O.
func decide(desired *desiredPod, observed *apply.PodStatus, mem *podMemory, probes probeView, b Backoff, now time.Time) decision {
	var d decision
	if desired == nil {
		d.status = terminatingStatus(observed, mem)
		if observed != nil {
			d.actions = append(d.actions, podAction{kind: actStopPod, reason: "no longer in the manifests for this node"})
		}
		return d
	}
	pod := desired.pod
	key := desired.key()
	mem.spec = desired
	if mem.firstSeen.IsZero() {
		mem.firstSeen = now
	}
	mem.grace = gracePeriod(pod)
	st := &d.status
	*st = PodStatus{
		Namespace: pod.Namespace,
		Name:      pod.Name,
		Workload:  desired.workload,
		Node:      pod.Spec.NodeName,
		Revision:  desired.revision,
	}
	if observed != nil {
		if observed.IP.IsValid() {
			st.IP = observed.IP.String()
		}
		// A container of another template: the pod was edited (a bare
		// Pod, a StatefulSet's pod); replace it as a whole.
		for _, c := range observed.Containers {
			if c.TemplateHash != "" && c.TemplateHash != desired.templateHash {
				d.actions = append(d.actions, podAction{kind: actStopPod, reason: "its template changed"})
				st.Phase, st.Reason = PhasePending, ReasonTerminating
				return d
			}
		}
		if len(observed.Containers) > 0 && mem.volumesRevision != desired.revision && hasFileVolumes(pod) {
			d.actions = append(d.actions, podAction{kind: actSyncVolumes})
		}
	}
	policy := pod.Spec.RestartPolicy

	// Init containers run one at a time, in order, before any app
	// container; once an app container exists they are done (a restarted
	// agent does not run them again).
	appStarted := false
	if observed != nil {
		for _, c := range pod.Spec.Containers {
			if _, ok := observed.Container(c.Name); ok {
				appStarted = true
			}
		}
	}
	initDone := true
	if !appStarted {
		for i := range pod.Spec.InitContainers {
			c := &pod.Spec.InitContainers[i]
			cs, obs := observe(observed, c.Name)
			cm := mem.container(c.Name)
			s := ContainerStatus{Name: c.Name, Image: c.Image, Init: true}
			if obs {
				s.Restarts = cs.Attempt
				s.LastTermination = cm.lastTermination
			}
			done := false
			switch {
			case !obs || cs.State == apply.StateCreated:
				s.State, s.Reason = StateWaiting, ReasonPodInitializing
				startOrWait(&d, &s, cm, c.Name, now)
			case cs.State == apply.StateRunning, cs.State == apply.StateUnknown:
				s.State, s.PID, s.StartedAt = StateRunning, cs.PID, cs.CreatedAt
			case cs.ExitCode == 0 && !cs.OOMKilled:
				terminated(&s, cs)
				done = true
			default:
				terminated(&s, cs)
				// Init containers are retried unless the pod never
				// restarts anything.
				if policy == corev1.RestartPolicyNever {
					st.Containers = append(st.Containers, s)
					st.Phase, st.Reason = PhaseFailed, "Init:"+s.Reason
					initDone = false
					goto rest
				}
				crashBackoff(&d, &s, cs, cm, c.Name, b, now)
			}
			st.Containers = append(st.Containers, s)
			if !done {
				initDone = false
				if st.Reason == "" {
					st.Phase = PhasePending
					if s.State == StateWaiting && s.Reason != ReasonPodInitializing {
						st.Reason = "Init:" + s.Reason
					} else {
						st.Reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
					}
				}
				// The init containers after this one are waiting.
				for _, later := range pod.Spec.InitContainers[i+1:] {
					st.Containers = append(st.Containers, ContainerStatus{Name: later.Name, Image: later.Image, Init: true, State: StateWaiting, Reason: ReasonPodInitializing})
				}
				break
			}
		}
	} else {
		for _, c := range pod.Spec.InitContainers {
			s := ContainerStatus{Name: c.Name, Image: c.Image, Init: true, State: StateTerminated, Reason: ReasonCompleted}
			if cs, ok := observe(observed, c.Name); ok {
				terminated(&s, cs)
				s.Restarts = cs.Attempt
			}
			st.Containers = append(st.Containers, s)
		}
	}
rest:
	var (
		neverRan, running, willRestart, failed int
		allReady                               = true
	)
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cm := mem.container(c.Name)
		cs, obs := observe(observed, c.Name)
		s := ContainerStatus{Name: c.Name, Image: c.Image}
		if obs {
			s.Restarts = cs.Attempt
			s.LastTermination = cm.lastTermination
		}
		switch {
		case !initDone:
			s.State, s.Reason = StateWaiting, ReasonPodInitializing
			neverRan++
		case !obs || cs.State == apply.StateCreated:
			s.State, s.Reason = StateWaiting, ReasonContainerCreating
			startOrWait(&d, &s, cm, c.Name, now)
			if !obs {
				neverRan++
			} else {
				willRestart++
			}
		case cs.State == apply.StateRunning, cs.State == apply.StateUnknown:
			running++
			s.State, s.PID, s.StartedAt = StateRunning, cs.PID, cs.CreatedAt
			inst := instanceID(cs)
			// Until its probes run, a container with a startup probe has
			// not started, and one with a readiness probe is not ready.
			s.Started = c.StartupProbe == nil
			s.Ready = s.Started && c.ReadinessProbe == nil
			if probes != nil {
				if started, ready, known := probes.State(key, c.Name, inst); known {
					s.Started, s.Ready = started, ready
				}
			}
			if cm.killInstance == inst {
				d.actions = append(d.actions, podAction{kind: actKill, container: c.Name, reason: cm.killReason})
				s.Ready = false
			}
		default:
			terminated(&s, cs)
			if restarts(policy, cs) {
				willRestart++
				crashBackoff(&d, &s, cs, cm, c.Name, b, now)
			} else if s.ExitCode != 0 || s.Reason == ReasonOOMKilled {
				failed++
			}
		}
		if !s.Ready {
			allReady = false
		}
		st.Containers = append(st.Containers, s)
	}
	if st.Phase == PhaseFailed {
		return d
	}
	n := len(pod.Spec.Containers)
	switch {
	case !initDone || neverRan > 0:
		st.Phase = PhasePending
	case running == 0 && willRestart == 0 && failed > 0:
		st.Phase = PhaseFailed
	case running == 0 && willRestart == 0:
		st.Phase = PhaseSucceeded
	default:
		st.Phase = PhaseRunning
	}
	st.Ready = st.Phase == PhaseRunning && allReady && n > 0
	if st.Reason == "" {
		st.Reason, st.Message = podReason(st)
	}
	st.StartedAt = mem.firstSeen
	for _, c := range st.Containers {
		if !c.StartedAt.IsZero() && c.StartedAt.Before(st.StartedAt) {
			st.StartedAt = c.StartedAt
		}
	}
	return d
}

func observe(observed *apply.PodStatus, name string) (apply.ContainerStatus, bool) {
	if observed == nil {
		return apply.ContainerStatus{}, false
	}
	return observed.Container(name)
}

// startOrWait asks for the container to be started unless a start
// failure's back-off runs, and shows that failure in s.
func startOrWait(d *decision, s *ContainerStatus, cm *containerMemory, name string, now time.Time) {
	if cm.startFailures > 0 {
		s.Reason, s.Message = cm.startReason, cm.startMessage
		if now.Before(cm.startRetry) {
			if cm.startShown && cm.startReason == ReasonErrImagePull {
				s.Reason = ReasonImagePullBackOff
				s.Message = "Back-off pulling image " + strconv.Quote(s.Image) + ": " + cm.startMessage
			}
			cm.startShown = true
			s.NextStart = cm.startRetry
			d.wakeAt(cm.startRetry)
			return
		}
	}
	d.actions = append(d.actions, podAction{kind: actStart, container: name})
}

// crashBackoff restarts an exited container once its back-off is over.
func crashBackoff(d *decision, s *ContainerStatus, cs apply.ContainerStatus, cm *containerMemory, name string, b Backoff, now time.Time) {
	inst := instanceID(cs)
	if cm.exitSeen != inst {
		cm.exitSeen = inst
		ran := cs.ExitedAt.Sub(cs.CreatedAt)
		if cm.crashes > 0 && b.Reset > 0 && ran >= b.Reset {
			cm.crashes = 0
		}
		cm.crashes++
		exited := cs.ExitedAt
		if exited.IsZero() {
			exited = now
		}
		cm.nextStart = exited.Add(b.delay(cm.crashes))
		cm.lastTermination = &Termination{Reason: s.Reason, ExitCode: s.ExitCode, FinishedAt: s.FinishedAt}
	}
	if now.Before(cm.nextStart) {
		s.State = StateWaiting
		s.Reason = ReasonCrashLoopBackOff
		s.Message = fmt.Sprintf("back-off %s restarting failed container=%s", b.delay(cm.crashes), name)
		s.NextStart = cm.nextStart
		s.LastTermination = cm.lastTermination
		d.wakeAt(cm.nextStart)
		return
	}
	d.actions = append(d.actions, podAction{kind: actStart, container: name})
}

// restarts reports whether policy restarts a container that ended as cs.
func restarts(policy corev1.RestartPolicy, cs apply.ContainerStatus) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return cs.ExitCode != 0 || cs.OOMKilled
	}
	return true
}

func terminated(s *ContainerStatus, cs apply.ContainerStatus) {
	s.State = StateTerminated
	s.ExitCode = int(cs.ExitCode)
	s.StartedAt = cs.CreatedAt
	s.FinishedAt = cs.ExitedAt
	switch {
	case cs.OOMKilled:
		s.Reason = ReasonOOMKilled
	case cs.ExitCode == 0:
		s.Reason = ReasonCompleted
	default:
		s.Reason = ReasonError
	}
}

// podReason is the STATUS kubectl would print when it differs from the
// phase: the first container's waiting reason, else a terminated one.
func podReason(st *PodStatus) (string, string) {
	if st.Phase == PhaseSucceeded {
		return ReasonCompleted, ""
	}
	for _, c := range st.Containers {
		if !c.Init && c.State == StateWaiting && c.Reason != "" {
			return c.Reason, c.Message
		}
	}
	for _, c := range st.Containers {
		if !c.Init && c.State == StateTerminated && c.Reason != "" {
			return c.Reason, c.Message
		}
	}
	return "", ""
}

// terminatingStatus is the status of a pod being removed.
func terminatingStatus(observed *apply.PodStatus, mem *podMemory) PodStatus {
	st := PodStatus{Phase: PhaseTerminating, Reason: ReasonTerminating}
	if mem.spec != nil {
		st.Namespace, st.Name = mem.spec.pod.Namespace, mem.spec.pod.Name
		st.Workload, st.Node, st.Revision = mem.spec.workload, mem.spec.pod.Spec.NodeName, mem.spec.revision
	}
	if observed != nil {
		st.Namespace, st.Name = observed.Namespace, observed.Name
		if observed.IP.IsValid() {
			st.IP = observed.IP.String()
		}
		for _, c := range observed.Containers {
			s := ContainerStatus{Name: c.Name, Image: c.Image, Restarts: c.Attempt}
			if c.State == apply.StateRunning {
				s.State, s.PID, s.StartedAt = StateRunning, c.PID, c.CreatedAt
			} else {
				terminated(&s, c)
			}
			st.Containers = append(st.Containers, s)
		}
	}
	return st
}

// hasFileVolumes reports whether the pod has configMap or secret volumes,
// whose files a new revision may change.
func hasFileVolumes(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil || v.Secret != nil || v.Projected != nil {
			return true
		}
	}
	return false
}

// gracePeriod is the pod's terminationGracePeriodSeconds (default 30 s).
func gracePeriod(pod *corev1.Pod) time.Duration {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil && *g >= 0 {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}
