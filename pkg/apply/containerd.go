package apply

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/gitorch/gitorch/pkg/apply/nsfile"
)

// ContainerdConfig configures the containerd runtime.
type ContainerdConfig struct {
	// Client is connected to containerd; the runtime does not close it.
	Client *client.Client
	// Namespace is the containerd namespace (default "gitorch").
	Namespace string
	// Snapshotter for container root filesystems ("" for containerd's
	// default).
	Snapshotter string
	// DataDir holds a directory per pod: its namespaces, /etc/hosts,
	// /dev/shm and logs. It must be on a filesystem that allows mounts.
	DataDir string
	// Network connects pods; nil leaves them with loopback only.
	Network Network
	// RuncRoot is the directory where runc keeps the state of the
	// runtime's containers, one subdirectory per containerd namespace
	// ("" for the shim's default, /run/containerd/runc). A containerd
	// with a root of its own, such as a test's, sets it beside that root
	// so that nothing of it stays in /run.
	RuncRoot string
	// Registries holds pull credentials and plain-HTTP registries.
	Registries Registries
	// Logger for what the runtime does; nil discards.
	Logger *slog.Logger
}

// Containerd runs pods on containerd. A pod is a set of namespaces (net,
// IPC, UTS) bind-mounted under the pod's directory, made before any of its
// containers and kept until the pod is stopped, and containers that join
// them. No sandbox ("pause") container is needed: the namespaces belong to
// no process, so a container can restart, or every container exit,
// without the pod losing its IP or hostname.
type Containerd struct {
	cfg   ContainerdConfig
	log   *slog.Logger
	locks keyedMutex
}

var _ Runtime = (*Containerd)(nil)

// NewContainerd returns a runtime for cfg.
func NewContainerd(cfg ContainerdConfig) (*Containerd, error) {
	if cfg.Client == nil {
		return nil, errors.New("containerd runtime: no client")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("containerd runtime: no data dir")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dir
	if err := os.MkdirAll(filepath.Join(dir, "pods"), 0o700); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Containerd{cfg: cfg, log: log}, nil
}

func (r *Containerd) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.cfg.Namespace)
}

func (r *Containerd) podDir(key string) string { return filepath.Join(r.cfg.DataDir, "pods", key) }

// podRecord is the pod's file in its directory: what the runtime must
// know about a pod that containerd does not.
type podRecord struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	IP        string `json:"ip,omitempty"`
}

func (r *Containerd) readRecord(key string) (podRecord, error) {
	var rec podRecord
	b, err := os.ReadFile(filepath.Join(r.podDir(key), "pod.json"))
	if err != nil {
		return rec, err
	}
	return rec, json.Unmarshal(b, &rec)
}

// CreateSandbox implements Runtime.
func (r *Containerd) CreateSandbox(ctx context.Context, pod PodSpec) (netip.Addr, error) {
	ctx = r.ctx(ctx)
	unlock := r.locks.lock(pod.dirName())
	defer unlock()
	rec, err := r.ensureSandbox(ctx, pod)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if rec.IP == "" {
		return netip.Addr{}, nil
	}
	return netip.ParseAddr(rec.IP)
}

// RunPod implements Runtime.
func (r *Containerd) RunPod(ctx context.Context, pod PodSpec) (PodStatus, error) {
	ctx = r.ctx(ctx)
	unlock := r.locks.lock(pod.dirName())
	defer unlock()
	if _, err := r.ensureSandbox(ctx, pod); err != nil {
		return PodStatus{}, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if err := r.syncVolumes(pod); err != nil {
		return PodStatus{}, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	for _, c := range pod.Containers {
		if _, err := r.startContainer(ctx, pod, c, false); err != nil {
			return PodStatus{}, fmt.Errorf("pod %s/%s: container %s: %w", pod.Namespace, pod.Name, c.Name, err)
		}
	}
	return r.podStatus(ctx, pod.Namespace, pod.Name)
}

// StartContainer implements Runtime.
func (r *Containerd) StartContainer(ctx context.Context, pod PodSpec, name string) (ContainerStatus, error) {
	ctx = r.ctx(ctx)
	unlock := r.locks.lock(pod.dirName())
	defer unlock()
	c, ok := pod.container(name)
	if !ok {
		return ContainerStatus{}, fmt.Errorf("pod %s/%s has no container %q: %w", pod.Namespace, pod.Name, name, ErrNotFound)
	}
	if _, err := r.readRecord(pod.dirName()); err != nil {
		return ContainerStatus{}, fmt.Errorf("pod %s/%s has no sandbox (RunPod first): %w", pod.Namespace, pod.Name, ErrNotFound)
	}
	if err := r.syncVolumes(pod); err != nil {
		return ContainerStatus{}, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	st, err := r.startContainer(ctx, pod, c, true)
	if err != nil {
		return st, fmt.Errorf("pod %s/%s: container %s: %w", pod.Namespace, pod.Name, name, err)
	}
	return st, nil
}

// ensureSandbox makes the pod's directory, namespaces, /dev/shm and
// network unless its record says they are done.
func (r *Containerd) ensureSandbox(ctx context.Context, pod PodSpec) (podRecord, error) {
	key := pod.dirName()
	dir := r.podDir(key)
	nsDir := filepath.Join(dir, "ns")
	if rec, err := r.readRecord(key); err == nil && nsfile.IsNamespace(nsfile.Path(nsDir, nsfile.Net)) {
		// A pod made before its node had a cluster DNS gets its
		// resolv.conf now; one it has is kept.
		if err := writeResolvConf(dir, pod, false); err != nil {
			return podRecord{}, err
		}
		return rec, nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return podRecord{}, err
	}
	if err := nsfile.Create(nsDir, pod.hostname(), nsfile.Net, nsfile.IPC, nsfile.UTS); err != nil {
		return podRecord{}, fmt.Errorf("namespaces: %w", err)
	}
	netPath := nsfile.Path(nsDir, nsfile.Net)
	if err := loopbackUp(netPath); err != nil {
		return podRecord{}, err
	}
	if err := mountShm(filepath.Join(dir, "shm")); err != nil {
		return podRecord{}, err
	}
	rec := podRecord{Namespace: pod.Namespace, Name: pod.Name}
	if r.cfg.Network != nil {
		ip, err := r.cfg.Network.Attach(ctx, key, netPath)
		if err != nil {
			return podRecord{}, fmt.Errorf("network: %w", err)
		}
		rec.IP = ip.String()
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if rec.IP != "" {
		hosts += rec.IP + "\t" + pod.hostname() + "\n"
	}
	if err := writeFileSync(filepath.Join(dir, "hosts"), []byte(hosts), 0o644); err != nil {
		return podRecord{}, err
	}
	if err := writeFileSync(filepath.Join(dir, "hostname"), []byte(pod.hostname()+"\n"), 0o644); err != nil {
		return podRecord{}, err
	}
	if err := writeResolvConf(dir, pod, true); err != nil {
		return podRecord{}, err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return podRecord{}, err
	}
	// The record goes last: its presence says the sandbox is complete.
	if err := writeFileSync(filepath.Join(dir, "pod.json"), b, 0o600); err != nil {
		return podRecord{}, err
	}
	r.log.Info("pod sandbox ready", "pod", key, "ip", rec.IP)
	return rec, nil
}

// writeResolvConf writes the pod's resolv.conf in its directory dir, if
// it has one, unless the file exists and replace is false.
func writeResolvConf(dir string, pod PodSpec, replace bool) error {
	if pod.ResolvConf == nil {
		return nil
	}
	path := filepath.Join(dir, "resolv.conf")
	if _, err := os.Stat(path); err == nil && !replace {
		return nil
	}
	return writeFileSync(path, pod.ResolvConf, 0o644)
}

func loopbackUp(nsPath string) error {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	return h.LinkSetUp(lo)
}

// mountShm mounts a tmpfs on dir, the pod's /dev/shm shared by its
// containers, unless one is there already.
func mountShm(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if mounted, err := isMountPoint(dir); err != nil || mounted {
		return err
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev/shm tmpfs on %s: %w", dir, err)
	}
	return nil
}

// isMountPoint reports whether dir is on another device than its parent.
func isMountPoint(dir string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat(dir, &a); err != nil {
		return false, err
	}
	if err := unix.Stat(filepath.Dir(dir), &b); err != nil {
		return false, err
	}
	return a.Dev != b.Dev, nil
}

// startContainer creates and starts c unless it runs. An exited (or
// never started) instance is replaced when replace is set and left alone
// otherwise.
func (r *Containerd) startContainer(ctx context.Context, pod PodSpec, c ContainerSpec, replace bool) (ContainerStatus, error) {
	id := containerID(pod.Namespace, pod.Name, c.Name)
	attempt := 0
	if old, err := r.cfg.Client.LoadContainer(ctx, id); err == nil {
		st, err := r.containerStatus(ctx, old)
		if err != nil {
			return st, err
		}
		if st.State == StateRunning || !replace {
			return st, nil
		}
		attempt = st.Attempt + 1
		if err := r.deleteContainer(ctx, old); err != nil {
			return st, err
		}
	} else if !errdefs.IsNotFound(err) {
		return ContainerStatus{}, err
	}

	img, err := EnsureImage(ctx, r.cfg.Client, r.cfg.Namespace, r.cfg.Snapshotter, c.Image, c.PullPolicy, r.cfg.Registries)
	if err != nil {
		return ContainerStatus{}, err
	}
	imgSpec, err := img.Spec(ctx)
	if err != nil {
		return ContainerStatus{}, fmt.Errorf("image config of %s: %w", c.Image, err)
	}
	args, err := processArgs(c.Command, c.Args, imgSpec.Config.Entrypoint, imgSpec.Config.Cmd)
	if err != nil {
		return ContainerStatus{}, err
	}

	dir := r.podDir(pod.dirName())
	nsDir := filepath.Join(dir, "ns")
	mounts := []specs.Mount{
		{Destination: "/dev/shm", Type: "bind", Source: filepath.Join(dir, "shm"), Options: []string{"rbind", "rw"}},
		{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(dir, "hosts"), Options: []string{"rbind", "rw"}},
		{Destination: "/etc/hostname", Type: "bind", Source: filepath.Join(dir, "hostname"), Options: []string{"rbind", "rw"}},
	}
	if _, err := os.Stat(filepath.Join(dir, "resolv.conf")); err == nil {
		mounts = append(mounts, specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: filepath.Join(dir, "resolv.conf"), Options: []string{"rbind", "rw"}})
	}
	for _, m := range c.Mounts {
		src, err := r.mountSource(pod, m)
		if err != nil {
			return ContainerStatus{}, err
		}
		opts := []string{"rbind", "rw"}
		if m.ReadOnly {
			opts = []string{"rbind", "ro"}
		}
		mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: src, Options: opts})
	}
	specOpts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithProcessArgs(args...),
		oci.WithEnv(append([]string{"HOSTNAME=" + pod.hostname()}, c.Env...)),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: nsfile.Path(nsDir, nsfile.Net)}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: nsfile.Path(nsDir, nsfile.IPC)}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace, Path: nsfile.Path(nsDir, nsfile.UTS)}),
		oci.WithoutMounts("/dev/shm"),
		oci.WithMounts(mounts),
	}
	if c.WorkingDir != "" {
		specOpts = append(specOpts, oci.WithProcessCwd(c.WorkingDir))
	}
	if m := c.Resources.MemoryLimit; m > 0 {
		specOpts = append(specOpts, oci.WithMemoryLimit(uint64(m)))
		if swapLimitable() {
			specOpts = append(specOpts, oci.WithMemorySwap(m))
		}
	}
	switch {
	case c.Resources.CPURequestMilli > 0:
		specOpts = append(specOpts, oci.WithCPUShares(cpuShares(c.Resources.CPURequestMilli)))
	case c.Resources.CPULimitMilli > 0:
		specOpts = append(specOpts, oci.WithCPUShares(cpuShares(c.Resources.CPULimitMilli)))
	}
	if l := c.Resources.CPULimitMilli; l > 0 {
		q, p := cpuQuota(l)
		specOpts = append(specOpts, oci.WithCPUCFS(q, p))
	}
	labels := map[string]string{
		LabelPodNamespace: pod.Namespace,
		LabelPod:          pod.Name,
		LabelContainer:    c.Name,
		LabelRevision:     pod.Revision,
		LabelTemplateHash: pod.TemplateHash,
		LabelAttempt:      strconv.Itoa(attempt),
	}
	// No container has this ID, so a snapshot under its key is what a
	// create interrupted before the container existed (the agent killed
	// between the two) left behind, under a lease that lasts a day:
	// without this, every create of the container would fail until then.
	if err := r.cfg.Client.SnapshotService(r.cfg.Snapshotter).Remove(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		return ContainerStatus{}, fmt.Errorf("remove the snapshot an unfinished create left: %w", err)
	}
	opts := []client.NewContainerOpts{client.WithImage(img)}
	if r.cfg.Snapshotter != "" {
		opts = append(opts, client.WithSnapshotter(r.cfg.Snapshotter))
	}
	opts = append(opts,
		client.WithNewSnapshot(id, img),
		client.WithNewSpec(specOpts...),
		client.WithContainerLabels(labels),
	)
	ctr, err := r.cfg.Client.NewContainer(ctx, id, opts...)
	if err != nil {
		return ContainerStatus{}, fmt.Errorf("create: %w", err)
	}
	logPath := r.logPath(pod.dirName(), c.Name, attempt)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return ContainerStatus{}, err
	}
	var taskOpts []client.NewTaskOpts
	if r.cfg.RuncRoot != "" {
		taskOpts = append(taskOpts, withRuncRoot(r.cfg.RuncRoot))
	}
	task, err := ctr.NewTask(ctx, cio.LogFile(logPath), taskOpts...)
	if err != nil {
		_ = ctr.Delete(ctx, client.WithSnapshotCleanup)
		return ContainerStatus{}, fmt.Errorf("create task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(ctx, client.WithProcessKill)
		_ = ctr.Delete(ctx, client.WithSnapshotCleanup)
		return ContainerStatus{}, fmt.Errorf("start: %w", err)
	}
	r.log.Info("container started", "pod", pod.dirName(), "container", c.Name, "attempt", attempt, "pid", task.Pid())
	return r.containerStatus(ctx, ctr)
}

// withRuncRoot has the shim run runc with --root root (runc's state of
// the task: its pid, its cgroup, its init fifo).
func withRuncRoot(root string) client.NewTaskOpts {
	return func(_ context.Context, _ *client.Client, ti *client.TaskInfo) error {
		if ti.Options == nil {
			ti.Options = &options.Options{}
		}
		opts, ok := ti.Options.(*options.Options)
		if !ok {
			return fmt.Errorf("runc root: task options are %T, not runc's", ti.Options)
		}
		opts.Root = root
		return nil
	}
}

func (r *Containerd) logPath(key, container string, attempt int) string {
	return filepath.Join(r.podDir(key), "logs", container, strconv.Itoa(attempt)+".log")
}

// swapLimitable reports whether the kernel can limit swap per cgroup.
func swapLimitable() bool {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return true // cgroup v2
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// containerStatus observes one container: its labels, and its task's state.
func (r *Containerd) containerStatus(ctx context.Context, ctr client.Container) (ContainerStatus, error) {
	info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil {
		return ContainerStatus{}, err
	}
	return r.statusOf(ctx, ctr, info)
}

func (r *Containerd) statusOf(ctx context.Context, ctr client.Container, info containers.Container) (ContainerStatus, error) {
	attempt, _ := strconv.Atoi(info.Labels[LabelAttempt])
	st := ContainerStatus{
		Name:         info.Labels[LabelContainer],
		ID:           info.ID,
		Image:        info.Image,
		Attempt:      attempt,
		State:        StateCreated,
		CreatedAt:    info.CreatedAt,
		Revision:     info.Labels[LabelRevision],
		TemplateHash: info.Labels[LabelTemplateHash],
		LogPath:      r.logPath(podDirName(info.Labels[LabelPodNamespace], info.Labels[LabelPod]), info.Labels[LabelContainer], attempt),
	}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	ts, err := task.Status(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return st, nil
		}
		return st, err
	}
	switch ts.Status {
	case client.Running, client.Paused, client.Pausing:
		st.State = StateRunning
		st.PID = task.Pid()
	case client.Stopped:
		st.State = StateExited
		st.ExitCode = ts.ExitStatus
		st.ExitedAt = ts.ExitTime
		st.OOMKilled = oomKilled(cgroupsPath(info))
	case client.Created:
		st.State = StateCreated
	default:
		st.State = StateUnknown
	}
	return st, nil
}

// cgroupsPath is the container's cgroup, from its OCI spec.
func cgroupsPath(info containers.Container) string {
	if info.Spec == nil {
		return ""
	}
	var s specs.Spec
	if err := json.Unmarshal(info.Spec.GetValue(), &s); err != nil || s.Linux == nil {
		return ""
	}
	return s.Linux.CgroupsPath
}

// oomKilled reports whether the kernel's OOM killer killed a process of
// the cgroup at path. It reads the cgroup, which exists until the task is
// deleted.
func oomKilled(path string) bool {
	if path == "" || strings.Contains(path, ":") { // systemd-style paths are not used by gitorch
		return false
	}
	file, key := filepath.Join("/sys/fs/cgroup", path, "memory.events"), "oom_kill"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		file = filepath.Join("/sys/fs/cgroup/memory", path, "memory.oom_control")
	}
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n > 0
		}
	}
	return false
}

// StopContainer implements Runtime.
func (r *Containerd) StopContainer(ctx context.Context, namespace, pod, container string, grace time.Duration) error {
	ctx = r.ctx(ctx)
	unlock := r.locks.lock(podDirName(namespace, pod))
	defer unlock()
	ctr, err := r.cfg.Client.LoadContainer(ctx, containerID(namespace, pod, container))
	if err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("container %s of pod %s/%s: %w", container, namespace, pod, ErrNotFound)
		}
		return err
	}
	return r.stop(ctx, ctr, grace)
}

// stop sends SIGTERM, waits up to grace, then SIGKILL, and waits for the
// exit (bounded by ctx).
func (r *Containerd) stop(ctx context.Context, ctr client.Container, grace time.Duration) error {
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ts, err := task.Status(ctx)
	if err != nil {
		return err
	}
	if ts.Status != client.Running && ts.Status != client.Paused && ts.Status != client.Pausing {
		return nil
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	if grace > 0 {
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("SIGTERM: %w", err)
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-exited:
			return nil
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deleteContainer removes a stopped container's task, the container and
// its snapshot.
func (r *Containerd) deleteContainer(ctx context.Context, ctr client.Container) error {
	if task, err := ctr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task of %s: %w", ctr.ID(), err)
		}
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", ctr.ID(), err)
	}
	return nil
}

// StopPod implements Runtime.
func (r *Containerd) StopPod(ctx context.Context, namespace, name string, grace time.Duration) error {
	ctx = r.ctx(ctx)
	key := podDirName(namespace, name)
	unlock := r.locks.lock(key)
	defer unlock()
	ctrs, err := r.podContainers(ctx, namespace, name)
	if err != nil {
		return err
	}
	errs := make([]error, len(ctrs))
	var wg sync.WaitGroup
	for i, ctr := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.stop(ctx, ctr, grace); err != nil {
				errs[i] = fmt.Errorf("stop %s: %w", ctr.ID(), err)
				return
			}
			errs[i] = r.deleteContainer(ctx, ctr)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pod %s/%s: %w", namespace, name, err)
	}
	return r.removeSandbox(ctx, key)
}

// removeSandbox undoes ensureSandbox.
func (r *Containerd) removeSandbox(ctx context.Context, key string) error {
	dir := r.podDir(key)
	nsDir := filepath.Join(dir, "ns")
	if r.cfg.Network != nil {
		if err := r.cfg.Network.Detach(ctx, key, nsfile.Path(nsDir, nsfile.Net)); err != nil {
			return fmt.Errorf("pod %s: network: %w", key, err)
		}
	}
	if err := nsfile.Remove(nsDir, nsfile.Net, nsfile.IPC, nsfile.UTS); err != nil {
		return fmt.Errorf("pod %s: %w", key, err)
	}
	// /dev/shm and memory-backed volumes.
	if err := nsfile.UnmountUnder(dir); err != nil {
		return fmt.Errorf("pod %s: %w", key, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("pod %s: %w", key, err)
	}
	r.log.Info("pod removed", "pod", key)
	return nil
}

// podFilter is a containerd filter for the containers of one pod.
func podFilter(namespace, name string) string {
	return fmt.Sprintf("labels.%q==%q,labels.%q==%q", LabelPodNamespace, namespace, LabelPod, name)
}

// podContainers lists the containers of one pod.
func (r *Containerd) podContainers(ctx context.Context, namespace, name string) ([]client.Container, error) {
	all, err := r.cfg.Client.Containers(ctx, podFilter(namespace, name))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return all, nil
}

// podStatus observes one pod.
func (r *Containerd) podStatus(ctx context.Context, namespace, name string) (PodStatus, error) {
	pods, err := r.listPods(ctx, podFilter(namespace, name), podDirName(namespace, name))
	if err != nil {
		return PodStatus{}, err
	}
	for _, p := range pods {
		if p.Namespace == namespace && p.Name == name {
			return p, nil
		}
	}
	return PodStatus{}, fmt.Errorf("pod %s/%s: %w", namespace, name, ErrNotFound)
}

// ListPods implements Runtime.
func (r *Containerd) ListPods(ctx context.Context) ([]PodStatus, error) {
	return r.listPods(r.ctx(ctx), fmt.Sprintf("labels.%q", LabelPod), "")
}

// listPods observes the containers matching filter and the pod
// directories (all of them when onlyKey is "", else that one), so that a
// pod whose containers are all gone still shows up (and can be stopped).
func (r *Containerd) listPods(ctx context.Context, filter, onlyKey string) ([]PodStatus, error) {
	ctrs, err := r.cfg.Client.Containers(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	pods := map[string]*PodStatus{}
	get := func(namespace, name string) *PodStatus {
		key := podDirName(namespace, name)
		if p, ok := pods[key]; ok {
			return p
		}
		p := &PodStatus{Namespace: namespace, Name: name}
		if rec, err := r.readRecord(key); err == nil && rec.IP != "" {
			p.IP, _ = netip.ParseAddr(rec.IP)
		}
		pods[key] = p
		return p
	}
	for _, ctr := range ctrs {
		info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue // deleted meanwhile
			}
			return nil, err
		}
		st, err := r.statusOf(ctx, ctr, info)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", ctr.ID(), err)
		}
		p := get(info.Labels[LabelPodNamespace], info.Labels[LabelPod])
		p.Containers = append(p.Containers, st)
	}
	entries, err := os.ReadDir(filepath.Join(r.cfg.DataDir, "pods"))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() || (onlyKey != "" && e.Name() != onlyKey) {
			continue
		}
		if rec, err := r.readRecord(e.Name()); err == nil {
			get(rec.Namespace, rec.Name)
		} else if ns, name, ok := strings.Cut(e.Name(), "_"); ok {
			// A sandbox interrupted before its record was written.
			get(ns, name)
		}
	}
	out := make([]PodStatus, 0, len(pods))
	for _, p := range pods {
		sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].Name < p.Containers[j].Name })
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key().Compare(out[j].Key()) < 0 })
	return out, nil
}

// keyedMutex serialises the operations on one pod.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l, ok := k.locks[key]
	if !ok {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
