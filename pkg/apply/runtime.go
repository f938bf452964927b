package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
)

// Labels gitorch puts on every container it creates. A restarted gitorch
// rebuilds its view of the node from them.
const (
	LabelPodNamespace = "gitorch.io/pod-namespace"
	LabelPod          = "gitorch.io/pod"
	LabelContainer    = "gitorch.io/container"
	LabelRevision     = "gitorch.io/revision"
	LabelTemplateHash = "gitorch.io/template-hash"
	// LabelAttempt counts the starts of a container of a pod, from 0.
	LabelAttempt = "gitorch.io/attempt"
)

// Errors callers decide on with errors.Is.
var (
	// ErrImageNotPresent: the image is not in containerd's image store
	// (and the pull policy forbids pulling it).
	ErrImageNotPresent = errors.New("image not present")
	// ErrNotFound: no such pod or container on this node.
	ErrNotFound = errors.New("not found")
)

// Runtime runs pods on the node. Every method is idempotent and safe to
// call again after an error or a restart of gitorch: the state lives in
// containerd and the data directory, never only in memory.
type Runtime interface {
	// CreateSandbox makes the pod's namespaces and network if missing and
	// returns the pod's IP (invalid without a network), which the
	// containers' environment may need (fieldRef status.podIP).
	CreateSandbox(ctx context.Context, pod PodSpec) (netip.Addr, error)
	// StartContainer starts the named container of pod, replacing an
	// exited instance with a new one (its attempt count one higher). A
	// running instance is left running. The sandbox must exist
	// (CreateSandbox).
	StartContainer(ctx context.Context, pod PodSpec, container string) (ContainerStatus, error)
	// StopContainer sends SIGTERM to the container, waits up to grace for
	// it to exit and then sends SIGKILL. The exited container stays, so
	// that its exit status can be observed.
	StopContainer(ctx context.Context, namespace, pod, container string, grace time.Duration) error
	// StopPod stops every container of the pod as StopContainer does and
	// removes everything the pod had: containers, snapshots, network
	// (veth, IP), namespaces, and its directory with its logs.
	StopPod(ctx context.Context, namespace, name string, grace time.Duration) error
	// SyncVolumes rewrites the pod's configMap and secret volume files
	// (a new revision changed them) without restarting anything.
	SyncVolumes(ctx context.Context, pod PodSpec) error
	// Pod is what exists of one pod; an error wrapping ErrNotFound when
	// nothing does.
	Pod(ctx context.Context, namespace, name string) (PodStatus, error)
	// ListPods returns what runs on the node, as observed in containerd
	// and the data directory.
	ListPods(ctx context.Context) ([]PodStatus, error)
	// Exec runs a command in a running container and waits up to
	// timeout (exec probes, preStop exec hooks).
	Exec(ctx context.Context, namespace, pod, container string, cmd []string, timeout time.Duration) (ExecResult, error)
}

// PodSpec is a pod as the runtime runs it: everything resolved (images
// named, environment computed, volumes as host paths).
type PodSpec struct {
	Namespace string
	Name      string
	// Revision is the Git commit the pod comes from; TemplateHash the hash
	// of its workload's pod template. Both label its containers.
	Revision     string
	TemplateHash string
	// Hostname defaults to Name (cut to 63 bytes).
	Hostname string
	// ResolvConf is the pod's /etc/resolv.conf, written with its sandbox
	// and kept for its life; nil leaves the image's.
	ResolvConf []byte
	Volumes    []Volume
	// InitContainers are not started by RunPod: the caller runs them to
	// completion, in order, with StartContainer, before RunPod.
	InitContainers []ContainerSpec
	Containers     []ContainerSpec
}

// Volume is a directory the pod's containers can mount. Exactly one of
// EmptyDir, HostPath and Files is set.
type Volume struct {
	Name string
	// EmptyDir: an empty directory made with the pod and removed with it.
	EmptyDir bool
	// HostPath: a directory or file of the node, checked or made as
	// HostPathType (a Kubernetes hostPath type: "" checks nothing but
	// makes a missing path a directory, DirectoryOrCreate, Directory,
	// FileOrCreate, File, Socket, CharDevice, BlockDevice) when the pod's
	// containers start; a failed check is ErrHostPathType.
	HostPath     string
	HostPathType string
	// Files: a directory holding these files (a configMap's or a
	// secret's keys). RunPod rewrites changed files and removes files no
	// longer listed, so containers see updates.
	Files []VolumeFile
	// Memory keeps the directory on tmpfs (emptyDir medium Memory, and
	// secrets, which never touch the node's disk).
	Memory bool
	// Claim: a directory of the node, <data-dir>/volumes/<namespace>/<claim>,
	// made when missing and kept when the pod goes (a StatefulSet's
	// volumeClaimTemplates; plan.ClaimVolumes names it).
	Claim string
}

// VolumeFile is one file of a Files volume.
type VolumeFile struct {
	// Path relative to the volume, without "..".
	Path string
	Data []byte
	Mode os.FileMode
}

// Key is the pod's namespace and name.
func (p PodSpec) Key() plan.Key { return plan.Key{Namespace: p.Namespace, Name: p.Name} }

func (p PodSpec) dirName() string { return podDirName(p.Namespace, p.Name) }

// podDirName names the pod's directory (and its lock):
// "<namespace>_<name>". Kubernetes names cannot hold '_', so names never
// collide.
func podDirName(namespace, name string) string { return namespace + "_" + name }

func (p PodSpec) hostname() string {
	h := p.Hostname
	if h == "" {
		h = p.Name
	}
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}

func (p PodSpec) container(name string) (ContainerSpec, bool) {
	for _, c := range append(append([]ContainerSpec(nil), p.InitContainers...), p.Containers...) {
		if c.Name == name {
			return c, true
		}
	}
	return ContainerSpec{}, false
}

// ContainerSpec is one container of a pod.
type ContainerSpec struct {
	Name  string
	Image string
	// PullPolicy for Image; "" is IfNotPresent.
	PullPolicy PullPolicy
	// Command replaces the image's entrypoint, Args its command, as in
	// Kubernetes: Command+Args, or entrypoint+Args, or entrypoint+cmd.
	Command []string
	Args    []string
	// Env is KEY=value, applied over the image's environment.
	Env        []string
	WorkingDir string
	Mounts     []Mount
	Resources  Resources
}

// Mount binds a pod volume (or, with Source, a host path) into the
// container at Destination.
type Mount struct {
	// Volume names one of the pod's Volumes.
	Volume string
	// Source is a host path, for a mount that is no pod volume.
	Source string
	// SubPath mounts a path inside the volume instead of its root.
	SubPath     string
	Destination string
	ReadOnly    bool
}

// Resources are a container's cgroup settings, from its requests and
// limits. Zero means unset.
type Resources struct {
	// CPURequestMilli sets the CPU weight (shares), CPULimitMilli the CFS
	// quota, in thousandths of a CPU.
	CPURequestMilli int64
	CPULimitMilli   int64
	// MemoryLimit in bytes; swap is limited to the same amount (none).
	MemoryLimit int64
}

// The observed state of pods is described in plan's terms, since plan
// decides from it.
type (
	ContainerState  = plan.ContainerState
	ContainerStatus = plan.ObservedContainer
	PodStatus       = plan.ObservedPod
)

// The states of a container.
const (
	StateCreated = plan.ContainerCreated
	StateRunning = plan.ContainerRunning
	StateExited  = plan.ContainerExited
	StateUnknown = plan.ContainerUnknown
)

// containerID is the containerd ID of a pod's container: readable when
// the names allow, else a hash (containerd IDs are at most 76 bytes of
// [A-Za-z0-9] separated by single '.', '_' or '-').
func containerID(namespace, pod, container string) string {
	id := namespace + "_" + pod + "_" + container
	if validID(id) {
		return id
	}
	h := sha256.Sum256([]byte(namespace + "/" + pod + "/" + container))
	return "gitorch-" + hex.EncodeToString(h[:20])
}

func validID(id string) bool {
	if id == "" || len(id) > 76 {
		return false
	}
	prevSep := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			prevSep = false
		case c == '.' || c == '_' || c == '-':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

// processArgs applies Kubernetes' rules for command and args over the
// image's entrypoint and cmd.
func processArgs(command, args, entrypoint, cmd []string) ([]string, error) {
	var out []string
	switch {
	case len(command) > 0:
		out = append(append(out, command...), args...)
	case len(args) > 0:
		out = append(append(out, entrypoint...), args...)
	default:
		out = append(append(out, entrypoint...), cmd...)
	}
	if len(out) == 0 {
		return nil, errors.New("no command: the container sets none and its image has no entrypoint or cmd")
	}
	return out, nil
}

// cpuShares maps a CPU request to cgroup v1 shares, as kubelet does.
func cpuShares(milli int64) uint64 {
	const minShares, maxShares = 2, 262144
	s := milli * 1024 / 1000
	if s < minShares {
		return minShares
	}
	if s > maxShares {
		return maxShares
	}
	return uint64(s)
}

// cpuQuota maps a CPU limit to a CFS quota over a 100 ms period.
func cpuQuota(milli int64) (quota int64, period uint64) {
	const p = 100000
	q := milli * p / 1000
	if q < 1000 {
		q = 1000
	}
	return q, p
}
