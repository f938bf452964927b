package applytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Leftovers finds what a test leaves: a mount and a file under the
// temporary directory, a process naming it, runc state of a containerd
// namespace a test made, and a named network namespace a test made; and
// finds nothing once they are gone.
func TestLeftoversFindsWhatTestsLeave(t *testing.T) {
	testenv.RequireRoot(t)
	links, err := linkNames()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if left := Leftovers(tmp, links); len(left) != 0 {
		t.Fatalf("before anything is left: %q", left)
	}

	point := filepath.Join(tmp, "m")
	if err := os.Mkdir(point, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", point, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(point, syscall.MNT_DETACH) })
	sleeper := exec.Command("/bin/sh", "-c", "sleep 600; :", tmp)
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	ns := "gitorch-test-leak" + RandomHex(4)
	madeNamespace(ns)
	runc := filepath.Join(SharedRuncRoot, ns)
	if err := os.MkdirAll(runc, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runc) })
	netnsName := "gt-leak" + RandomHex(3)
	if _, err := createNamedNetNS(netnsName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNamedNetNS(netnsName) })

	left := Leftovers(tmp, links)
	for _, want := range []string{"mount " + point, "file " + point, "runc state " + runc, "network namespace " + filepath.Join(NetNSDir, netnsName)} {
		if !slices.Contains(left, want) {
			t.Errorf("Leftovers does not list %q: %q", want, left)
		}
	}
	if !slices.ContainsFunc(left, func(s string) bool { return strings.HasPrefix(s, "process ") && strings.Contains(s, "sleep 600") }) {
		t.Errorf("Leftovers does not list the process naming %s: %q", tmp, left)
	}

	sleeper.Process.Kill()
	sleeper.Wait()
	if err := syscall.Unmount(point, 0); err != nil {
		t.Fatal(err)
	}
	os.Remove(point)
	os.RemoveAll(runc)
	if err := removeNamedNetNS(netnsName); err != nil {
		t.Fatal(err)
	}
	if left := Leftovers(tmp, links); len(left) != 0 {
		t.Fatalf("after removing them: %q", left)
	}
}

// The private containerd keeps runc's state in its own directory: after
// it stops, nothing of it is in /run/containerd/runc.
func TestContainerdLeavesNoRuncState(t *testing.T) {
	var cd *Containerd
	t.Run("run", func(t *testing.T) {
		n := NewNode(t, NodeOptions{})
		cd = n.CD
		ctx := t.Context()
		if _, err := n.Runtime.RunPod(ctx, apply.PodSpec{Namespace: "default", Name: "sleeper", Containers: []apply.ContainerSpec{
			{Name: "c", Image: BusyboxRef, Command: []string{"sleep", "600"}},
		}}); err != nil {
			t.Fatal(err)
		}
		if entries, err := os.ReadDir(filepath.Join(cd.RuncRoot, cd.Namespace)); err != nil || len(entries) != 1 {
			t.Fatalf("runc state in %s: %v, %v", cd.RuncRoot, entries, err)
		}
	})
	if cd == nil {
		return
	}
	for _, p := range []string{filepath.Join(SharedRuncRoot, cd.Namespace), cd.Dir} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s remains after the test", p)
		}
	}
}
