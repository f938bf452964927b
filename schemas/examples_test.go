package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/encoding/yaml"
)

// exampleRepo is the GitOps repository a new user starts from.
const exampleRepo = "../examples/repo"

// exampleObject is one object of the example repository.
type exampleObject struct {
	where string // file, and document or CUE path
	val   cue.Value
}

// TestExampleRepo checks that every object of examples/repo, in YAML and in
// CUE, is valid against its definition, and that the objects fit together:
// no two share kind, namespace and name, nodePorts differ, selectors match
// their templates and every Service selects some workload.
func TestExampleRepo(t *testing.T) {
	ctx := cuecontext.New()
	pkg := compile(t, ctx)
	objs := exampleYAML(t, ctx)
	cueObjs := exampleCUE(t, ctx, path.Join(exampleRepo, "guestbook-cue"))
	if len(cueObjs) != 7 {
		t.Errorf("guestbook-cue has %d objects, want 7 (a Namespace, 3 Deployments, 3 Services)", len(cueObjs))
	}
	objs = append(objs, cueObjs...)

	seen := map[string]string{}
	nodePorts := map[int64]string{}
	templates := map[string][]map[string]string{} // namespace → template labels
	var services []exampleObject
	for _, o := range objs {
		kind := str(o.val, "kind")
		if err := pkg.LookupPath(cue.ParsePath("#" + kind)).Unify(o.val).Validate(cue.Concrete(true)); err != nil {
			t.Errorf("%s: %s is invalid:\n%s", o.where, kind, cueerrors.Details(err, nil))
			continue
		}
		ns := str(o.val, "metadata", "namespace")
		if ns == "" && kind != "Namespace" {
			ns = "default"
		}
		id := kind + "/" + ns + "/" + str(o.val, "metadata", "name")
		if prev, ok := seen[id]; ok {
			t.Errorf("%s: %s is also defined at %s", o.where, id, prev)
		}
		seen[id] = o.where
		switch kind {
		case "Service":
			services = append(services, o)
			ports, _ := o.val.LookupPath(cue.ParsePath("spec.ports")).List()
			for ports.Next() {
				if np, err := ports.Value().LookupPath(cue.ParsePath("nodePort")).Int64(); err == nil {
					if prev, ok := nodePorts[np]; ok {
						t.Errorf("%s: nodePort %d is also used at %s", o.where, np, prev)
					}
					nodePorts[np] = o.where
				}
			}
		case "Deployment":
			labels := strMap(o.val, "spec", "template", "metadata", "labels")
			for k, v := range strMap(o.val, "spec", "selector", "matchLabels") {
				if labels[k] != v {
					t.Errorf("%s: selector %s=%s does not match the template's labels %v", o.where, k, v, labels)
				}
			}
			templates[ns] = append(templates[ns], labels)
		}
	}
	for _, s := range services {
		ns := str(s.val, "metadata", "namespace")
		if ns == "" {
			ns = "default"
		}
		sel := strMap(s.val, "spec", "selector")
		if !selectsAny(sel, templates[ns]) {
			t.Errorf("%s: Service selector %v selects no Deployment of namespace %s", s.where, sel, ns)
		}
	}
	if t.Failed() {
		return
	}
	var ids []string
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	t.Logf("%d objects: %s", len(ids), strings.Join(ids, ", "))
}

// exampleYAML reads every YAML document under the example repository.
func exampleYAML(t *testing.T, ctx *cue.Context) []exampleObject {
	var out []exampleObject
	err := filepath.WalkDir(exampleRepo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (path.Ext(p) != ".yaml" && path.Ext(p) != ".yml") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(p, bytes.NewReader(src))
		for i := 0; ; i++ {
			expr, err := dec.Extract()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			v := ctx.BuildExpr(expr)
			if err := v.Err(); err != nil {
				return fmt.Errorf("%s: document %d: %w", p, i, err)
			}
			out = append(out, exampleObject{where: fmt.Sprintf("%s (document %d)", p, i), val: v})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no YAML documents under %s", exampleRepo)
	}
	return out
}

// exampleCUE builds the .cue files of dir as one package, as gitorch does,
// and returns every struct with both apiVersion and kind.
func exampleCUE(t *testing.T, ctx *cue.Context, dir string) []exampleObject {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	inst := build.NewContext().NewInstance(dir, nil)
	for _, e := range entries {
		if path.Ext(e.Name()) != ".cue" {
			continue
		}
		src, err := os.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := inst.AddFile(path.Join(dir, e.Name()), src); err != nil {
			t.Fatalf("parse %s: %v", e.Name(), err)
		}
	}
	v := ctx.BuildInstance(inst)
	if err := v.Validate(cue.Concrete(true)); err != nil {
		t.Fatalf("%s: %s", dir, cueerrors.Details(err, nil))
	}
	var out []exampleObject
	var walk func(v cue.Value)
	walk = func(v cue.Value) {
		if v.IncompleteKind() != cue.StructKind {
			return
		}
		if v.LookupPath(cue.ParsePath("apiVersion")).Exists() && v.LookupPath(cue.ParsePath("kind")).Exists() {
			out = append(out, exampleObject{where: dir + ": " + v.Path().String(), val: v})
			return
		}
		it, err := v.Fields()
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			walk(it.Value())
		}
	}
	walk(v)
	return out
}

func str(v cue.Value, sel ...string) string {
	s, _ := v.LookupPath(cue.MakePath(strSelectors(sel)...)).String()
	return s
}

func strMap(v cue.Value, sel ...string) map[string]string {
	var m map[string]string
	_ = v.LookupPath(cue.MakePath(strSelectors(sel)...)).Decode(&m)
	return m
}

func strSelectors(sel []string) []cue.Selector {
	out := make([]cue.Selector, len(sel))
	for i, s := range sel {
		out[i] = cue.Str(s)
	}
	return out
}

func selectsAny(sel map[string]string, templates []map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
outer:
	for _, labels := range templates {
		for k, v := range sel {
			if labels[k] != v {
				continue outer
			}
		}
		return true
	}
	return false
}
