package applytest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/clock"
	"github.com/gitorch/gitorch/pkg/plan"
)

// FakeRuntime is an in-memory apply.Runtime for fast tests of the logic
// that drives a runtime: containers "run" until the test makes them exit
// or the caller stops them; nothing touches the machine. It keeps the
// rules of the real one that callers rely on: StartContainer needs the
// sandbox, replaces an exited instance with attempt+1 and leaves a running
// one alone; StopContainer leaves the exited container to be observed;
// StopPod removes everything of the pod.
type FakeRuntime struct {
	clock clock.Clock

	mu      sync.Mutex
	pods    map[plan.Key]*fakePod
	nextIP  netip.Addr
	nextPID uint32
	// failures: image → error returned by StartContainer.
	failures map[string]error
	execs    func(namespace, pod, container string, cmd []string) apply.ExecResult
	ops      []string
	watchers []chan struct{}
}

type fakePod struct {
	spec       apply.PodSpec
	ip         netip.Addr
	containers map[string]*apply.ContainerStatus
	volumes    string // revision of the volume files
}

var _ apply.Runtime = (*FakeRuntime)(nil)

// NewFakeRuntime returns an empty fake runtime whose containers are
// timed by clk (nil: the real clock).
func NewFakeRuntime(clk clock.Clock) *FakeRuntime {
	return &FakeRuntime{
		clock:    clock.OrReal(clk),
		pods:     map[plan.Key]*fakePod{},
		nextIP:   netip.MustParseAddr("10.88.0.2"),
		nextPID:  1000,
		failures: map[string]error{},
	}
}

func (f *FakeRuntime) record(format string, args ...any) {
	f.ops = append(f.ops, fmt.Sprintf(format, args...))
}

// Ops lists what was asked of the runtime, in order: "sandbox ns/pod",
// "start ns/pod/container", "stop ns/pod/container", "stoppod ns/pod",
// "volumes ns/pod", "exec ns/pod/container".
func (f *FakeRuntime) Ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

// Count is how many operations start with prefix (e.g. "start default/web-").
func (f *FakeRuntime) Count(prefix string) int {
	n := 0
	for _, op := range f.Ops() {
		if len(op) >= len(prefix) && op[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

// FailImage makes StartContainer of image fail with err (nil: succeed
// again).
func (f *FakeRuntime) FailImage(image string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.failures, image)
	} else {
		f.failures[image] = err
	}
}

// SetExec sets what Exec returns.
func (f *FakeRuntime) SetExec(fn func(namespace, pod, container string, cmd []string) apply.ExecResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.execs = fn
}

// Exit makes the running container exit with code (137 with oom for an
// OOM kill), as a crash would.
func (f *FakeRuntime) Exit(namespace, pod, container string, code uint32, oom bool) error {
	f.mu.Lock()
	defer f.notify()
	defer f.mu.Unlock()
	p := f.pods[plan.Key{Namespace: namespace, Name: pod}]
	if p == nil || p.containers[container] == nil || p.containers[container].State != apply.StateRunning {
		return fmt.Errorf("%s/%s/%s is not running: %w", namespace, pod, container, apply.ErrNotFound)
	}
	c := p.containers[container]
	c.State, c.PID, c.ExitCode, c.OOMKilled, c.ExitedAt = apply.StateExited, 0, code, oom, f.clock.Now()
	return nil
}

// Watch signals every change of a container's state, as containerd's
// events do.
func (f *FakeRuntime) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.watchers = append(f.watchers, ch)
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.watchers = slices.DeleteFunc(f.watchers, func(c chan struct{}) bool { return c == ch })
		close(ch)
	}()
	return ch
}

func (f *FakeRuntime) notify() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// CreateSandbox implements apply.Runtime.
func (f *FakeRuntime) CreateSandbox(_ context.Context, pod apply.PodSpec) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := pod.Key()
	p := f.pods[k]
	if p == nil {
		f.record("sandbox %s", k)
		p = &fakePod{ip: f.nextIP, containers: map[string]*apply.ContainerStatus{}}
		f.nextIP = f.nextIP.Next()
		f.pods[k] = p
	}
	p.spec = pod
	return p.ip, nil
}

// Spec is the PodSpec the pod's sandbox was last made or checked with.
func (f *FakeRuntime) Spec(namespace, name string) (apply.PodSpec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pods[plan.Key{Namespace: namespace, Name: name}]
	if p == nil {
		return apply.PodSpec{}, false
	}
	return p.spec, true
}

// StartContainer implements apply.Runtime.
func (f *FakeRuntime) StartContainer(_ context.Context, pod apply.PodSpec, container string) (apply.ContainerStatus, error) {
	f.mu.Lock()
	defer f.notify()
	defer f.mu.Unlock()
	k := pod.Key()
	p := f.pods[k]
	if p == nil {
		return apply.ContainerStatus{}, fmt.Errorf("pod %s has no sandbox: %w", k, apply.ErrNotFound)
	}
	var spec *apply.ContainerSpec
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		if c.Name == container {
			spec = &c
		}
	}
	if spec == nil {
		return apply.ContainerStatus{}, fmt.Errorf("pod %s has no container %s: %w", k, container, apply.ErrNotFound)
	}
	if err := f.failures[spec.Image]; err != nil {
		f.record("start %s/%s failed", k, container)
		return apply.ContainerStatus{}, err
	}
	old := p.containers[container]
	if old != nil && old.State == apply.StateRunning {
		return *old, nil
	}
	attempt := 0
	if old != nil {
		attempt = old.Attempt + 1
	}
	f.record("start %s/%s", k, container)
	f.nextPID++
	c := &apply.ContainerStatus{
		Name: container, ID: k.Namespace + "_" + k.Name + "_" + container, Image: spec.Image, Attempt: attempt,
		State: apply.StateRunning, PID: f.nextPID, CreatedAt: f.clock.Now(),
		Revision: pod.Revision, TemplateHash: pod.TemplateHash,
	}
	p.containers[container] = c
	p.volumes = pod.Revision
	return *c, nil
}

// StopContainer implements apply.Runtime: the container exits at once
// with 143 (SIGTERM).
func (f *FakeRuntime) StopContainer(_ context.Context, namespace, pod, container string, _ time.Duration) error {
	f.mu.Lock()
	defer f.notify()
	defer f.mu.Unlock()
	k := plan.Key{Namespace: namespace, Name: pod}
	f.record("stop %s/%s", k, container)
	if p := f.pods[k]; p != nil {
		if c := p.containers[container]; c != nil && c.State == apply.StateRunning {
			c.State, c.PID, c.ExitCode, c.ExitedAt = apply.StateExited, 0, 143, f.clock.Now()
		}
	}
	return nil
}

// StopPod implements apply.Runtime.
func (f *FakeRuntime) StopPod(_ context.Context, namespace, name string, _ time.Duration) error {
	f.mu.Lock()
	defer f.notify()
	defer f.mu.Unlock()
	k := plan.Key{Namespace: namespace, Name: name}
	f.record("stoppod %s", k)
	delete(f.pods, k)
	return nil
}

// SyncVolumes implements apply.Runtime.
func (f *FakeRuntime) SyncVolumes(_ context.Context, pod apply.PodSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := pod.Key()
	p := f.pods[k]
	if p == nil {
		return fmt.Errorf("pod %s: %w", k, apply.ErrNotFound)
	}
	f.record("volumes %s", k)
	p.volumes = pod.Revision
	return nil
}

// VolumesRevision is the revision whose volume files the pod has.
func (f *FakeRuntime) VolumesRevision(namespace, name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.pods[plan.Key{Namespace: namespace, Name: name}]; p != nil {
		return p.volumes
	}
	return ""
}

// Pod implements apply.Runtime.
func (f *FakeRuntime) Pod(_ context.Context, namespace, name string) (apply.PodStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := plan.Key{Namespace: namespace, Name: name}
	p := f.pods[k]
	if p == nil {
		return apply.PodStatus{}, fmt.Errorf("pod %s: %w", k, apply.ErrNotFound)
	}
	return p.status(k), nil
}

func (p *fakePod) status(k plan.Key) apply.PodStatus {
	st := apply.PodStatus{Namespace: k.Namespace, Name: k.Name, IP: p.ip}
	for _, c := range p.containers {
		st.Containers = append(st.Containers, *c)
	}
	slices.SortFunc(st.Containers, func(a, b apply.ContainerStatus) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return st
}

// ListPods implements apply.Runtime.
func (f *FakeRuntime) ListPods(context.Context) ([]apply.PodStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]apply.PodStatus, 0, len(f.pods))
	for k, p := range f.pods {
		out = append(out, p.status(k))
	}
	slices.SortFunc(out, func(a, b apply.PodStatus) int { return a.Key().Compare(b.Key()) })
	return out, nil
}

// Exec implements apply.Runtime: what SetExec says, else exit code 0.
func (f *FakeRuntime) Exec(_ context.Context, namespace, pod, container string, cmd []string, _ time.Duration) (apply.ExecResult, error) {
	f.mu.Lock()
	fn := f.execs
	k := plan.Key{Namespace: namespace, Name: pod}
	f.record("exec %s/%s", k, container)
	p := f.pods[k]
	running := p != nil && p.containers[container] != nil && p.containers[container].State == apply.StateRunning
	f.mu.Unlock()
	if !running {
		return apply.ExecResult{}, fmt.Errorf("%s/%s is not running: %w", k, container, apply.ErrNotFound)
	}
	if fn == nil {
		return apply.ExecResult{}, nil
	}
	return fn(namespace, pod, container, cmd), nil
}
