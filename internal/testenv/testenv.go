// Package testenv says what a test needs from the machine: root, a
// program, a kernel feature. Under CI=true a missing prerequisite fails the
// test, since a skipped test there would pass without having run; on a
// developer's machine it skips, saying how to run it. It imports nothing of
// gitorch, so that every package's tests can use it.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// howTo is what a skipped test tells the reader to do.
const howTo = "run the tests as root with scripts/test.sh, which installs the Debian packages they need"

// InCI reports whether the tests run in CI (CI=true), where a missing
// prerequisite is a failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require stops the test unless ok: what says what is missing. Under CI it
// is t.Fatal, elsewhere t.Skip with how to run the test.
func Require(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("%s (CI=true: a missing prerequisite fails the test; scripts/test.sh installs them)", what)
	}
	t.Skipf("%s; to run this test, %s", what, howTo)
}

// RequireRoot stops the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "this test needs root (namespaces, mounts, containerd)")
}

// RequireBinary stops the test unless the program name is installed, and
// returns its path. It looks on PATH, then in /usr/sbin, /sbin, /usr/bin
// and /bin, where Debian puts programs that a user's PATH may lack.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := LookPath(name)
	Require(t, err == nil, fmt.Sprintf("%s is not installed", name))
	return p
}

// LookPath finds the program name as RequireBinary does.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}
