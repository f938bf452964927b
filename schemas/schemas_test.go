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
	"DaemonSet", "StatefulSet", "Job", "CronJob", "PodDisruptionBudget", "Service", "ConfigMap", "Secret"}

// compile builds the embedded files as one instance, the way pkg/schema
// does.
func compile(t testing.TB, ctx *cue.Context) cue.Value {
	t.Helper()
	return compileWithout(t, ctx, "")
}

// compileWithout compiles the package without the file named skip.
func compileWithout(t testing.TB, ctx *cue.Context, skip string) cue.Value {
	t.Helper()
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	inst := build.NewContext().NewInstance("schemas", nil)
	for _, e := range entries {
		if path.Ext(e.Name()) != ".cue" || e.Name() == skip {
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

// TestClosedEverywhere walks every definition the way pkg/schema does when
// it looks for fields a document may not have: every struct of the schema
// must refuse an unknown field (a comprehension whose condition cannot be
// decided on the bare definition makes CUE answer "allowed"), except maps
// such as labels.
func TestClosedEverywhere(t *testing.T) {
	pkg := compile(t, cuecontext.New())
	for _, k := range kinds {
		walkSchema(t, pkg.LookupPath(cue.ParsePath("#"+k)), "#"+k, 0)
	}
}

func walkSchema(t *testing.T, v cue.Value, path string, depth int) {
	if depth > 20 {
		t.Fatalf("%s: schema nested too deep", path)
	}
	switch v.IncompleteKind() {
	case cue.BottomKind:
		t.Errorf("%s cannot be evaluated on its own (an `if` whose condition is not guarded with != _|_?): %v", path, v.Err())
	case cue.StructKind:
		if isMap(v) {
			return
		}
		if v.Allows(cue.Str("notAField")) {
			t.Errorf("%s allows any field", path)
		}
		it, err := v.Fields(cue.Optional(true))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for it.Next() {
			walkSchema(t, it.Value(), path+"."+it.Selector().Unquoted(), depth+1)
		}
	case cue.ListKind:
		walkSchema(t, v.LookupPath(cue.MakePath(cue.AnyIndex)), path+"[]", depth+1)
	}
}

// isMap reports whether a struct schema is a map, such as labels or a
// ConfigMap's data: patterns for its keys and no named fields.
func isMap(v cue.Value) bool {
	it, err := v.Fields(cue.Optional(true))
	return err == nil && !it.Next()
}
