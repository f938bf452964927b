package plan

import (
	"fmt"
	"maps"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gitorch/gitorch/pkg/backoff"
)

// CrashBackoff is kubelet's back-off for restarting crashed containers
// and retrying failed image pulls: 10 s, 20 s, 40 s … capped at 300 s,
// reset after 10 minutes of running.
var CrashBackoff = backoff.Backoff{Initial: 10 * time.Second, Max: 300 * time.Second, Reset: 10 * time.Minute}

// ContainerMemory is what a node remembers of a container between
// decisions: what the observed state alone does not tell. It is lost
// when the agent restarts, which only resets back-offs.
type ContainerMemory struct {
	// Crash back-off: the exited instance it was computed for, how many
	// back-offs in a row, and when the container may start again.
	ExitSeen  string
	Crashes   int
	NextStart time.Time
	// Start failures (image pull, container creation): the reason,
	// message, failures in a row, when to try again, and whether the
	// failure was shown yet (ErrImagePull is shown once, then
	// ImagePullBackOff).
	StartReason   string
	StartMessage  string
	StartFailures int
	StartRetry    time.Time
	StartShown    bool
	// A kill asked by a failed liveness or startup probe, for the
	// instance it names.
	KillInstance string
	KillReason   string
	// LastTermination is how the previous instance ended.
	LastTermination *Termination
}

// PodMemory is what a node remembers of a pod between decisions. It is a
// value: DecidePod and the methods below return a new one and leave the
// one given as it was.
type PodMemory struct {
	Containers map[string]ContainerMemory
	// VolumesRevision is the revision whose volume contents were last
	// written.
	VolumesRevision string
	// Last is the last desired pod, for status and stopping after the pod
	// left the manifests.
	Last *DesiredPod
	// FirstSeen is when the node first worked on the pod: its age while
	// no container of it has started.
	FirstSeen time.Time
}

func (m PodMemory) clone() PodMemory {
	m.Containers = maps.Clone(m.Containers)
	if m.Containers == nil {
		m.Containers = map[string]ContainerMemory{}
	}
	return m
}

// Grace is the termination grace period of the pod remembered (the
// manifests' default of 30 s when none is known).
func (m PodMemory) Grace() time.Duration {
	if m.Last == nil {
		return 30 * time.Second
	}
	return GracePeriod(m.Last.Pod)
}

func (m PodMemory) update(container string, f func(*ContainerMemory)) PodMemory {
	m = m.clone()
	c := m.Containers[container]
	f(&c)
	m.Containers[container] = c
	return m
}

// StartFailed records a failed start of container (reason and message as
// the status shows them): it is retried after the back-off.
func (m PodMemory) StartFailed(container, reason, message string, b backoff.Backoff, now time.Time) PodMemory {
	return m.update(container, func(c *ContainerMemory) {
		c.StartFailures++
		c.StartReason, c.StartMessage, c.StartShown = reason, message, false
		c.StartRetry = now.Add(b.Delay(c.StartFailures))
	})
}

// Started records a successful start of container with the inputs of
// revision.
func (m PodMemory) Started(container, revision string) PodMemory {
	m = m.update(container, func(c *ContainerMemory) {
		c.StartFailures, c.StartReason, c.StartMessage = 0, "", ""
	})
	m.VolumesRevision = revision
	return m
}

// KillAsked records that a probe asks to kill the instance of container.
func (m PodMemory) KillAsked(container, instance, reason string) PodMemory {
	return m.update(container, func(c *ContainerMemory) { c.KillInstance, c.KillReason = instance, reason })
}

// Killed records that the asked kill of container was carried out.
func (m PodMemory) Killed(container string) PodMemory {
	return m.update(container, func(c *ContainerMemory) { c.KillInstance, c.KillReason = "", "" })
}

// VolumesSynced records that the pod's volume files hold revision's.
func (m PodMemory) VolumesSynced(revision string) PodMemory {
	m.VolumesRevision = revision
	return m
}

// ProbeView tells DecidePod what the probes of a container instance say.
type ProbeView interface {
	// State is whether the instance has started (its startup probe
	// succeeded, or it has none) and is ready (its readiness probe
	// succeeded, or it has none and has started); known is false when
	// none of its probes runs yet.
	State(pod Key, container, instance string) (started, ready, known bool)
}

// InstanceID names one run of a container: a restarted container is a new
// instance, so probe results and kills of the old one do not carry over.
func InstanceID(c ObservedContainer) string {
	return c.ID + "/" + strconv.Itoa(c.Attempt) + "/" + strconv.FormatInt(c.CreatedAt.UnixNano(), 36)
}

// PodActionKind is what a PodAction does.
type PodActionKind int

// The actions DecidePod asks for.
const (
	// ActStart starts (or replaces an exited instance of) a container.
	ActStart PodActionKind = iota
	// ActKill stops a running container (probe failure); it is restarted
	// by policy afterwards.
	ActKill
	// ActStopPod stops and removes the whole pod.
	ActStopPod
	// ActSyncVolumes rewrites configMap and secret volume files.
	ActSyncVolumes
)

// PodAction is one thing to do to a pod.
type PodAction struct {
	Kind      PodActionKind
	Container string
	Reason    string
}

func (a PodAction) String() string {
	switch a.Kind {
	case ActStart:
		return "start " + a.Container
	case ActKill:
		return "kill " + a.Container + ": " + a.Reason
	case ActStopPod:
		return "stop pod: " + a.Reason
	default:
		return "sync volumes"
	}
}

// PodDecision is what DecidePod returns: what to do now, when to look
// again, the pod's status as it stands, and the memory to keep.
type PodDecision struct {
	Actions []PodAction
	// Wake is when the pod should be looked at again (a back-off ends);
	// zero when only an event can change anything.
	Wake   time.Time
	Status PodStatus
	Memory PodMemory
}

func (d *PodDecision) wakeAt(t time.Time) {
	if d.Wake.IsZero() || t.Before(d.Wake) {
		d.Wake = t
	}
}

func (d *PodDecision) act(kind PodActionKind, container, reason string) {
	d.Actions = append(d.Actions, PodAction{Kind: kind, Container: container, Reason: reason})
}

// DecidePod computes what to do with one pod, as kubelet's
// computePodActions does: desired is nil when the pod no longer belongs
// to the node, observed is nil when nothing of it exists, mem is what was
// remembered of it, b the back-off of crashed containers and failed
// starts. It does no I/O and leaves mem as it was.
func DecidePod(desired *DesiredPod, observed *ObservedPod, mem PodMemory, probes ProbeView, b backoff.Backoff, now time.Time) PodDecision {
	d := PodDecision{Memory: mem.clone()}
	if desired == nil {
		d.Status = terminatingStatus(observed, d.Memory)
		if observed != nil {
			d.act(ActStopPod, "", "no longer in the manifests for this node")
		}
		return d
	}
	m := &d.Memory
	m.Last = desired
	if m.FirstSeen.IsZero() {
		m.FirstSeen = now
	}
	pod := desired.Pod
	d.Status = PodStatus{
		Namespace:    pod.Namespace,
		Name:         pod.Name,
		Workload:     desired.Workload,
		Node:         pod.Spec.NodeName,
		Revision:     desired.Revision,
		TemplateHash: desired.TemplateHash,
	}
	if observed != nil && observed.IP.IsValid() {
		d.Status.IP = observed.IP.String()
	}
	if desired.Hold != "" && (observed == nil || len(observed.Containers) == 0) {
		d.Status.Phase, d.Status.Reason, d.Status.Message = PhasePending, ReasonHeld, desired.Hold
		for _, c := range pod.Spec.Containers {
			d.Status.Containers = append(d.Status.Containers, ContainerStatus{Name: c.Name, Image: c.Image, State: StateWaiting, Reason: ReasonHeld, Message: desired.Hold})
		}
		return d
	}
	if templateChanged(desired, observed) {
		// A container of another template: the pod was edited (a bare
		// Pod, a StatefulSet's pod); replace it as a whole.
		d.act(ActStopPod, "", "its template changed")
		d.Status.Phase, d.Status.Reason = PhasePending, ReasonTerminating
		return d
	}
	if observed != nil && len(observed.Containers) > 0 && m.VolumesRevision != desired.Revision && hasFileVolumes(pod) {
		d.act(ActSyncVolumes, "", "")
	}
	c := podCtx{d: &d, pod: pod, observed: observed, probes: probes, b: b, now: now}
	initDone, initFailed := c.initContainers()
	if initFailed {
		// The app containers never start; the pod failed on its init
		// container.
		phase, reason := d.Status.Phase, d.Status.Reason
		c.appContainers(false)
		d.Status.Phase, d.Status.Reason, d.Status.Ready = phase, reason, false
		return d
	}
	c.appContainers(initDone)
	return d
}

// podCtx carries one DecidePod call through its steps.
type podCtx struct {
	d        *PodDecision
	pod      *corev1.Pod
	observed *ObservedPod
	probes   ProbeView
	b        backoff.Backoff
	now      time.Time
}

func (c *podCtx) observe(name string) (ObservedContainer, bool) {
	if c.observed == nil {
		return ObservedContainer{}, false
	}
	return c.observed.Container(name)
}

func (c *podCtx) status() *PodStatus { return &c.d.Status }

// container returns the memory of a container, to be written back with
// remember.
func (c *podCtx) container(name string) ContainerMemory { return c.d.Memory.Containers[name] }

func (c *podCtx) remember(name string, cm ContainerMemory) { c.d.Memory.Containers[name] = cm }

func templateChanged(desired *DesiredPod, observed *ObservedPod) bool {
	if observed == nil {
		return false
	}
	for _, c := range observed.Containers {
		if c.TemplateHash != "" && c.TemplateHash != desired.TemplateHash {
			return true
		}
	}
	return false
}

// initContainers decides the init containers: they run one at a time, in
// order, before any app container; once an app container exists they are
// done (a restarted agent does not run them again). It reports whether
// they are all done, and whether the pod failed for good on one of them.
func (c *podCtx) initContainers() (done, failed bool) {
	st := c.status()
	if c.appStarted() {
		for _, ic := range c.pod.Spec.InitContainers {
			s := ContainerStatus{Name: ic.Name, Image: ic.Image, Init: true, State: StateTerminated, Reason: ReasonCompleted}
			if cs, ok := c.observe(ic.Name); ok {
				terminated(&s, cs)
				s.Restarts = cs.Attempt
			}
			st.Containers = append(st.Containers, s)
		}
		return true, false
	}
	inits := c.pod.Spec.InitContainers
	for i := range inits {
		ic := &inits[i]
		s, ok, failed := c.initContainer(ic)
		st.Containers = append(st.Containers, s)
		if failed {
			st.Phase, st.Reason = PhaseFailed, "Init:"+s.Reason
			return false, true
		}
		if ok {
			continue
		}
		st.Phase = PhasePending
		if s.State == StateWaiting && s.Reason != ReasonPodInitializing {
			st.Reason = "Init:" + s.Reason
		} else {
			st.Reason = fmt.Sprintf("Init:%d/%d", i, len(inits))
		}
		// The init containers after this one are waiting.
		for _, later := range inits[i+1:] {
			st.Containers = append(st.Containers, ContainerStatus{Name: later.Name, Image: later.Image, Init: true, State: StateWaiting, Reason: ReasonPodInitializing})
		}
		return false, false
	}
	return true, false
}

// appStarted reports whether any app container of the pod exists.
func (c *podCtx) appStarted() bool {
	for _, ac := range c.pod.Spec.Containers {
		if _, ok := c.observe(ac.Name); ok {
			return true
		}
	}
	return false
}

// initContainer decides one init container: ok when it completed, failed
// when it failed and the pod restarts nothing.
func (c *podCtx) initContainer(ic *corev1.Container) (s ContainerStatus, ok, failed bool) {
	cs, obs := c.observe(ic.Name)
	cm := c.container(ic.Name)
	defer func() { c.remember(ic.Name, cm) }()
	s = ContainerStatus{Name: ic.Name, Image: ic.Image, Init: true}
	if obs {
		s.Restarts = cs.Attempt
		s.LastTermination = cm.LastTermination
	}
	switch {
	case !obs || cs.State == ContainerCreated:
		s.State, s.Reason = StateWaiting, ReasonPodInitializing
		c.startOrWait(&s, &cm, ic.Name)
	case cs.State == ContainerRunning, cs.State == ContainerUnknown:
		s.State, s.PID, s.StartedAt = StateRunning, cs.PID, cs.CreatedAt
	case cs.ExitCode == 0 && !cs.OOMKilled:
		terminated(&s, cs)
		return s, true, false
	default:
		terminated(&s, cs)
		// Init containers are retried unless the pod never restarts
		// anything.
		if c.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			return s, false, true
		}
		c.crashBackoff(&s, &cm, cs, ic.Name)
	}
	return s, false, false
}

// appContainers decides the app containers and the pod's phase.
func (c *podCtx) appContainers(initDone bool) {
	st := c.status()
	var count struct{ neverRan, running, willRestart, failed int }
	allReady := true
	for i := range c.pod.Spec.Containers {
		ac := &c.pod.Spec.Containers[i]
		cm := c.container(ac.Name)
		cs, obs := c.observe(ac.Name)
		s := ContainerStatus{Name: ac.Name, Image: ac.Image}
		if obs {
			s.Restarts = cs.Attempt
			s.LastTermination = cm.LastTermination
		}
		switch {
		case !initDone:
			s.State, s.Reason = StateWaiting, ReasonPodInitializing
			count.neverRan++
		case !obs || cs.State == ContainerCreated:
			s.State, s.Reason = StateWaiting, ReasonContainerCreating
			c.startOrWait(&s, &cm, ac.Name)
			if !obs {
				count.neverRan++
			} else {
				count.willRestart++
			}
		case cs.State == ContainerRunning, cs.State == ContainerUnknown:
			count.running++
			c.runningContainer(&s, &cm, ac, cs)
		default:
			terminated(&s, cs)
			if restarts(c.pod.Spec.RestartPolicy, cs) {
				count.willRestart++
				c.crashBackoff(&s, &cm, cs, ac.Name)
			} else if s.ExitCode != 0 || s.Reason == ReasonOOMKilled {
				count.failed++
			}
		}
		c.remember(ac.Name, cm)
		if !s.Ready {
			allReady = false
		}
		st.Containers = append(st.Containers, s)
	}
	switch {
	case !initDone || count.neverRan > 0:
		st.Phase = PhasePending
	case count.running == 0 && count.willRestart == 0 && count.failed > 0:
		st.Phase = PhaseFailed
	case count.running == 0 && count.willRestart == 0:
		st.Phase = PhaseSucceeded
	default:
		st.Phase = PhaseRunning
	}
	st.Ready = st.Phase == PhaseRunning && allReady && len(c.pod.Spec.Containers) > 0
	if st.Reason == "" {
		st.Reason, st.Message = podReason(st)
	}
	st.StartedAt = c.d.Memory.FirstSeen
	for _, cs := range st.Containers {
		if !cs.StartedAt.IsZero() && cs.StartedAt.Before(st.StartedAt) {
			st.StartedAt = cs.StartedAt
		}
	}
}

// runningContainer fills in a running container's readiness from its
// probes, and kills it when a probe asked for that.
func (c *podCtx) runningContainer(s *ContainerStatus, cm *ContainerMemory, ac *corev1.Container, cs ObservedContainer) {
	s.State, s.PID, s.StartedAt = StateRunning, cs.PID, cs.CreatedAt
	inst := InstanceID(cs)
	// Until its probes run, a container with a startup probe has not
	// started, and one with a readiness probe is not ready.
	s.Started = ac.StartupProbe == nil
	s.Ready = s.Started && ac.ReadinessProbe == nil
	if c.probes != nil {
		if started, ready, known := c.probes.State(c.d.Status.Key(), ac.Name, inst); known {
			s.Started, s.Ready = started, ready
		}
	}
	if cm.KillInstance == inst {
		c.d.act(ActKill, ac.Name, cm.KillReason)
		s.Ready = false
	}
}

// startOrWait asks for the container to be started unless a start
// failure's back-off runs, and shows that failure in s.
func (c *podCtx) startOrWait(s *ContainerStatus, cm *ContainerMemory, name string) {
	if cm.StartFailures > 0 {
		s.Reason, s.Message = cm.StartReason, cm.StartMessage
		if c.now.Before(cm.StartRetry) {
			if cm.StartShown && cm.StartReason == ReasonErrImagePull {
				s.Reason = ReasonImagePullBackOff
				s.Message = "Back-off pulling image " + strconv.Quote(s.Image) + ": " + cm.StartMessage
			}
			cm.StartShown = true
			s.NextStart = cm.StartRetry
			c.d.wakeAt(cm.StartRetry)
			return
		}
	}
	c.d.act(ActStart, name, "")
}

// crashBackoff restarts an exited container once its back-off is over.
func (c *podCtx) crashBackoff(s *ContainerStatus, cm *ContainerMemory, cs ObservedContainer, name string) {
	if inst := InstanceID(cs); cm.ExitSeen != inst {
		cm.ExitSeen = inst
		ran := cs.ExitedAt.Sub(cs.CreatedAt)
		if cm.Crashes > 0 && c.b.Reset > 0 && ran >= c.b.Reset {
			cm.Crashes = 0
		}
		cm.Crashes++
		exited := cs.ExitedAt
		if exited.IsZero() {
			exited = c.now
		}
		cm.NextStart = exited.Add(c.b.Delay(cm.Crashes))
		cm.LastTermination = &Termination{Reason: s.Reason, ExitCode: s.ExitCode, FinishedAt: s.FinishedAt}
	}
	if c.now.Before(cm.NextStart) {
		s.State = StateWaiting
		s.Reason = ReasonCrashLoopBackOff
		s.Message = fmt.Sprintf("back-off %s restarting failed container=%s", c.b.Delay(cm.Crashes), name)
		s.NextStart = cm.NextStart
		s.LastTermination = cm.LastTermination
		c.d.wakeAt(cm.NextStart)
		return
	}
	c.d.act(ActStart, name, "")
}

// restarts reports whether policy restarts a container that ended as cs.
func restarts(policy corev1.RestartPolicy, cs ObservedContainer) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return cs.ExitCode != 0 || cs.OOMKilled
	}
	return true
}

func terminated(s *ContainerStatus, cs ObservedContainer) {
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
	for _, state := range []string{StateWaiting, StateTerminated} {
		for _, c := range st.Containers {
			if !c.Init && c.State == state && c.Reason != "" {
				return c.Reason, c.Message
			}
		}
	}
	return "", ""
}

// terminatingStatus is the status of a pod being removed.
func terminatingStatus(observed *ObservedPod, mem PodMemory) PodStatus {
	st := PodStatus{Phase: PhaseTerminating, Reason: ReasonTerminating}
	if l := mem.Last; l != nil {
		st.Namespace, st.Name = l.Pod.Namespace, l.Pod.Name
		st.Workload, st.Node, st.Revision, st.TemplateHash = l.Workload, l.Pod.Spec.NodeName, l.Revision, l.TemplateHash
	}
	if observed == nil {
		return st
	}
	st.Namespace, st.Name = observed.Namespace, observed.Name
	if observed.IP.IsValid() {
		st.IP = observed.IP.String()
	}
	for _, c := range observed.Containers {
		s := ContainerStatus{Name: c.Name, Image: c.Image, Restarts: c.Attempt}
		if c.State == ContainerRunning {
			s.State, s.PID, s.StartedAt = StateRunning, c.PID, c.CreatedAt
		} else {
			terminated(&s, c)
		}
		st.Containers = append(st.Containers, s)
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

// GracePeriod is the pod's terminationGracePeriodSeconds, which the
// manifests' defaults set (30 s).
func GracePeriod(pod *corev1.Pod) time.Duration {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil && *g >= 0 {
		return time.Duration(*g) * time.Second
	}
	return 0
}
