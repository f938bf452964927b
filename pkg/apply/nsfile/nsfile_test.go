package nsfile

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gitorch/gitorch/internal/testenv"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestCreateKeepsExistingAndRemoveCleansUp(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "ns")
	t.Cleanup(func() { _ = UnmountUnder(filepath.Dir(dir)) })
	own := inode(t, "/proc/self/ns/net")
	if err := Create(dir, "pod-host", Net, UTS); err != nil {
		t.Fatal(err)
	}
	for _, k := range []Kind{Net, UTS} {
		if !IsNamespace(Path(dir, k)) {
			t.Fatalf("%s is not a namespace", Path(dir, k))
		}
	}
	first := inode(t, Path(dir, Net))
	if first == own {
		t.Fatal("the new network namespace is the process's own")
	}
	if got := inode(t, "/proc/self/ns/net"); got != own {
		t.Fatal("creating a namespace moved the process's main thread")
	}
	// Again with one more kind: the existing ones are kept.
	if err := Create(dir, "pod-host", Net, UTS, IPC); err != nil {
		t.Fatal(err)
	}
	if inode(t, Path(dir, Net)) != first {
		t.Fatal("Create replaced an existing namespace")
	}
	// Do runs on a thread inside the namespace.
	var inside uint64
	if err := Do(Path(dir, Net), func() error {
		var st unix.Stat_t
		err := unix.Stat("/proc/thread-self/ns/net", &st)
		inside = st.Ino
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside != first {
		t.Fatalf("Do ran in namespace %d, want %d", inside, first)
	}
	if err := Remove(dir, Net, UTS, IPC); err != nil {
		t.Fatal(err)
	}
	for _, k := range []Kind{Net, UTS, IPC} {
		if _, err := os.Stat(Path(dir, k)); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", Path(dir, k), err)
		}
	}
	if err := Remove(dir, Net); err != nil {
		t.Errorf("removing again: %v", err)
	}
}

func TestCreateSetsHostnameInNewUTS(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "ns")
	t.Cleanup(func() { _ = UnmountUnder(filepath.Dir(dir)) })
	before, _ := os.Hostname()
	if err := Create(dir, "pod-host-test", UTS); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Hostname(); after != before {
		t.Fatalf("the node's hostname changed from %q to %q", before, after)
	}
	// Read the hostname inside the namespace from a thread that joins it.
	got := make(chan string, 1)
	go func() {
		// Locked and never unlocked: the thread ends with the goroutine.
		lockAndJoinUTS(t, Path(dir, UTS), got)
	}()
	if h := <-got; h != "pod-host-test" {
		t.Fatalf("hostname in the pod's UTS namespace = %q", h)
	}
	if err := Remove(dir, UTS); err != nil {
		t.Fatal(err)
	}
}
