package applytest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
)

// NetNSDir is where named network namespaces live, as iproute2 keeps
// them: `nsenter --net=/var/run/netns/NAME` and `ip netns` see them.
const NetNSDir = "/var/run/netns"

// NetNS creates a network namespace for the test, bind-mounted in a
// temporary directory, and returns its path. Tests put their bridges and
// peers there, so that they never change the machine's own network. The
// namespace is removed when the test ends.
func NetNS(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "gtn")
	if err != nil {
		t.Fatal(err)
	}
	if err := nsfile.Create(dir, "", nsfile.Net); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("create test netns: %v", err)
	}
	t.Cleanup(func() {
		if err := nsfile.Remove(dir, nsfile.Net); err != nil {
			t.Errorf("remove test netns: %v", err)
		}
		os.RemoveAll(dir)
	})
	return nsfile.Path(dir, nsfile.Net)
}

// createNamedNetNS makes the network namespace NetNSDir/name and returns
// its path. The thread that made it goes back to its own namespace (or,
// failing that, ends with its goroutine).
func createNamedNetNS(name string) (string, error) {
	path := filepath.Join(NetNSDir, name)
	if err := os.MkdirAll(NetNSDir, 0o755); err != nil {
		return "", err
	}
	madeNetNS(name)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		// NewNamed unshares this thread's network namespace, then mounts
		// it on path.
		ns, err := netns.NewNamed(name)
		if err == nil {
			ns.Close()
		} else {
			os.Remove(path)
		}
		if serr := netns.Set(own); serr != nil {
			errc <- errors.Join(err, fmt.Errorf("return to own netns: %w", serr))
			return // the thread stays locked and ends with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		return "", fmt.Errorf("create netns %s: %w", name, err)
	}
	return path, nil
}

// removeNamedNetNS unmounts and removes NetNSDir/name, if it exists. The
// namespace ends, and its links with it, when no process is left in it.
func removeNamedNetNS(name string) error {
	path := filepath.Join(NetNSDir, name)
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	return os.Remove(path)
}
