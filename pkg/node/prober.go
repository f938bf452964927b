package node

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gitorch/gitorch/pkg/clock"
	"github.com/gitorch/gitorch/pkg/plan"
	corev1 "k8s.io/api/core/v1"
)

type probeKind string

const (
	probeStartup   probeKind = "Startup"
	probeLiveness  probeKind = "Liveness"
	probeReadiness probeKind = "Readiness"
)

// Prober runs the liveness, readiness and startup probes of running
// container instances, each on its own goroutine at its period, and keeps
// what they say: whether an instance has started and is ready. A
// liveness or startup probe that fails its threshold asks, through
// onKill, for the instance to be killed; any change of started or ready
// is signalled through onChange. The reconcile loop calls Sync for every
// running instance and Forget for the rest.
type Prober struct {
	exec     execer
	log      *slog.Logger
	clock    clock.Clock
	onChange func(pod plan.Key)
	onKill   func(pod plan.Key, k killRequest)

	mu        sync.Mutex
	instances map[instanceKey]*probedInstance
	wg        sync.WaitGroup
}

type instanceKey struct {
	pod                 plan.Key
	container, instance string
}

// probedInstance is the probe state of one container instance.
type probedInstance struct {
	cancel  context.CancelFunc
	started bool
	ready   bool
	// probed: its readiness probe gave a result (or it has none).
	probed bool
}

// NewProber returns a prober that runs exec probes through ex, timed by
// clk (nil: the real clock); onChange and onKill must not block.
func NewProber(ex execer, log *slog.Logger, clk clock.Clock, onChange func(pod plan.Key), onKill func(pod plan.Key, k killRequest)) *Prober {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Prober{exec: ex, log: log, clock: clock.OrReal(clk), onChange: onChange, onKill: onKill, instances: map[instanceKey]*probedInstance{}}
}

// State says whether the instance has started (its startup probe passed,
// or it has none) and is ready (its readiness probe passed, or it has
// none and it has started). known is false when no probe of the instance
// runs (it has none, or Sync was not called for it yet).
func (p *Prober) State(podKey plan.Key, container, instance string) (started, ready, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	in, ok := p.instances[instanceKey{podKey, container, instance}]
	if !ok {
		return false, false, false
	}
	return in.started, in.ready && in.started, true
}

// Sync starts the probes of a running container instance unless they
// run; a container without probes needs none.
func (p *Prober) Sync(ctx context.Context, t ProbeTarget, c *corev1.Container) {
	if c.StartupProbe == nil && c.LivenessProbe == nil && c.ReadinessProbe == nil {
		return
	}
	key := instanceKey{t.podKey(), t.Container, t.Instance}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.instances[key]; ok {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	in := &probedInstance{cancel: cancel, started: c.StartupProbe == nil, ready: c.ReadinessProbe == nil, probed: c.ReadinessProbe == nil}
	p.instances[key] = in
	for kind, pr := range map[probeKind]*corev1.Probe{probeStartup: c.StartupProbe, probeLiveness: c.LivenessProbe, probeReadiness: c.ReadinessProbe} {
		if pr == nil {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.run(ctx, key, t, kind, pr)
		}()
	}
}

// ReadinessKnown says whether every instance of the pod whose probes run
// has had a result from its readiness probe (or has none): until then a
// pod's readiness says only that no probe passed yet.
func (p *Prober) ReadinessKnown(podKey plan.Key) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, in := range p.instances {
		if k.pod == podKey && !in.probed {
			return false
		}
	}
	return true
}

// Forget stops the probes of the pod's instances that keep does not
// keep (all of them when keep is nil) and drops their state.
func (p *Prober) Forget(podKey plan.Key, keep func(container, instance string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, in := range p.instances {
		if k.pod == podKey && (keep == nil || !keep(k.container, k.instance)) {
			in.cancel()
			delete(p.instances, k)
		}
	}
}

// Stop stops every probe and waits for their goroutines.
func (p *Prober) Stop() {
	p.mu.Lock()
	for k, in := range p.instances {
		in.cancel()
		delete(p.instances, k)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// run probes at the probe's period until ctx ends.
func (p *Prober) run(ctx context.Context, key instanceKey, t ProbeTarget, kind probeKind, pr *corev1.Probe) {
	// The manifests' defaults set the period (10 s) and thresholds (1
	// and 3); only readiness may ask for more than one success.
	period := time.Duration(pr.PeriodSeconds) * time.Second
	successes, failures := int(pr.SuccessThreshold), int(pr.FailureThreshold)
	if kind != probeReadiness {
		successes = 1
	}
	wait := time.Duration(pr.InitialDelaySeconds) * time.Second
	if !t.StartedAt.IsZero() {
		wait = max(wait-p.clock.Now().Sub(t.StartedAt), 0)
	}
	okRun, failRun := 0, 0
	for {
		timer := p.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
		wait = period
		if kind != probeStartup && !p.started(key) {
			continue
		}
		if kind == probeStartup && p.started(key) {
			return
		}
		err := probeOnce(ctx, p.exec, pr, t)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
		} else {
			okRun, failRun = 0, failRun+1
			p.log.Debug("probe failed", "pod", key.pod, "container", key.container, "probe", kind, "failures", failRun, "err", err)
		}
		switch kind {
		case probeStartup:
			if okRun >= successes {
				p.set(key, func(in *probedInstance) { in.started = true })
				return
			}
			if failRun >= failures {
				p.kill(key, string(kind)+" probe failed: "+err.Error())
				return
			}
		case probeLiveness:
			if failRun >= failures {
				p.kill(key, string(kind)+" probe failed: "+err.Error())
				failRun = 0
			}
		case probeReadiness:
			p.set(key, func(in *probedInstance) {
				in.probed = true
				switch {
				case okRun >= successes:
					in.ready = true
				case failRun >= failures:
					in.ready = false
				}
			})
		}
	}
}

func (p *Prober) started(key instanceKey) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	in, ok := p.instances[key]
	return ok && in.started
}

// set changes the instance's state and signals when it changed.
func (p *Prober) set(key instanceKey, f func(*probedInstance)) {
	p.mu.Lock()
	in, ok := p.instances[key]
	changed := false
	if ok {
		before := *in
		f(in)
		changed = before.started != in.started || before.ready != in.ready || before.probed != in.probed
	}
	p.mu.Unlock()
	if changed && p.onChange != nil {
		p.onChange(key.pod)
	}
}

func (p *Prober) kill(key instanceKey, reason string) {
	p.log.Info("container failed its probe; killing it", "pod", key.pod, "container", key.container, "reason", reason)
	p.set(key, func(in *probedInstance) { in.ready = false })
	if p.onKill != nil {
		p.onKill(key.pod, killRequest{container: key.container, instance: key.instance, reason: reason})
	}
}
