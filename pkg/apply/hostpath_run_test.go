package apply_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
)

// A FileOrCreate hostPath is bind mounted as a file: one the host wrote is
// read in the container, a missing one is made empty and what the
// container writes into it reaches the host. A path of the wrong type keeps
// the pod from starting, with an error naming the volume and the path.
func TestHostPathFileMounts(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	dir := t.TempDir()
	given, made := filepath.Join(dir, "given.conf"), filepath.Join(dir, "made.out")
	if err := os.WriteFile(given, []byte("from-the-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := apply.PodSpec{
		Namespace: "default", Name: "files",
		Volumes: []apply.Volume{
			{Name: "given", HostPath: given, HostPathType: "FileOrCreate"},
			{Name: "made", HostPath: made, HostPathType: "FileOrCreate"},
		},
		Containers: []apply.ContainerSpec{busybox("c", `
set -e
test -f /etc/app.conf && test -f /var/made.out
test ! -s /var/made.out
echo "read=$(cat /etc/app.conf)"
echo from-the-container > /var/made.out`)},
	}
	pod.Containers[0].Mounts = []apply.Mount{
		{Volume: "given", Destination: "/etc/app.conf", ReadOnly: true},
		{Volume: "made", Destination: "/var/made.out"},
	}
	if _, err := n.Runtime.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	c := waitContainer(t, n.Runtime, "default", "files", "c", 30*time.Second, exited)
	if log := readLog(t, c); c.ExitCode != 0 || !strings.Contains(log, "read=from-the-host") {
		t.Fatalf("exit %d, log %q", c.ExitCode, log)
	}
	if b, err := os.ReadFile(made); err != nil || string(b) != "from-the-container\n" {
		t.Fatalf("host file %s holds %q, %v", made, b, err)
	}

	wrong := apply.PodSpec{
		Namespace: "default", Name: "wrong",
		Volumes:    []apply.Volume{{Name: "sock", HostPath: given, HostPathType: "Socket"}},
		Containers: []apply.ContainerSpec{busybox("c", "exec sleep 3600")},
	}
	wrong.Containers[0].Mounts = []apply.Mount{{Volume: "sock", Destination: "/run/app.sock"}}
	_, err := n.Runtime.RunPod(ctx, wrong)
	if !errors.Is(err, apply.ErrHostPathType) || !strings.Contains(err.Error(), "volume sock") || !strings.Contains(err.Error(), given) {
		t.Fatalf("RunPod: error %v, want ErrHostPathType naming volume sock and %s", err, given)
	}
	if p, ok := findPod(t, n.Runtime, "default", "wrong"); ok {
		if _, started := p.Container("c"); started {
			t.Fatalf("a container of the refused pod exists: %+v", p)
		}
	}
}
