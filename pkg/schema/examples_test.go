package schema

import (
	"os"
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
	// Services each), nginx's and hello's Deployment and Service, hello's
	// ConfigMap, and the CUE copy's Namespace.
	if kinds["Deployment"] != 8 || kinds["Service"] != 8 || kinds["Namespace"] != 1 || kinds["ConfigMap"] != 1 {
		t.Errorf("objects by kind = %v, want 8 Deployments, 8 Services, 1 Namespace, 1 ConfigMap", kinds)
	}
}
