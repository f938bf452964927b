package node

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/clock"
	"github.com/gitorch/gitorch/pkg/plan"
)

// maxPassActions bounds how many rounds of actions one sync of a pod
// takes before it waits for the next signal: enough to stop a pod and
// start it again, never a busy loop.
const maxPassActions = 4

// podWorker owns one pod: it alone acts on it, so that actions on a pod
// never interleave, while different pods proceed in parallel (a pod
// stopping for its 30-second grace period holds up no other).
type podWorker struct {
	a   *Agent
	key plan.Key
	// poke asks for a sync; buffered, so pokes coalesce.
	poke chan struct{}
	// kills carries liveness and startup probe failures to the worker.
	kills chan killRequest
	mem   plan.PodMemory
	done  chan struct{}
	wake  clock.Timer
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
			w.mem = w.mem.KillAsked(k.container, k.instance, k.reason)
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
		observed, err := a.cfg.Runtime.Pod(ctx, w.key.Namespace, w.key.Name)
		var obs *apply.PodStatus
		switch {
		case err == nil:
			obs = &observed
		case errors.Is(err, apply.ErrNotFound):
		default:
			if ctx.Err() == nil {
				a.log.Warn("observe pod", "pod", w.key.String(), "err", err)
				w.wakeAt(a.clock.Now().Add(time.Second))
			}
			return false
		}
		if desired == nil && obs == nil {
			a.setPodStatus(w.key, nil)
			a.prober.Forget(w.key, nil)
			return true
		}
		d := plan.DecidePod(desired, obs, w.mem, a.prober, a.cfg.Backoff, a.clock.Now())
		w.mem = d.Memory
		if obs != nil && desired != nil {
			a.syncProbes(ctx, desired, obs)
		}
		if len(d.Actions) == 0 || pass >= maxPassActions {
			a.setPodStatus(w.key, &d.Status)
			if !d.Wake.IsZero() {
				w.wakeAt(d.Wake)
			}
			return false
		}
		if pass == 0 {
			a.setPodStatus(w.key, &d.Status)
		}
		for _, act := range d.Actions {
			if ctx.Err() != nil {
				return false
			}
			w.act(ctx, desired, obs, act)
		}
	}
}

// wakeAt pokes the worker at t (the end of a back-off).
func (w *podWorker) wakeAt(t time.Time) {
	d := max(t.Sub(w.a.clock.Now()), 0)
	if w.wake != nil {
		w.wake.Stop()
	}
	w.wake = w.a.clock.AfterFunc(d+10*time.Millisecond, w.nudge)
}

// act carries out one action and records its outcome in the pod's
// memory. Failures are retried with back-off; they never stop the worker.
func (w *podWorker) act(ctx context.Context, desired *plan.DesiredPod, obs *apply.PodStatus, act plan.PodAction) {
	a := w.a
	ns, name := w.key.Namespace, w.key.Name
	log := a.log.With("pod", w.key.String())
	a.obs.podAction(w.key, act)
	switch act.Kind {
	case plan.ActStopPod:
		log.Info("stopping pod", "reason", act.Reason)
		grace := w.mem.Grace()
		if obs != nil {
			grace = w.preStop(ctx, w.mem.Last, obs, "", grace)
		}
		if err := a.cfg.Runtime.StopPod(ctx, ns, name, grace); err != nil {
			log.Warn("stop pod", "err", err)
			return
		}
		a.prober.Forget(w.key, nil)
		w.mem = plan.PodMemory{}
	case plan.ActSyncVolumes:
		spec, _, err := w.podSpec(ctx, desired, obs)
		if err == nil {
			err = a.cfg.Runtime.SyncVolumes(ctx, spec)
		}
		if err != nil {
			log.Warn("update volumes", "err", err)
			return
		}
		w.mem = w.mem.VolumesSynced(desired.Revision)
	case plan.ActKill:
		log.Info("killing container", "container", act.Container, "reason", act.Reason)
		grace := w.preStop(ctx, desired, obs, act.Container, w.mem.Grace())
		if err := a.cfg.Runtime.StopContainer(ctx, ns, name, act.Container, grace); err != nil {
			log.Warn("kill container", "container", act.Container, "err", err)
			return
		}
		w.mem = w.mem.Killed(act.Container)
	case plan.ActStart:
		spec, reason, err := w.podSpec(ctx, desired, obs)
		if err == nil {
			_, err = a.cfg.Runtime.StartContainer(ctx, spec, act.Container)
			reason = startFailureReason(err)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("start container", "container", act.Container, "reason", reason, "err", err)
			w.mem = w.mem.StartFailed(act.Container, reason, err.Error(), a.cfg.Backoff, a.clock.Now())
			return
		}
		w.mem = w.mem.Started(act.Container, desired.Revision)
	}
}

// startFailureReason is the waiting reason a failed StartContainer shows.
func startFailureReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, apply.ErrImagePull):
		return plan.ReasonErrImagePull
	case errors.Is(err, apply.ErrImageNeverPull):
		return plan.ReasonErrImageNeverPull
	}
	return plan.ReasonCreateContainerErr
}

// podSpec makes the pod's sandbox (for its IP) and resolves the pod into
// what the runtime runs. The reason is CreateContainerConfigError when
// the pod's references do not resolve.
func (w *podWorker) podSpec(ctx context.Context, desired *plan.DesiredPod, obs *apply.PodStatus) (apply.PodSpec, string, error) {
	in := desired.Inputs
	in.DNS = w.a.podDNS()
	if obs != nil && obs.IP.IsValid() {
		in.PodIP = obs.IP
	}
	spec, err := apply.PodSpecFor(desired.Pod, in)
	if err != nil {
		return spec, plan.ReasonCreateContainerConf, err
	}
	ip, err := w.a.cfg.Runtime.CreateSandbox(ctx, spec)
	if err != nil {
		return spec, plan.ReasonCreateContainerErr, err
	}
	if ip.IsValid() && ip != in.PodIP {
		in.PodIP = ip
		if spec, err = apply.PodSpecFor(desired.Pod, in); err != nil {
			return spec, plan.ReasonCreateContainerConf, err
		}
	}
	return spec, "", nil
}

// preStop runs the preStop hooks of the pod's running containers (only
// of container when it is not ""), in parallel, within grace, and returns
// what is left of grace for the stop itself.
func (w *podWorker) preStop(ctx context.Context, desired *plan.DesiredPod, obs *apply.PodStatus, container string, grace time.Duration) time.Duration {
	if desired == nil || obs == nil {
		return grace
	}
	start := w.a.clock.Now()
	done := make(chan struct{})
	n := 0
	for i := range desired.Pod.Spec.Containers {
		c := &desired.Pod.Spec.Containers[i]
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
	return max(grace-w.a.clock.Now().Sub(start), 2*time.Second)
}

// runHook runs one lifecycle handler: exec in the container, or an HTTP
// GET to the pod.
func (w *podWorker) runHook(ctx context.Context, desired *plan.DesiredPod, obs *apply.PodStatus, c *corev1.Container, h *corev1.LifecycleHandler, timeout time.Duration) {
	log := w.a.log.With("pod", w.key.String(), "container", c.Name)
	switch {
	case h.Exec != nil:
		res, err := w.a.cfg.Runtime.Exec(ctx, w.key.Namespace, w.key.Name, c.Name, h.Exec.Command, timeout)
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
		t := w.a.clock.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C():
		}
	}
}
