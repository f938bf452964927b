package apply

import (
	"context"
	"fmt"
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
	unlock := r.locks.lock(pod.Key())
	defer unlock()
	if _, err := r.readRecord(pod.Key()); err != nil {
		return fmt.Errorf("pod %s/%s has no sandbox: %w", pod.Namespace, pod.Name, ErrNotFound)
	}
	if err := r.syncVolumes(pod); err != nil {
		return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
