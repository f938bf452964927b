package apply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gitorch/gitorch/pkg/apply/nsfile"
)

// Pod returns what runs of the pod namespace/name, as ListPods observes
// it, or an error wrapping ErrNotFound when the node has nothing of it.
func (r *Containerd) Pod(ctx context.Context, namespace, name string) (PodStatus, error) {
	return r.podStatus(r.ctx(ctx), namespace, name)
}

// SyncVolumes writes the pod's configMap and secret volume files as they
// are in pod, so that running containers see a new revision's contents
// without a restart (as RunPod and StartContainer do). The pod's sandbox
// must exist.
func (r *Containerd) SyncVolumes(_ context.Context, pod PodSpec) error {
	unlock := r.locks.lock(pod.dirName())
	defer unlock()
	if _, err := r.readRecord(pod.dirName()); err != nil {
		return fmt.Errorf("pod %s/%s has no sandbox: %w", pod.Namespace, pod.Name, ErrNotFound)
	}
	if err := r.syncVolumes(pod); err != nil {
		return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// NetNSPath is the path of the pod's network namespace (bind-mounted in
// its directory), or "" when the pod has none. Probes connect from inside
// it.
func (r *Containerd) NetNSPath(namespace, pod string) string {
	p := nsfile.Path(filepath.Join(r.podDir(podDirName(namespace, pod)), "ns"), nsfile.Net)
	if !nsfile.IsNamespace(p) {
		return ""
	}
	return p
}

// LogFile is the log file of the container's current instance, or with
// previous of the one before it: logs are kept per start, as
// DATA/pods/NS_POD/logs/CONTAINER/ATTEMPT.log. The error wraps
// ErrNotFound when there is no such log.
func (r *Containerd) LogFile(namespace, pod, container string, previous bool) (string, error) {
	dir := filepath.Join(r.podDir(podDirName(namespace, pod)), "logs", container)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("no logs of container %s in pod %s/%s: %w", container, namespace, pod, ErrNotFound)
	}
	var attempts []int
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		if a, err := strconv.Atoi(n); err == nil {
			attempts = append(attempts, a)
		}
	}
	slices.Sort(attempts)
	i := len(attempts) - 1
	if previous {
		i--
	}
	if i < 0 {
		what := "no log"
		if previous {
			what = "no previous instance"
		}
		return "", fmt.Errorf("container %s in pod %s/%s has %s: %w", container, namespace, pod, what, ErrNotFound)
	}
	return r.logPath(podDirName(namespace, pod), container, attempts[i]), nil
}
