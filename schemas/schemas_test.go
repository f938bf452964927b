package schemas

import (
	"io/fs"
	"path"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/encoding/yaml"
)

// kinds are the definitions pkg/schema looks up, one per supported kind.
var kinds = []string{"Namespace", "Pod", "Deployment", "ReplicaSet", "ReplicationController",
	"DaemonSet", "StatefulSet", "Job", "Service", "ConfigMap", "Secret"}

// compile builds the embedded files as one instance, the way pkg/schema
// does.
func compile(t testing.TB, ctx *cue.Context) cue.Value {
	t.Helper()
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	inst := build.NewContext().NewInstance("schemas", nil)
	for _, e := range entries {
		if path.Ext(e.Name()) != ".cue" {
			continue
		}
		src, err := fs.ReadFile(FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := inst.AddFile(e.Name(), src); err != nil {
			t.Fatalf("parse %s: %v", e.Name(), err)
		}
	}
	pkg := ctx.BuildInstance(inst)
	if err := pkg.Err(); err != nil {
		t.Fatalf("compile schemas: %v", errors.Details(err, nil))
	}
	return pkg
}

// check unifies a YAML document with the definition of its kind.
func check(t testing.TB, pkg cue.Value, kind, doc string) error {
	t.Helper()
	f, err := yaml.Extract(kind+".yaml", []byte(doc))
	if err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	val := pkg.Context().BuildFile(f)
	if err := val.Err(); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	def := pkg.LookupPath(cue.ParsePath("#" + kind))
	if !def.Exists() {
		t.Fatalf("no definition #%s", kind)
	}
	return def.Unify(val).Validate(cue.Concrete(true))
}

// TestCompile checks that the embedded files build as one package with
// every definition pkg/schema needs, and that no definition is an error on
// its own.
func TestCompile(t *testing.T) {
	pkg := compile(t, cuecontext.New())
	if err := pkg.Validate(); err != nil {
		t.Fatalf("schemas: %v", errors.Details(err, nil))
	}
	for _, k := range kinds {
		def := pkg.LookupPath(cue.ParsePath("#" + k))
		if !def.Exists() {
			t.Errorf("no definition #%s", k)
			continue
		}
		if err := def.Validate(); err != nil {
			t.Errorf("#%s: %v", k, errors.Details(err, nil))
		}
		if !def.IsClosed() {
			t.Errorf("#%s is not closed", k)
		}
	}
}
