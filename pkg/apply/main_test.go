package apply_test

import (
	"os"
	"testing"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

// TestMain fails the run if the tests leave mounts, runc state, processes,
// namespaces or links behind (see applytest.Main).
func TestMain(m *testing.M) { os.Exit(applytest.Main(m)) }
