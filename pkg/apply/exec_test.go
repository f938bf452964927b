package apply_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
)

func TestExecInContainer(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	pod := apply.PodSpec{Namespace: "default", Name: "exec-target", Containers: []apply.ContainerSpec{
		{Name: "c", Image: busybox("", "").Image, Command: []string{"sleep", "3600"}, Env: []string{"FLAVOUR=vanilla"}},
	}}
	if _, err := n.Runtime.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	res, err := n.Runtime.Exec(ctx, "default", "exec-target", "c", []string{"sh", "-c", `echo "$(hostname) $FLAVOUR"; echo oops >&2; exit 3`}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit %d, want 3", res.ExitCode)
	}
	if got := string(res.Output); got != "exec-target vanilla\noops\n" && got != "oops\nexec-target vanilla\n" {
		t.Errorf("output %q", got)
	}
	_, err = n.Runtime.Exec(ctx, "default", "exec-target", "c", []string{"sleep", "30"}, 200*time.Millisecond)
	if !errors.Is(err, apply.ErrExecTimeout) {
		t.Fatalf("err = %v, want ErrExecTimeout", err)
	}
	if _, err := n.Runtime.Exec(ctx, "default", "exec-target", "nope", []string{"true"}, time.Second); !errors.Is(err, apply.ErrNotFound) {
		t.Fatalf("exec in a missing container: %v", err)
	}
	if err := n.Runtime.StopPod(ctx, "default", "exec-target", 0); err != nil {
		t.Fatal(err)
	}
}
