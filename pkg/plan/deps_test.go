package plan

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering pins what plan may depend on: it decides, it does not act,
// so no runtime, kernel, network, Git or manifest-loading code, and no
// clock or randomness of its own.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{
		"github.com/gitorch/gitorch/pkg/schema", "github.com/gitorch/gitorch/pkg/source",
		"github.com/gitorch/gitorch/pkg/apply", "github.com/gitorch/gitorch/pkg/gossip",
		"github.com/gitorch/gitorch/pkg/node", "github.com/containerd/", "github.com/google/nftables",
		"github.com/vishvananda/", "github.com/go-git/", "github.com/hashicorp/memberlist",
		"cuelang.org/",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f) && (strings.HasSuffix(f, "/") || strings.HasPrefix(dep, f+"/")) {
				t.Errorf("pkg/plan depends on %s", dep)
			}
		}
	}
	// Direct imports: no I/O, clock or randomness. (k8s.io/apimachinery
	// brings net/http in transitively; plan itself never uses it.)
	out, err = exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		switch imp {
		case "os", "os/exec", "net", "net/http", "time", "math/rand", "math/rand/v2", "crypto/rand", "io/fs", "syscall":
			t.Errorf("pkg/plan imports %s", imp)
		}
	}
}
