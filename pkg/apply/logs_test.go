package apply_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
)

func TestRotateLogsWhileTheContainerWrites(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	trigger := t.TempDir()
	c := busybox("chatty", `i=0; while [ $i -lt 300 ]; do echo "before rotation line $i padded to make the log grow faster"; i=$((i+1)); done
j=0; until [ -f /trigger/go ]; do j=$((j+1)); [ $j -lt 600 ] || exit 9; sleep 0.1; done
echo "after rotation"; exec sleep 3600`)
	c.Mounts = []apply.Mount{{Source: trigger, Destination: "/trigger", ReadOnly: true}}
	if _, err := n.Runtime.RunPod(ctx, apply.PodSpec{Namespace: "default", Name: "chatty", Containers: []apply.ContainerSpec{c}}); err != nil {
		t.Fatal(err)
	}
	st := waitContainer(t, n.Runtime, "default", "chatty", "chatty", 30*time.Second, func(c apply.ContainerStatus) bool {
		return strings.Contains(readLog(t, c), "before rotation line 299 ") || c.State == apply.StateExited
	})
	if err := n.Runtime.RotateLogs(4096, 2); err != nil {
		t.Fatal(err)
	}
	rotated, err := os.ReadFile(st.LogPath + ".1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(rotated, []byte("before rotation line 0 ")) || !bytes.Contains(rotated, []byte("line 299")) {
		t.Fatalf("rotated copy holds %d bytes, not the log", len(rotated))
	}
	if err := os.WriteFile(filepath.Join(trigger, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st = waitContainer(t, n.Runtime, "default", "chatty", "chatty", 30*time.Second, func(c apply.ContainerStatus) bool {
		return strings.Contains(readLog(t, c), "after rotation") || c.State == apply.StateExited
	})
	// The shim appends: after the truncation it writes from the start,
	// leaving no hole of zero bytes.
	if got := readLog(t, st); got != "after rotation\n" {
		t.Fatalf("log after rotation = %q", got)
	}
	if err := n.Runtime.StopPod(ctx, "default", "chatty", 0); err != nil {
		t.Fatal(err)
	}
}
