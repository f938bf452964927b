package schema

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary bytes to the loader as a YAML, a JSON and a CUE
// file. It must never panic, every finding must point into the file, and a
// load from the cache (in memory, and saved and restored) must find the
// same as the first.
// Run: go test -run NONE -fuzz FuzzLoad -fuzztime 5m ./pkg/schema
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		deployment,
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, targetPort: http}], selector: {app: x}}\n",
		"---\n---\n",
		`{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}}`,
		"package x\n\na: {apiVersion: \"v1\", kind: \"Namespace\", metadata: name: \"n\"}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: &a x}\nspec: *a\n",
	} {
		f.Add([]byte(seed))
	}
	// A Secret the sops tool encrypted.
	if b, err := os.ReadFile("../secrets/testdata/flux/global-secret.yaml"); err == nil {
		f.Add(b)
	} else {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{"m.yaml", "m.json", "m.cue"} {
			res, err := Load(fstest.MapFS{name: {Data: data}}, Options{Workers: 1})
			if err != nil {
				t.Fatalf("%s: Load returned an error for content (must be a finding): %v", name, err)
			}
			for _, fd := range res.Findings {
				if fd.Pos.File != name {
					t.Fatalf("%s: finding outside the file: %s", name, fd)
				}
				if fd.Message == "" {
					t.Fatalf("%s: finding without a message: %+v", name, fd)
				}
			}
			for _, o := range res.Objects {
				if o.Obj == nil || strings.TrimSpace(o.Kind) == "" {
					t.Fatalf("%s: object without a value: %+v", name, o)
				}
			}
			cache := NewCache(0)
			fsys := fstest.MapFS{name: {Data: data}}
			for _, step := range []string{"first", "cached"} {
				got, err := Load(fsys, Options{Workers: 1, Cache: cache})
				if err != nil {
					t.Fatal(err)
				}
				sameResult(t, name+" "+step, got, res)
			}
			var buf bytes.Buffer
			if err := cache.Save(&buf); err != nil {
				t.Fatalf("%s: save: %v", name, err)
			}
			restored := NewCache(0)
			if err := restored.Restore(&buf); err != nil {
				t.Fatalf("%s: restore: %v", name, err)
			}
			got, err := Load(fsys, Options{Workers: 1, Cache: restored})
			if err != nil {
				t.Fatal(err)
			}
			sameResult(t, name+" restored", got, res)
		}
	})
}
