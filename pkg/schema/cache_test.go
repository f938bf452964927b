package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"cuelang.org/go/cue/ast"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gitorch/gitorch/schemas"
)

// hashedFS serves a MapFS with the BlobHash of a Git snapshot.
type hashedFS struct{ fstest.MapFS }

func (h hashedFS) BlobHash(name string) (string, error) {
	data, err := fs.ReadFile(h.MapFS, name)
	if err != nil {
		return "", err
	}
	return gitBlobHash(data), nil
}

// editVariants are the contents a file of the random trees takes: valid
// objects, errors and warnings of one document, and documents whose
// findings depend on other files (references, duplicates, selectors).
func editVariants(name string) []string {
	return []string{
		fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {level: info}\n", name),
		fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {level: %s}\n", name),
		fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers:
      - name: main
        image: app:1
        ports: [{containerPort: 8080, name: http}]
        env:
        - name: LEVEL
          valueFrom: {configMapKeyRef: {name: shared, key: level}}
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec:
  selector: {app: %[1]s}
  ports: [{port: 80, targetPort: http, nodePort: 30080, name: web}]
  type: NodePort
`, name),
		fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  contianers: [{name: a, image: b}]\n", name),
		fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  priorityClassName: high\n  containers: [{name: a, image: b, envFrom: [{configMapRef: {name: %s}}]}]\n", name, name),
		"apiVersion: v1\nkind: Service\nmetadata: {name: same}\nspec:\n  ports: [{port: 80, targetPort: missing}]\n  selector: {app: x}\n",
		"kind: [unclosed\n",
		"# nothing but a comment\n",
		"apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: listed}}\n- {apiVersion: v1, kind: Secret, metadata: {name: listed}, stringData: {k: v}}\n",
	}
}

var cueVariants = []string{
	"package apps\n\ncm: {apiVersion: \"v1\", kind: \"ConfigMap\", metadata: name: \"cue-\" + suffix}\n",
	"package apps\n\ncm: {apiVersion: \"v1\", kind: \"ConfigMap\", metadata: nmae: \"x\"}\n",
	"package apps\n\nsuffix: \"a\"\n",
	"package apps\n\nsuffix: \"b\"\n",
	"package apps\n\nsuffix: 1\n",
}

// comparable renders a result for comparison with another load.
func comparableResult(t *testing.T, res *Result) (objs []string, findings []Finding) {
	t.Helper()
	for _, o := range res.Objects {
		data, err := json.Marshal(o.Obj)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, fmt.Sprintf("%v %s %s %s/%s %s", o.Pos, o.APIVersion, o.Kind, o.Namespace, o.Name, data))
	}
	return objs, res.Findings
}

func sameResult(t *testing.T, step string, got, want *Result) {
	t.Helper()
	go1, gf := comparableResult(t, got)
	wo, wf := comparableResult(t, want)
	if !slices.Equal(go1, wo) {
		t.Fatalf("%s: objects differ from a cold load:\n got %q\nwant %q", step, go1, wo)
	}
	if !reflect.DeepEqual(gf, wf) {
		t.Fatalf("%s: findings differ from a cold load:\n got %v\nwant %v", step, gf, wf)
	}
	if got.Files != want.Files {
		t.Fatalf("%s: %d files, a cold load read %d", step, got.Files, want.Files)
	}
}

// TestCacheRandomEdits applies random edit sequences to a tree (changed,
// added, removed and renamed files, YAML and a CUE package) and checks
// after each that a load with a cache finds exactly what a cold load
// finds, with the unchanged files taken from the cache; a small cache
// evicts and still agrees.
func TestCacheRandomEdits(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 14))
			fsys := fstest.MapFS{}
			var names []string
			for i := 0; i < 8; i++ {
				names = append(names, fmt.Sprintf("dir%d/f%d.yaml", i%3, i))
			}
			for _, n := range names {
				v := editVariants(path2name(n))
				fsys[n] = &fstest.MapFile{Data: []byte(v[rng.IntN(len(v))])}
			}
			fsys["pkg/a.cue"] = &fstest.MapFile{Data: []byte(cueVariants[0])}
			fsys["pkg/b.cue"] = &fstest.MapFile{Data: []byte(cueVariants[2])}

			big, small, saved := NewCache(1000), NewCache(4), NewCache(1000)
			seen := map[string]bool{}
			for step := 0; step < 25; step++ {
				var tree fs.FS = fsys
				if rng.IntN(2) == 0 {
					tree = hashedFS{fsys}
				}
				jobs, _, err := collect(tree, nil)
				if err != nil {
					t.Fatal(err)
				}
				wantHits, wantSaved := 0, 0
				var keys []string
				for _, j := range jobs {
					k, _, err := jobKey(tree, j)
					if err != nil {
						t.Fatal(err)
					}
					if seen[k] {
						wantHits += len(j.files)
						if j.kind != "cue" {
							wantSaved += len(j.files)
						}
					}
					keys = append(keys, k)
				}
				cold, err := Load(tree, Options{})
				if err != nil {
					t.Fatal(err)
				}
				warm, err := Load(tree, Options{Cache: big})
				if err != nil {
					t.Fatal(err)
				}
				bounded, err := Load(tree, Options{Cache: small, Workers: 1})
				if err != nil {
					t.Fatal(err)
				}
				// A cache saved by another process, restored.
				var buf bytes.Buffer
				if err := saved.Save(&buf); err != nil {
					t.Fatal(err)
				}
				saved = NewCache(1000)
				if err := saved.Restore(&buf); err != nil {
					t.Fatal(err)
				}
				restored, err := Load(tree, Options{Cache: saved})
				if err != nil {
					t.Fatal(err)
				}
				desc := fmt.Sprintf("step %d (%s)", step, strings.Join(sortedNames(fsys), " "))
				sameResult(t, desc+" restored cache", restored, cold)
				// The YAML files hit; a CUE package only when it has no
				// object (objects of CUE are not saved).
				if restored.CachedFiles < wantSaved || restored.CachedFiles > wantHits {
					t.Fatalf("%s: %d files from the restored cache, want %d to %d", desc, restored.CachedFiles, wantSaved, wantHits)
				}
				sameResult(t, desc, warm, cold)
				sameResult(t, desc+" small cache", bounded, cold)
				if warm.CachedFiles != wantHits {
					t.Fatalf("%s: %d files from the cache, want %d", desc, warm.CachedFiles, wantHits)
				}
				if cold.CachedFiles != 0 {
					t.Fatalf("%s: a load without a cache reports %d cached files", desc, cold.CachedFiles)
				}
				if n := small.Objects(); n > 4 && small.Len() > 1 {
					t.Fatalf("%s: cache bounded to 4 objects holds %d in %d files", desc, n, small.Len())
				}
				for _, k := range keys {
					seen[k] = true
				}
				edit(rng, fsys, &names)
			}
		})
	}
}

func path2name(p string) string {
	base := p[strings.LastIndex(p, "/")+1:]
	return strings.TrimSuffix(base, ".yaml")
}

func sortedNames(fsys fstest.MapFS) []string {
	var out []string
	for n := range fsys {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// edit makes one random change to the tree.
func edit(rng *rand.Rand, fsys fstest.MapFS, names *[]string) {
	switch op := rng.IntN(10); {
	case op < 5 && len(*names) > 0: // change a file's content
		n := (*names)[rng.IntN(len(*names))]
		v := editVariants(path2name(n))
		fsys[n] = &fstest.MapFile{Data: []byte(v[rng.IntN(len(v))])}
	case op < 6: // add a file
		n := fmt.Sprintf("dir%d/n%d.yaml", rng.IntN(3), rng.IntN(1000))
		v := editVariants(path2name(n))
		fsys[n] = &fstest.MapFile{Data: []byte(v[rng.IntN(len(v))])}
		*names = append(*names, n)
	case op < 7 && len(*names) > 1: // remove a file
		i := rng.IntN(len(*names))
		delete(fsys, (*names)[i])
		*names = append((*names)[:i], (*names)[i+1:]...)
	case op < 8 && len(*names) > 0: // rename a file, content unchanged
		i := rng.IntN(len(*names))
		n := fmt.Sprintf("dir%d/r%d.yaml", rng.IntN(3), rng.IntN(1000))
		fsys[n] = fsys[(*names)[i]]
		delete(fsys, (*names)[i])
		(*names)[i] = n
	default: // change a file of the CUE package
		n := []string{"pkg/a.cue", "pkg/b.cue"}[rng.IntN(2)]
		fsys[n] = &fstest.MapFile{Data: []byte(cueVariants[rng.IntN(len(cueVariants))])}
	}
}

// schemaOverlay is a schema tree of a comparable type, as schemaFS must be.
type schemaOverlay struct{ fstest.MapFS }

// TestCacheDroppedWithSchemas changes the schemas under a warm cache: the
// next load validates every file again against the new schemas.
func TestCacheDroppedWithSchemas(t *testing.T) {
	tree := fstest.MapFS{"app.yaml": {Data: []byte(editVariants("web")[2])}, "cm.yaml": {Data: []byte(editVariants("x")[1])}}
	cache := NewCache(0)
	first, err := Load(tree, Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if first.Errors() != 0 {
		t.Fatalf("tree invalid: %v", first.Findings)
	}
	overlay := &schemaOverlay{fstest.MapFS{}}
	entries, err := fs.ReadDir(schemas.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := fs.ReadFile(schemas.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "meta.cue" {
			// Ports above 1000 become invalid.
			data = []byte(strings.Replace(string(data), "#Port: int & >=1 & <=65535", "#Port: int & >=1 & <=1000", 1))
		}
		overlay.MapFS[e.Name()] = &fstest.MapFile{Data: data}
	}
	old := schemaFS
	schemaFS = overlay
	t.Cleanup(func() { schemaFS = old })

	again, err := Load(tree, Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if again.CachedFiles != 0 {
		t.Errorf("%d files from the cache after the schemas changed, want 0", again.CachedFiles)
	}
	if !strings.Contains(findings(again), "containerPort") {
		t.Errorf("new schemas not applied: findings %q, want one on containerPort 8080", findings(again))
	}
	cold, err := Load(tree, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "new schemas", again, cold)
}

func TestGitBlobHash(t *testing.T) {
	// git hash-object of "a\n" and of the empty file.
	for data, want := range map[string]string{"a\n": "78981922613b2afb6025042ff6bd878ac1994e85", "": "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"} {
		if got := gitBlobHash([]byte(data)); got != want {
			t.Errorf("gitBlobHash(%q) = %s, want %s", data, got, want)
		}
	}
}

// TestRestoredObjectsFindTheirFields checks that the objects of a restored
// cache find every field of their documents where those of a cold load do,
// and paths that go past what a document has.
func TestRestoredObjectsFindTheirFields(t *testing.T) {
	fsys := fstest.MapFS{}
	for i, v := range append(editVariants("x"), editVariants("y")[2]) {
		fsys[fmt.Sprintf("f%d.yaml", i)] = &fstest.MapFile{Data: []byte(v)}
	}
	cache := NewCache(0)
	cold, err := Load(fsys, Options{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := cache.Save(&buf); err != nil {
		t.Fatal(err)
	}
	restored := NewCache(0)
	if err := restored.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	warm, err := Load(fsys, Options{Cache: restored})
	if err != nil {
		t.Fatal(err)
	}
	if warm.CachedFiles != warm.Files || len(warm.Objects) != len(cold.Objects) {
		t.Fatalf("restored cache: %d of %d files, %d objects; want all files, %d objects", warm.CachedFiles, warm.Files, len(warm.Objects), len(cold.Objects))
	}
	checked := 0
	for i := range cold.Objects {
		c, w := &cold.Objects[i], &warm.Objects[i]
		e := c.src.ref.expr()
		if e == nil {
			t.Fatalf("%s: document not found again", c.id())
		}
		for _, p := range fieldPaths(e, nil) {
			for _, q := range [][]string{p, append(slices.Clone(p), "absent"), append(slices.Clone(p), "0", "x")} {
				if got, want := w.FieldPos(q...), c.FieldPos(q...); got != want {
					t.Errorf("%s: field %q at %v after a restore, %v before", c.id(), q, got, want)
				}
				checked++
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d paths checked", checked)
	}
}

// fieldPaths lists the paths of every field and list element of e.
func fieldPaths(e ast.Expr, prefix []string) [][]string {
	out := [][]string{prefix}
	switch n := e.(type) {
	case *ast.StructLit:
		for _, d := range n.Elts {
			if f, ok := d.(*ast.Field); ok {
				if name, ok := labelName(f.Label); ok {
					out = append(out, fieldPaths(f.Value, append(slices.Clone(prefix), name))...)
				}
			}
		}
	case *ast.ListLit:
		for i, el := range n.Elts {
			out = append(out, fieldPaths(el, append(slices.Clone(prefix), fmt.Sprint(i)))...)
		}
	}
	return out
}

// TestHasLabelsIsSelectorFromSet pins hasLabels to what the selector of
// labels.SelectorFromSet matches.
func TestHasLabelsIsSelectorFromSet(t *testing.T) {
	sets := []map[string]string{nil, {}, {"app": "a"}, {"app": "a", "tier": "b"}, {"app": "b"}, {"tier": "b"}, {"app": ""}}
	for _, sel := range sets {
		for _, l := range sets {
			want := labels.SelectorFromSet(sel).Matches(labels.Set(l))
			if got := hasLabels(l, sel); got != want {
				t.Errorf("hasLabels(%v, %v) = %v, SelectorFromSet says %v", l, sel, got, want)
			}
		}
	}
}
