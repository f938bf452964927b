package applytest

import (
	"os"
	"testing"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
)

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
