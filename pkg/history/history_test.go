package history

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/object"
)

const webYAML = `# the web tier
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: IMAGE
`

func web(replicas, image string) string {
	return strings.NewReplacer("REPLICAS", replicas, "IMAGE", image).Replace(webYAML)
}

type testRepo struct {
	t    *testing.T
	dir  string
	repo *git.Repository
	when time.Time
}

func newTestRepo(t *testing.T) *testRepo {
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := repo.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.User.Name, cfg.User.Email = "Ops Person", "ops@example.com"
	if err := repo.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return &testRepo{t: t, dir: dir, repo: repo, when: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (r *testRepo) commit(msg, author string, files map[string]string) string {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	for name, data := range files {
		p := filepath.Join(r.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			r.t.Fatal(err)
		}
		if _, err := wt.Add(name); err != nil {
			r.t.Fatal(err)
		}
	}
	r.when = r.when.Add(time.Hour)
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: author, Email: strings.ToLower(author) + "@example.com", When: r.when}})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"deployment/web":  {"Deployment", "default", "web"},
		"deploy/web":      {"Deployment", "default", "web"},
		"sts/db":          {"StatefulSet", "default", "db"},
		"DaemonSet/agent": {"DaemonSet", "default", "agent"},
		"job/once":        {"Job", "default", "once"},
	} {
		got, err := ParseRef(in, "")
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"web", "pod/web", "deployment/", "deployment/a/b"} {
		if _, err := ParseRef(bad, ""); err == nil {
			t.Errorf("ParseRef(%q) succeeded", bad)
		}
	}
}

func TestLogListsTemplateChangesOnly(t *testing.T) {
	r := newTestRepo(t)
	c1 := r.commit("web 1.0", "Alice", map[string]string{"deploy/web.yaml": web("2", "web:1.0")})
	r.commit("more replicas", "Bob", map[string]string{"deploy/web.yaml": web("3", "web:1.0")})
	r.commit("unrelated", "Bob", map[string]string{"README": "hello"})
	c4 := r.commit("web 2.0", "Carol", map[string]string{"deploy/web.yaml": web("3", "web:2.0")})
	repo, err := Open(filepath.Join(r.dir, "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := ParseRef("deployment/web", "")
	log, err := repo.Log(context.Background(), ref, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[0].Commit != c4 || log[1].Commit != c1 {
		t.Fatalf("log %+v, want the commits web 2.0 and web 1.0", log)
	}
	if log[0].Author != "Carol <carol@example.com>" || log[0].Subject != "web 2.0" || log[0].File != "web.yaml" {
		t.Errorf("newest change %+v", log[0])
	}
	if log[0].TemplateHash == log[1].TemplateHash {
		t.Error("both changes have the same template hash")
	}
}

func TestUndoRestoresTheEarlierTemplateInANewCommit(t *testing.T) {
	r := newTestRepo(t)
	c1 := r.commit("web 1.0", "Alice", map[string]string{"web.yaml": web("2", "web:1.0")})
	r.commit("web 2.0, 3 replicas", "Carol", map[string]string{"web.yaml": web("3", "web:2.0")})
	repo, err := Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := ParseRef("deployment/web", "")
	ctx := context.Background()
	before, _ := repo.Log(ctx, ref, 100)
	u, err := repo.Undo(ctx, ref, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if u.Source != c1 || u.To != before[1].TemplateHash || u.From != before[0].TemplateHash {
		t.Errorf("undo %+v, want the template of %s", u, c1)
	}
	head, _ := r.repo.Head()
	if head.Hash().String() != u.Commit {
		t.Fatalf("HEAD %s, want the undo commit %s", head.Hash(), u.Commit)
	}
	c, _ := r.repo.CommitObject(head.Hash())
	if !strings.HasPrefix(c.Message, "Roll back deployment/web to its template of "+c1[:12]) || c.NumParents() != 1 {
		t.Errorf("commit message %q, %d parents", c.Message, c.NumParents())
	}
	if c.Author.Name != "Ops Person" {
		t.Errorf("author %q, want the configured user", c.Author.Name)
	}
	b, _ := os.ReadFile(filepath.Join(r.dir, "web.yaml"))
	got := string(b)
	if !strings.Contains(got, "image: web:1.0") || !strings.Contains(got, "replicas: 3") {
		t.Errorf("web.yaml after undo, want the old image and the current replicas:\n%s", got)
	}
	if !strings.HasPrefix(got, "# the web tier\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n") {
		t.Errorf("the Service document was rewritten:\n%s", got)
	}
	// History is never rewritten: the log now has three changes.
	after, _ := repo.Log(ctx, ref, 100)
	if len(after) != 3 || after[0].TemplateHash != before[1].TemplateHash || after[1].Commit != before[0].Commit {
		t.Errorf("log after undo %+v", after)
	}
	// Undoing to the template HEAD already has is refused.
	if _, err := repo.Undo(ctx, ref, c1, 100); !errors.Is(err, ErrNothingToUndo) {
		t.Errorf("undo to the current template: %v, want ErrNothingToUndo", err)
	}
}

func TestUndoRefusesADirtyTreeAndAWorkloadWithoutHistory(t *testing.T) {
	r := newTestRepo(t)
	r.commit("web 1.0", "Alice", map[string]string{"web.yaml": web("2", "web:1.0")})
	repo, _ := Open(r.dir)
	ref, _ := ParseRef("deployment/web", "")
	if _, err := repo.Undo(context.Background(), ref, "", 100); !errors.Is(err, ErrNothingToUndo) {
		t.Errorf("undo with one template: %v, want ErrNothingToUndo", err)
	}
	os.WriteFile(filepath.Join(r.dir, "web.yaml"), []byte(web("5", "web:1.0")), 0o644)
	if _, err := repo.Undo(context.Background(), ref, "", 100); err == nil || !strings.Contains(err.Error(), "working tree has changes") {
		t.Errorf("undo in a dirty tree: %v", err)
	}
}

func TestUndoPushes(t *testing.T) {
	remoteDir := t.TempDir()
	remote, err := git.PlainInit(remoteDir, true)
	if err != nil {
		t.Fatal(err)
	}
	r := newTestRepo(t)
	if _, err := r.repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{remoteDir}}); err != nil {
		t.Fatal(err)
	}
	r.commit("web 1.0", "Alice", map[string]string{"web.yaml": web("2", "web:1.0")})
	r.commit("web 2.0", "Carol", map[string]string{"web.yaml": web("2", "web:2.0")})
	repo, _ := Open(r.dir)
	ctx := context.Background()
	if err := repo.Push(ctx); err != nil {
		t.Fatal(err)
	}
	ref, _ := ParseRef("deployment/web", "")
	u, err := repo.Undo(ctx, ref, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Push(ctx); err != nil {
		t.Fatal(err)
	}
	head, _ := r.repo.Head()
	got, err := remote.Reference(head.Name(), true)
	if err != nil || got.Hash().String() != u.Commit {
		t.Fatalf("remote %s = %v (%v), want the undo commit %s", head.Name(), got, err, u.Commit)
	}
}
