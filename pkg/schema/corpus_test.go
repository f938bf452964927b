package schema

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// corpusMinAccepted is the number of documents of supported kinds in the
// kubernetes/examples corpus that gitorch accepts. The test fails when a
// change accepts fewer; raise it when a change accepts more.
const corpusMinAccepted = 186

// corpusDir is the corpus of real-world manifests: a copy of the YAML
// files of kubernetes/examples kept in testdata (Apache-2.0, see its
// SOURCE.md and LICENSE), or the directory $GITORCH_CORPUS names.
func corpusDir(t testing.TB) string {
	d := "testdata/corpus/kubernetes-examples"
	if e := os.Getenv("GITORCH_CORPUS"); e != "" {
		d = e
	}
	if _, err := os.Stat(d); err != nil {
		t.Fatalf("corpus not found: %v", err)
	}
	return d
}

type corpusStats struct {
	files, documents, supported, accepted int
	unsupported                           map[string]int // kind → documents
	ignored                               map[string]int // field → warnings
	refused                               map[string][]string
	other                                 []string
}

// TestCorpus validates every YAML file of the kubernetes/examples
// repository, each on its own as "gitorch validate FILE" does (a directory
// often holds alternative versions of one object, which together would be
// duplicates), and checks that nothing crashes and that the accepted count
// does not fall. Run with -v for the table that docs/compatibility.md
// reports.
func TestCorpus(t *testing.T) {
	root := corpusDir(t)
	st := measureCorpus(t, root)
	t.Logf("files %d, documents %d, of supported kinds %d, accepted %d (%.1f%%), refused %d",
		st.files, st.documents, st.supported, st.accepted,
		100*float64(st.accepted)/float64(max(st.supported, 1)), st.supported-st.accepted)
	var kinds []string
	for k := range st.unsupported {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Logf("unsupported kind %s: %d", k, st.unsupported[k])
	}
	var reasons []string
	for r := range st.refused {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		t.Logf("refused (%d): %s", len(st.refused[r]), r)
		for _, ex := range st.refused[r] {
			t.Logf("    %s", ex)
		}
	}
	var warned []string
	for w := range st.ignored {
		warned = append(warned, w)
	}
	sort.Slice(warned, func(i, j int) bool {
		if st.ignored[warned[i]] != st.ignored[warned[j]] {
			return st.ignored[warned[i]] > st.ignored[warned[j]]
		}
		return warned[i] < warned[j]
	})
	for _, w := range warned {
		t.Logf("warning (%d): %s", st.ignored[w], w)
	}
	for _, o := range st.other {
		t.Logf("other: %s", o)
	}
	if st.accepted < corpusMinAccepted {
		t.Errorf("accepted %d documents of supported kinds, fewer than the %d accepted before", st.accepted, corpusMinAccepted)
	}
}

var (
	quotedRE = regexp.MustCompile(`"[^"]*"`)
	numberRE = regexp.MustCompile(`\b\d+\b`)
)

// reason reduces a message to its kind, for counting.
func reason(f Finding) string {
	field := numberRE.ReplaceAllString(f.Field, "N")
	if strings.HasPrefix(f.Message, "ignored: ") {
		return "ignored: " + field
	}
	msg := quotedRE.ReplaceAllString(f.Message, "…")
	if i := strings.Index(msg, " is not defined in the repository"); i > 0 {
		msg = strings.Fields(msg)[0] + " … is not defined in the repository"
	}
	if i := strings.Index(msg, ": already defined at"); i > 0 {
		msg = "duplicate object"
	}
	return field + ": " + msg
}

func measureCorpus(t *testing.T, root string) *corpusStats {
	st := &corpusStats{unsupported: map[string]int{}, refused: map[string][]string{}, ignored: map[string]int{}}
	dirs := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && fileKind(p) == "yaml" {
			rel, _ := filepath.Rel(root, p)
			dirs[filepath.Dir(rel)] = append(dirs[filepath.Dir(rel)], filepath.Base(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, dir := range names {
		for _, file := range dirs[dir] {
			st.files++
			st.add(t, root, dir, file)
		}
	}
	for r := range st.refused {
		sort.Strings(st.refused[r])
	}
	return st
}

func (st *corpusStats) add(t *testing.T, root, dir, file string) {
	res, err := Load(os.DirFS(filepath.Join(root, dir)), Options{Paths: []string{file}})
	if err != nil {
		t.Fatalf("%s: %v", filepath.Join(dir, file), err)
	}
	type id struct{ file, kind, ns, name string }
	bad := map[id]Finding{}
	for _, f := range res.Findings {
		if f.Severity != SeverityError {
			st.ignored[reason(f)]++
			continue
		}
		switch {
		case f.Kind != "" && kinds[f.Kind] == nil:
			st.unsupported[f.Kind]++
			st.documents++
		case f.Kind == "":
			st.other = append(st.other, filepath.Join(dir, f.String()))
			st.documents++
		default:
			k := id{f.Pos.File, f.Kind, f.Namespace, f.Name}
			if _, ok := bad[k]; !ok {
				bad[k] = f
			}
		}
	}
	accepted := 0
	for _, o := range res.Objects {
		if _, ok := bad[id{o.Pos.File, o.Kind, o.Namespace, o.Name}]; !ok {
			accepted++
		}
	}
	for _, f := range bad {
		r := reason(f)
		st.refused[r] = append(st.refused[r], filepath.Join(dir, f.String()))
	}
	st.accepted += accepted
	st.supported += accepted + len(bad)
	st.documents += accepted + len(bad)
}
