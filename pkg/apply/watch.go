package apply

import (
	"context"
	"fmt"
)

// Watch signals on the returned channel whenever a task of the runtime's
// containerd namespace starts, exits, is OOM-killed or deleted: a hint to
// look again (ListPods), coalesced so that a slow reader gets one signal
// for many events. The channel is closed when ctx ends or containerd's
// event stream fails; the caller watches again, and since it lists the
// whole state each time, a lost event costs latency, never correctness.
func (r *Containerd) Watch(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	filter := fmt.Sprintf(`namespace==%q,topic~="^/tasks/"`, r.cfg.Namespace)
	events, errs := r.cfg.Client.Subscribe(ctx, filter)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-errs:
				return
			case _, ok := <-events:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}
