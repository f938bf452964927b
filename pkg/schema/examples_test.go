package schema

import (
	"os"
	"strings"
	"testing"
)

// TestExamplesRepoIsClean loads examples/repo, the repository a new user
// pushes first, through the whole loader: it must have no finding at all.
func TestExamplesRepoIsClean(t *testing.T) {
	res, err := Load(os.DirFS("../../examples/repo"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Findings {
		t.Errorf("examples/repo/%s", f)
	}
	kinds := map[string]int{}
	for _, o := range res.Objects {
		kinds[o.Kind]++
	}
	// The guestbook twice (YAML and CUE: three Deployments and three
	// Services each), hello's Deployment, Service and ConfigMap, and the
	// CUE copy's Namespace.
	if kinds["Deployment"] != 7 || kinds["Service"] != 7 || kinds["Namespace"] != 1 || kinds["ConfigMap"] != 1 {
		t.Errorf("objects by kind = %v, want 7 Deployments, 7 Services, 1 Namespace, 1 ConfigMap", kinds)
	}
	// Every pod runs on a node without registry access: its image is
	// one that scripts/demo.sh builds and imports.
	for _, o := range res.Objects {
		_, _, tmpl := workloadFields(o.Obj)
		if tmpl == nil {
			continue
		}
		for _, c := range append(tmpl.Spec.InitContainers, tmpl.Spec.Containers...) {
			if !strings.HasPrefix(c.Image, "gitorch.local/") {
				t.Errorf("%s/%s/%s: image %s needs a registry", o.Kind, o.Namespace, o.Name, c.Image)
			}
		}
	}
}
