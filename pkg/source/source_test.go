package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func openRepo(t *testing.T, dataDir string, cfg Config) *Repo {
	t.Helper()
	r, err := Open(dataDir, cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func readFile(t *testing.T, fsys fs.FS, name string) string {
	t.Helper()
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func mustSnapshot(t *testing.T, r *Repo, rev string) *Snapshot {
	t.Helper()
	s, err := r.Snapshot(context.Background(), rev)
	if err != nil {
		t.Fatalf("Snapshot(%q): %v", rev, err)
	}
	return s
}

// TestGitDaemon drives the whole life of a cache over git:// against
// Debian's git daemon: clone, branches, tags, a subdirectory, incremental
// fetch, a force push, ancestry and history.
func TestGitDaemon(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"deploy/app.yaml": "v: 1\n", "README": "hi\n"})
	c2 := up.commit("second", map[string]string{"deploy/app.yaml": "v: 2\n", "deploy/sub/x.yaml": "x\n"})
	gitCmd(t, up.work, "tag", "-a", "-m", "release one", "v1", c1)
	gitCmd(t, up.work, "tag", "light", c2)
	up.push("main", "--tags")
	d := startGitDaemon(t, up.root)

	r := openRepo(t, t.TempDir(), Config{URL: d.url("repo.git"), Path: "deploy"})
	if _, err := r.Resolve(""); !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("Resolve before Fetch: got %v, want ErrRefNotFound", err)
	}
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}

	for rev, want := range map[string]string{"": c2, "HEAD": c2, "main": c2, "refs/heads/main": c2, "v1": c1, "refs/tags/v1": c1, "light": c2, c1: c1} {
		got, err := r.Resolve(rev)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %s", rev, got, err, want)
		}
	}

	s := mustSnapshot(t, r, "")
	if s.Revision != c2 || s.Subject != "second" || s.Path != "deploy" {
		t.Errorf("snapshot = %s %q %q, want %s second deploy", s.Revision, s.Subject, s.Path, c2)
	}
	if got := readFile(t, s.FS, "app.yaml"); got != "v: 2\n" {
		t.Errorf("app.yaml = %q", got)
	}
	if err := fstest.TestFS(s.FS, "app.yaml", "sub/x.yaml"); err != nil {
		t.Error(err)
	}
	if _, err := fs.Stat(s.FS, "README"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("README outside the path is visible: %v", err)
	}
	old := mustSnapshot(t, r, "v1")
	if got := readFile(t, old.FS, "app.yaml"); got != "v: 1\n" {
		t.Errorf("v1 app.yaml = %q", got)
	}

	// Incremental fetch of one new commit.
	c3 := up.commit("third", map[string]string{"deploy/app.yaml": "v: 3\n"})
	c4 := up.commit("docs only", map[string]string{"README": "more\n"})
	up.push("main")
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Resolve("main"); got != c4 {
		t.Fatalf("after fetch main = %s, want %s", got, c4)
	}
	// The snapshot taken before the fetch still reads its own revision.
	if got := readFile(t, s.FS, "app.yaml"); got != "v: 2\n" {
		t.Errorf("old snapshot changed: %q", got)
	}

	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{c1, c4, true}, {c4, c1, false}, {c2, c2, true}, {"v1", "main", true},
	} {
		got, err := r.IsAncestor(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("IsAncestor(%s, %s) = %v, %v; want %v", tc.a, tc.b, got, err, tc.want)
		}
	}

	hist, err := r.CommitsTouching(ctx, c1, "main", "deploy")
	if err != nil {
		t.Fatal(err)
	}
	if got := revisions(hist); !slices.Equal(got, []string{c3, c2}) {
		t.Errorf("CommitsTouching(c1, main, deploy) = %v, want [c3 c2]", got)
	}
	hist, err = r.CommitsTouching(ctx, "", "main", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := revisions(hist); !slices.Equal(got, []string{c4, c3, c2, c1}) {
		t.Errorf("CommitsTouching(all) = %v", got)
	}
	hist, _ = r.CommitsTouching(ctx, "", "main", "deploy/sub")
	if got := revisions(hist); !slices.Equal(got, []string{c2}) {
		t.Errorf("CommitsTouching(deploy/sub) = %v, want [c2]", got)
	}
	if _, err := r.CommitsTouching(ctx, "", "main", "../x"); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("CommitsTouching(../x): %v, want ErrInvalidPath", err)
	}

	// A force push rewrites main; the cache follows it.
	gitCmd(t, up.work, "reset", "-q", "--hard", c2)
	c5 := up.commit("rewritten", map[string]string{"deploy/app.yaml": "v: 5\n"})
	up.push("--force", "main")
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Resolve("main"); got != c5 {
		t.Fatalf("after force push main = %s, want %s", got, c5)
	}
	if ok, _ := r.IsAncestor(c4, "main"); ok {
		t.Error("old tip is still an ancestor after force push")
	}
	if got := readFile(t, mustSnapshot(t, r, "main").FS, "app.yaml"); got != "v: 5\n" {
		t.Errorf("after force push app.yaml = %q", got)
	}

	// A deleted branch is pruned.
	gitCmd(t, up.work, "push", "-q", "origin", c1+":refs/heads/feature")
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve("feature"); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, up.work, "push", "-q", "origin", ":refs/heads/feature")
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve("feature"); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("deleted branch: %v, want ErrRefNotFound", err)
	}

	// Reopening the same cache works without fetching again.
	r2 := openRepo(t, filepath.Dir(filepath.Dir(r.Dir())), Config{URL: d.url("repo.git")})
	if r2.Dir() != r.Dir() {
		t.Errorf("same URL, different cache: %s vs %s", r2.Dir(), r.Dir())
	}
	if got, _ := r2.Resolve("main"); got != c5 {
		t.Errorf("reopened cache main = %s, want %s", got, c5)
	}

	// Closing releases files: the snapshot and the repo refuse further use.
	s5 := mustSnapshot(t, r2, "main")
	if err := s5.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.ReadFile(s5.FS, "deploy/app.yaml"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("read after Snapshot.Close: %v", err)
	}
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r2.Fetch(ctx); err == nil {
		t.Error("Fetch after Close succeeded")
	}
	if _, err := r2.Resolve("main"); err == nil {
		t.Error("Resolve after Close succeeded")
	}
}

func revisions(cs []Commit) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Revision)
	}
	return out
}

// TestLocalTransports reads the same repository as a path and a file://
// URL (both run Debian's git-upload-pack).
func TestLocalTransports(t *testing.T) {
	isolate(t)
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"a.yaml": "a\n"})
	up.push("main")
	data := t.TempDir()
	for _, url := range []string{up.bare, "file://" + up.bare} {
		r := openRepo(t, data, Config{URL: url})
		if err := r.Fetch(context.Background()); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		s := mustSnapshot(t, r, "main")
		if s.Revision != c1 || readFile(t, s.FS, "a.yaml") != "a\n" {
			t.Errorf("%s: got %s", url, s.Revision)
		}
	}
}

func TestMissingRefAndPath(t *testing.T) {
	isolate(t)
	up := newUpstream(t)
	up.commit("first", map[string]string{"deploy/a.yaml": "a\n", "file": "f\n"})
	up.push("main")
	gitCmd(t, up.work, "tag", "main-tag")
	gitCmd(t, up.work, "push", "-q", "origin", "HEAD:refs/heads/both", "HEAD:refs/tags/both", "main-tag")
	r := openRepo(t, t.TempDir(), Config{URL: up.bare})
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := r.Resolve("nope")
	if !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), "branches: both, main; tags: both, main-tag") {
		t.Errorf("missing ref: %v", err)
	}
	if _, err := r.Resolve("both"); !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), "refs/heads/both") {
		t.Errorf("ambiguous ref: %v", err)
	}
	if _, err := r.Resolve("refs/tags/both"); err != nil {
		t.Errorf("refs/tags/both: %v", err)
	}
	if _, err := r.Resolve(strings.Repeat("ab", 20)); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("unknown SHA: %v", err)
	}
	if _, err := r.Resolve("abcdef1"); !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), `no branch, tag or commit is named "abcdef1"`) {
		t.Errorf("unknown short SHA: %v", err)
	}
	for _, p := range []string{"missing", "file"} {
		r := openRepo(t, t.TempDir(), Config{URL: up.bare, Path: p})
		if err := r.Fetch(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Snapshot(context.Background(), "main"); !errors.Is(err, ErrPathNotFound) {
			t.Errorf("path %q: %v, want ErrPathNotFound", p, err)
		}
	}
	for _, p := range []string{"../etc", "/etc", "deploy/../../x", ".git", `a\b`} {
		if _, err := Open(t.TempDir(), Config{URL: up.bare, Path: p}, nil); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("path %q: %v, want ErrInvalidPath", p, err)
		}
	}
	// A remote whose HEAD names no branch: branches still fetch, and the
	// default ref is an error that lists them.
	gitCmd(t, up.bare, "symbolic-ref", "HEAD", "refs/heads/gone")
	r = openRepo(t, t.TempDir(), Config{URL: up.bare})
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatalf("fetch with dangling remote HEAD: %v", err)
	}
	if _, err := r.Resolve("main"); err != nil {
		t.Error(err)
	}
	if _, err := r.Resolve(""); !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), "branches: both, main") {
		t.Errorf("default ref with dangling remote HEAD: %v", err)
	}
	for p, want := range map[string]string{"": "", ".": "", "./deploy/": "deploy", "deploy//x": "deploy/x"} {
		if got, err := CleanPath(p); err != nil || got != want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
}

// TestSnapshotContent checks that links and submodules are never followed
// and are reported.
func TestSnapshotContent(t *testing.T) {
	isolate(t)
	up := newUpstream(t)
	up.commit("files", map[string]string{"deploy/a.yaml": "a\n", "deploy/dir/b.yaml": "b\n", "secret": "s\n"})
	for link, target := range map[string]string{"deploy/out.yaml": "../secret", "deploy/abs.yaml": "/etc/passwd", "deploy/in.yaml": "a.yaml", "deploy/dirlink": "dir"} {
		if err := os.Symlink(target, filepath.Join(up.work, link)); err != nil {
			t.Fatal(err)
		}
		gitCmd(t, up.work, "add", link)
	}
	sub := up.commit("placeholder", nil)
	gitCmd(t, up.work, "update-index", "--add", "--cacheinfo", "160000,"+sub+",deploy/module")
	if err := os.WriteFile(filepath.Join(up.work, "deploy", "run.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, up.work, "add", "deploy/run.sh")
	c := up.commit("links", nil)
	up.push("main")

	r := openRepo(t, t.TempDir(), Config{URL: up.bare, Path: "deploy"})
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := mustSnapshot(t, r, c)
	var skipped []string
	for _, sk := range s.Skipped {
		skipped = append(skipped, sk.String())
	}
	want := []string{
		"abs.yaml: symbolic link in the repository is not followed (-> /etc/passwd)",
		"dirlink: symbolic link in the repository is not followed (-> dir)",
		"in.yaml: symbolic link in the repository is not followed (-> a.yaml)",
		"module: submodule is not fetched",
		"out.yaml: symbolic link in the repository is not followed (-> ../secret)",
	}
	if !slices.Equal(skipped, want) {
		t.Errorf("Skipped =\n%s\nwant\n%s", strings.Join(skipped, "\n"), strings.Join(want, "\n"))
	}
	for _, name := range []string{"out.yaml", "dirlink/b.yaml", "in.yaml"} {
		if _, err := s.FS.Open(name); !errors.Is(err, ErrSymlink) {
			t.Errorf("Open(%s): %v, want ErrSymlink", name, err)
		}
	}
	if _, err := fs.ReadFile(s.FS, "module"); !errors.Is(err, ErrSubmodule) {
		t.Errorf("ReadFile(module): %v, want ErrSubmodule", err)
	}
	var walked []string
	if err := fs.WalkDir(s.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		walked = append(walked, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{".", "a.yaml", "dir", "dir/b.yaml", "run.sh"}; !slices.Equal(walked, want) {
		t.Errorf("walk = %v, want %v", walked, want)
	}
	if fi, err := fs.Stat(s.FS, "run.sh"); err != nil || fi.Mode() != 0o555 || fi.Size() != 10 || !fi.ModTime().Equal(s.Time) {
		t.Errorf("Stat(run.sh) = %v, %v", fi, err)
	}
	if err := fstest.TestFS(s.FS, "a.yaml", "dir/b.yaml", "run.sh"); err != nil {
		t.Error(err)
	}
	hasher, ok := s.FS.(interface{ BlobHash(string) (string, error) })
	if !ok {
		t.Fatal("snapshot FS has no BlobHash")
	}
	for _, name := range []string{"a.yaml", "dir/b.yaml"} {
		want := gitCmd(t, up.work, "rev-parse", c+":deploy/"+name)
		if got, err := hasher.BlobHash(name); err != nil || got != want {
			t.Errorf("BlobHash(%s) = %q, %v; want %q (git rev-parse)", name, got, err, want)
		}
	}
	for _, name := range []string{"dir", "out.yaml", "missing.yaml"} {
		if got, err := hasher.BlobHash(name); err == nil {
			t.Errorf("BlobHash(%s) = %q, want an error: not a regular file", name, got)
		}
	}
	for _, name := range []string{"../secret", "/etc/passwd", "dir/../a.yaml", ""} {
		if _, err := s.FS.Open(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q): %v, want ErrInvalid", name, err)
		}
	}
}

// TestUnreachable stops the server: the fetch fails with context and
// ErrUnreachable, and the last good revision is still served.
func TestUnreachable(t *testing.T) {
	isolate(t)
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"a.yaml": "a\n"})
	up.push("main")
	d := startGitDaemon(t, up.root)
	r := openRepo(t, t.TempDir(), Config{URL: d.url("repo.git")})
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.stop()
	err := r.Fetch(context.Background())
	if !errors.Is(err, ErrUnreachable) || !IsRetryable(err) || !strings.Contains(err.Error(), d.url("repo.git")) {
		t.Fatalf("fetch from stopped server: %v; want ErrUnreachable naming the URL", err)
	}
	s := mustSnapshot(t, r, "main")
	if s.Revision != c1 || readFile(t, s.FS, "a.yaml") != "a\n" {
		t.Errorf("last good snapshot: %s", s.Revision)
	}
	if len(r.Reclones()) != 0 {
		t.Errorf("an unreachable remote must not re-clone: %v", r.Reclones())
	}
}

// TestCorruptCache damages the cache in two ways; each is detected,
// re-cloned and reported.
func TestCorruptCache(t *testing.T) {
	isolate(t)
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"a.yaml": "a\n"})
	up.push("main")
	data := t.TempDir()
	cfg := Config{URL: up.bare}
	r := openRepo(t, data, cfg)
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(r.Dir(), "objects", "pack", "*.pack"))
	if len(packs) == 0 {
		t.Fatal("no pack in cache")
	}
	for _, p := range packs {
		if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r = openRepo(t, data, cfg)
	if got := r.Reclones(); len(got) != 1 || !strings.Contains(got[0], "cache corrupt") {
		t.Fatalf("Reclones after damaged pack = %q", got)
	}
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := mustSnapshot(t, r, "main"); s.Revision != c1 {
		t.Errorf("after re-clone main = %s", s.Revision)
	}

	// A ref pointing at an object that is not there.
	if err := os.WriteFile(filepath.Join(r.Dir(), "refs", "remotes", "origin", "main"), []byte(strings.Repeat("1", 40)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Snapshot(context.Background(), "main"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("snapshot of dangling ref: %v, want ErrCorrupt", err)
	}
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.Reclones(); len(got) != 2 {
		t.Errorf("Reclones = %q, want two", got)
	}
	if s := mustSnapshot(t, r, "main"); s.Revision != c1 {
		t.Errorf("after second re-clone main = %s", s.Revision)
	}

	// Not a repository at all.
	if err := os.WriteFile(filepath.Join(r.Dir(), "HEAD"), []byte("nonsense"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(r.Dir(), "refs")); err != nil {
		t.Fatal(err)
	}
	r = openRepo(t, data, cfg)
	if len(r.Reclones()) != 1 {
		t.Errorf("garbage HEAD not detected: %v", r.Reclones())
	}
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:secret@example.com/repo.git": "https://example.com/repo.git",
		"https://token@example.com/r":              "https://example.com/r",
		"ssh://git@example.com/r":                  "ssh://example.com/r",
		"git@example.com:r.git":                    "git@example.com:r.git",
		"/srv/repo":                                "/srv/repo",
		"fetch https://u:p@h/x: failed":            "fetch https://h/x: failed",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	err := scrub(errors.New("auth https://u:hunter2@h/x with hunter2 failed"), []string{"hunter2"})
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "u:") {
		t.Errorf("scrubbed error still has the secret: %v", err)
	}
}

// TestSnapshotDuringFetch reads snapshots from several goroutines while
// new commits are fetched: each snapshot keeps reading its own revision.
func TestSnapshotDuringFetch(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	up := newUpstream(t)
	first := up.commit("rev 0", map[string]string{"a.yaml": "rev 0\n"})
	up.push("main")
	d := startGitDaemon(t, up.root)
	r := openRepo(t, t.TempDir(), Config{URL: d.url("repo.git")})
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	s := mustSnapshot(t, r, first)
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				b, err := fs.ReadFile(s.FS, "a.yaml")
				if err == nil && string(b) != "rev 0\n" {
					err = errors.New("snapshot changed: " + string(b))
				}
				if err == nil {
					var latest *Snapshot
					if latest, err = r.Snapshot(ctx, "main"); err == nil {
						_, err = fs.ReadFile(latest.FS, "a.yaml")
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 1; i <= 5; i++ {
		up.commit("rev", map[string]string{"a.yaml": "rev " + string(rune('0'+i)) + "\n"})
		up.push("main")
		if err := r.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := readFile(t, mustSnapshot(t, r, "main").FS, "a.yaml"); got != "rev 5\n" {
		t.Errorf("latest = %q", got)
	}
}

// TestSnapshotLargeDirectory reads every file of a directory large enough
// to be looked up through an index, and names that are not there.
func TestSnapshotLargeDirectory(t *testing.T) {
	isolate(t)
	up := newUpstream(t)
	files := map[string]string{}
	for i := 0; i < 100; i++ {
		files[fmt.Sprintf("apps/f%03d.yaml", i)] = fmt.Sprintf("n: %d\n", i)
	}
	files["apps/sub/x.yaml"] = "x\n"
	c := up.commit("many files", files)
	up.push("main")
	r := openRepo(t, t.TempDir(), Config{URL: up.bare})
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := mustSnapshot(t, r, c)
	for name, want := range files {
		if got := readFile(t, s.FS, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"apps/f100.yaml", "apps/f0.yaml", "apps/sub/y.yaml", "apps/f001.yaml/x"} {
		if _, err := fs.ReadFile(s.FS, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%s): %v, want ErrNotExist", name, err)
		}
	}
}
