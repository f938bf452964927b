package apply_test

import (
	"context"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
)

func TestWatchSignalsTaskExit(t *testing.T) {
	n := newNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := n.Runtime.Watch(ctx)
	pod := apply.PodSpec{Namespace: "default", Name: "brief", Containers: []apply.ContainerSpec{busybox("c", "sleep 0.3")}}
	if _, err := n.Runtime.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	// Drain the start signals, then wait for the one that comes with
	// the exit: after it, the listing shows the container exited.
	deadline := time.After(30 * time.Second)
	for {
		select {
		case _, ok := <-changes:
			if !ok {
				t.Fatal("watch ended early")
			}
			if p, found := findPod(t, n.Runtime, "default", "brief"); found {
				if c, _ := p.Container("c"); c.State == apply.StateExited {
					cancel()
					if _, ok := <-changes; ok {
						// One buffered signal may remain; the channel closes after.
						<-changes
					}
					if err := n.Runtime.StopPod(context.Background(), "default", "brief", 0); err != nil {
						t.Fatal(err)
					}
					return
				}
			}
		case <-deadline:
			t.Fatal("no signal showing the container's exit within 30s")
		}
	}
}
