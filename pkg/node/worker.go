package node

import (
	"context"
	"errors"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gitorch/gitorch/pkg/apply"
)

// Runtime is what the agent needs of the node's container runtime;
// *apply.Containerd implements it.
type Runtime interface {
	CreateSandbox(ctx context.Context, pod apply.PodSpec) (netip.Addr, error)
	StartContainer(ctx context.Context, pod apply.PodSpec, container string) (apply.ContainerStatus, error)
	StopContainer(ctx context.Context, namespace, pod, container string, grace time.Duration) error
	StopPod(ctx context.Context, namespace, name string, grace time.Duration) error
	SyncVolumes(ctx context.Context, pod apply.PodSpec) error
	// Pod is what exists of one pod; an error wrapping apply.ErrNotFound
	// when nothing does.
	Pod(ctx context.Context, namespace, name string) (apply.PodStatus, error)
	ListPods(ctx context.Context) ([]apply.PodStatus, error)
	Exec(ctx context.Context, namespace, pod, container string, cmd []string, timeout time.Duration) (apply.ExecResult, error)
}

// maxPassActions bounds how many rounds of actions one sync of a pod
// takes before it waits for the next signal: enough to stop a pod and
// start it again, never a busy loop.
const maxPassActions = 4

// podWorker owns one pod: it alone acts on it, so that actions on a pod
// never interleave, while different pods proceed in parallel (a pod
// stopping for its 30-second grace period holds up no other).
type podWorker struct {
	a   *Agent
	key string
	ns  string
	pod string
	// poke asks for a sync; buffered, so pokes coalesce.
	poke chan struct{}
	// kills carries liveness and startup probe failures to the worker.
	kills chan killRequest
	mem   *podMemory
	done  chan struct{}
	wake  *time.Timer
}

type killRequest struct {
	container, instance, reason string
}

func (w *podWorker) nudge() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// run syncs the pod whenever poked until ctx ends or the pod is gone.
func (w *podWorker) run(ctx context.Context) {
	defer close(w.done)
	defer func() {
		if w.wake != nil {
			w.wake.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-w.kills:
			cm := w.mem.container(k.container)
			cm.killInstance, cm.killReason = k.instance, k.reason
		case <-w.poke:
		}
		if gone := w.sync(ctx); gone {
			return
		}
	}
}

// sync converges the pod toward what the agent wants of it and reports
// whether the pod is gone for good (not wanted, nothing left).
func (w *podWorker) sync(ctx context.Context) (gone bool) {
	a := w.a
	desired, known := a.desiredPod(w.key)
	if !known {
		// No revision loaded yet: touch nothing, adopted pods included.
		return false
	}
	for pass := 0; ; pass++ {
		observed, err := a.cfg.Runtime.Pod(ctx, w.ns, w.pod)
		var obs *apply.PodStatus
		switch {
		case err == nil:
			obs = &observed
		case errors.Is(err, apply.ErrNotFound):
		default:
			if ctx.Err() == nil {
				a.log.Warn("observe pod", "pod", w.ns+"/"+w.pod, "err", err)
				w.wakeAt(a.cfg.Now().Add(time.Second))
			}
			return false
		}
		if desired == nil && obs == nil {
			a.setPodStatus(w.key, nil)
			a.prober.Forget(w.key, nil)
			return true
		}
		d := decide(desired, obs, w.mem, a.prober, a.cfg.Backoff, a.cfg.Now())
		if obs != nil && desired != nil {
			a.syncProbes(ctx, desired, obs)
		}
		if len(d.actions) == 0 || pass >= maxPassActions {
			a.setPodStatus(w.key, &d.status)
			if !d.wake.IsZero() {
				w.wakeAt(d.wake)
			}
			return false
		}
		if pass == 0 {
			a.setPodStatus(w.key, &d.status)
		}
		for _, act := range d.actions {
			if ctx.Err() != nil {
				return false
			}
			w.act(ctx, desired, obs, act)
		}
	}
}

// wakeAt pokes the worker at t (the end of a back-off).
func (w *podWorker) wakeAt(t time.Time) {
	d := max(t.Sub(w.a.cfg.Now()), 0)
	if w.wake != nil {
		w.wake.Stop()
	}
	w.wake = time.AfterFunc(d+10*time.Millisecond, w.nudge)
}

// act carries out one action. Failures are remembered for the status
// and retried with back-off; they never stop the worker.
func (w *podWorker) act(ctx context.Context, desired *desiredPod, obs *apply.PodStatus, act podAction) {
	a := w.a
	log := a.log.With("pod", w.ns+"/"+w.pod)
	switch act.kind {
	case actStopPod:
		log.Info("stopping pod", "reason", act.reason)
		grace := w.mem.grace
		if w.mem.spec == nil {
			grace = 30 * time.Second
		}
		if obs != nil {
			grace = w.preStop(ctx, w.mem.spec, obs, "", grace)
		}
		if err := a.cfg.Runtime.StopPod(ctx, w.ns, w.pod, grace); err != nil {
			log.Warn("stop pod", "err", err)
			return
		}
		a.prober.Forget(w.key, nil)
		w.mem = newPodMemory()
	case actSyncVolumes:
		spec, _, err := w.podSpec(ctx, desired, obs)
		if err == nil {
			err = a.cfg.Runtime.SyncVolumes(ctx, spec)
		}
		if err != nil {
			log.Warn("update volumes", "err", err)
			return
		}
		w.mem.volumesRevision = desired.revision
	case actKill:
		log.Info("killing container", "container", act.container, "reason", act.reason)
		grace := w.preStop(ctx, desired, obs, act.container, w.mem.grace)
		if err := a.cfg.Runtime.StopContainer(ctx, w.ns, w.pod, act.container, grace); err != nil {
			log.Warn("kill container", "container", act.container, "err", err)
			return
		}
		cm := w.mem.container(act.container)
		cm.killInstance = ""
	case actStart:
		cm := w.mem.container(act.container)
		spec, reason, err := w.podSpec(ctx, desired, obs)
		if err == nil {
			_, err = a.cfg.Runtime.StartContainer(ctx, spec, act.container)
			switch {
			case err == nil:
			case errors.Is(err, apply.ErrImagePull):
				reason = ReasonErrImagePull
			case errors.Is(err, apply.ErrImageNeverPull):
				reason = ReasonErrImageNeverPull
			default:
				reason = ReasonCreateContainerErr
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("start container", "container", act.container, "reason", reason, "err", err)
			cm.startFailures++
			cm.startReason, cm.startMessage, cm.startShown = reason, err.Error(), false
			cm.startRetry = a.cfg.Now().Add(a.cfg.Backoff.delay(cm.startFailures))
			return
		}
		cm.startFailures, cm.startReason, cm.startMessage = 0, "", ""
		w.mem.volumesRevision = desired.revision
	}
}

// podSpec makes the pod's sandbox (for its IP) and resolves the pod into
// what the runtime runs. The reason is CreateContainerConfigError when
// the pod's references do not resolve.
func (w *podWorker) podSpec(ctx context.Context, desired *desiredPod, obs *apply.PodStatus) (apply.PodSpec, string, error) {
	in := desired.inputs
	if obs != nil && obs.IP.IsValid() {
		in.PodIP = obs.IP
	}
	spec, err := apply.PodSpecFor(desired.pod, in)
	if err != nil {
		return spec, ReasonCreateContainerConf, err
	}
	ip, err := w.a.cfg.Runtime.CreateSandbox(ctx, spec)
	if err != nil {
		return spec, ReasonCreateContainerErr, err
	}
	if ip.IsValid() && ip != in.PodIP {
		in.PodIP = ip
		if spec, err = apply.PodSpecFor(desired.pod, in); err != nil {
			return spec, ReasonCreateContainerConf, err
		}
	}
	return spec, "", nil
}

// preStop runs the preStop hooks of the pod's running containers (only
// of container when it is not ""), in parallel, within grace, and returns
// what is left of grace for the stop itself.
func (w *podWorker) preStop(ctx context.Context, desired *desiredPod, obs *apply.PodStatus, container string, grace time.Duration) time.Duration {
	if desired == nil || obs == nil {
		return grace
	}
	start := w.a.cfg.Now()
	done := make(chan struct{})
	n := 0
	for i := range desired.pod.Spec.Containers {
		c := &desired.pod.Spec.Containers[i]
		if container != "" && c.Name != container || c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
			continue
		}
		if cs, ok := obs.Container(c.Name); !ok || cs.State != apply.StateRunning {
			continue
		}
		n++
		go func() {
			defer func() { done <- struct{}{} }()
			w.runHook(ctx, desired, obs, c, c.Lifecycle.PreStop, grace)
		}()
	}
	for range n {
		<-done
	}
	return max(grace-w.a.cfg.Now().Sub(start), 2*time.Second)
}

// runHook runs one lifecycle handler: exec in the container, or an HTTP
// GET to the pod.
func (w *podWorker) runHook(ctx context.Context, desired *desiredPod, obs *apply.PodStatus, c *corev1.Container, h *corev1.LifecycleHandler, timeout time.Duration) {
	log := w.a.log.With("pod", w.ns+"/"+w.pod, "container", c.Name)
	switch {
	case h.Exec != nil:
		res, err := w.a.cfg.Runtime.Exec(ctx, w.ns, w.pod, c.Name, h.Exec.Command, timeout)
		if err != nil {
			log.Warn("preStop hook", "err", err)
		} else if res.ExitCode != 0 {
			log.Warn("preStop hook failed", "exitCode", res.ExitCode, "output", string(res.Output))
		}
	case h.HTTPGet != nil:
		if err := w.a.hookHTTP(ctx, obs, c, h.HTTPGet, timeout); err != nil {
			log.Warn("preStop hook", "err", err)
		}
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}
