package plan

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayering pins what plan may depend on: it decides, it does not act,
// so no runtime, kernel, network, Git or manifest-loading code, and no
// randomness of its own.
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
		case "os", "os/exec", "net", "net/http", "math/rand", "math/rand/v2", "crypto/rand", "io/fs", "syscall",
			"github.com/gitorch/gitorch/pkg/clock":
			t.Errorf("pkg/plan imports %s", imp)
		}
	}
}

// TestNoClockReads: plan may use the time package's types (it takes now
// as an argument), but never reads the clock or waits.
func TestNoClockReads(t *testing.T) {
	banned := map[string]bool{"Now": true, "Since": true, "Until": true, "After": true, "AfterFunc": true,
		"NewTimer": true, "NewTicker": true, "Tick": true, "Sleep": true}
	for _, dir := range []string{".", "../backoff"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			timeName := ""
			for _, imp := range f.Imports {
				if imp.Path.Value == `"time"` {
					timeName = "time"
					if imp.Name != nil {
						timeName = imp.Name.Name
					}
				}
			}
			if timeName == "" {
				continue
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == timeName && banned[sel.Sel.Name] {
						t.Errorf("%s reads the clock: time.%s", name, sel.Sel.Name)
					}
				}
				return true
			})
		}
	}
}
