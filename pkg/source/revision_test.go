package source

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestResolveRevisions resolves the revisions Git users write, against a
// repository made here with git: names, walks from them, and what is
// refused, each error naming the revision and saying why.
func TestResolveRevisions(t *testing.T) {
	isolate(t)
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"a.yaml": "1\n"})
	c2 := up.commit("second", map[string]string{"a.yaml": "2\n"})
	gitCmd(t, up.work, "tag", "-a", "-m", "release", "v2", c2)
	gitCmd(t, up.work, "checkout", "-q", "-b", "side")
	side := up.commit("fix on the side", map[string]string{"b.yaml": "b\n"})
	gitCmd(t, up.work, "checkout", "-q", "main")
	c3 := up.commit("third", map[string]string{"a.yaml": "3\n"})
	gitCmd(t, up.work, "merge", "-q", "--no-ff", "-m", "merge side", "side")
	merge := gitCmd(t, up.work, "rev-parse", "HEAD")
	up.push("main", "side", "--tags")

	r := openRepo(t, t.TempDir(), Config{URL: up.bare})
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	for rev, want := range map[string]string{
		"":                              merge,
		"HEAD":                          merge,
		"@":                             merge,
		"origin/HEAD":                   merge,
		"main":                          merge,
		"origin/main":                   merge,
		"refs/heads/main":               merge,
		"refs/remotes/origin/side":      side,
		"HEAD~1":                        c3,
		"main^":                         c3,
		"main^1":                        c3,
		"main^2":                        side,
		"HEAD^2~1":                      c2,
		"HEAD~2":                        c2,
		"HEAD~~~":                       c1,
		"HEAD^^^":                       c1,
		"v2":                            c2,
		"v2^{}":                         c2,
		"v2^{commit}":                   c2,
		"v2~1":                          c1,
		"refs/tags/v2^":                 c1,
		c1:                              c1,
		c3[:7]:                          c3,
		strings.ToUpper(c3[:10]) + "~1": c2,
		"main^{/^first}":                c1,
	} {
		got, err := r.Resolve(rev)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %s (git: %s)", rev, got, err, want, gitRevParse(up.work, rev))
		}
	}

	for _, tc := range []struct{ rev, want string }{
		{"HEAD~9", `revision "HEAD~9": not found in ` + up.bare + `: HEAD (` + merge[:12] + `) has 3 ancestors along first parents`},
		{"v2~5", `revision "v2~5": not found in ` + up.bare + `: v2 (` + c2[:12] + `) has 1 ancestor`},
		{"main~1^2", `^2 needs a merge commit`},
		{"nope", `revision "nope": not found in ` + up.bare + `: no branch, tag or commit is named "nope" (branches: main, side; tags: v2)`},
		{"nope~1", `revision "nope~1": not found in ` + up.bare + `: no branch, tag or commit is named "nope"`},
		{"origin/nope", `no branch, tag or commit is named "origin/nope"`},
		{"beefbeefbeef", `no branch, tag or commit is named "beefbeefbeef"`},
		{strings.Repeat("ab", 20), `commit ` + strings.Repeat("ab", 20) + ` is in no branch or tag fetched from it`},
		{"main@{yesterday}", `revision "main@{yesterday}": @{...} (reflogs, dates, upstreams) is not supported`},
		{"main:a.yaml", `REV:PATH names a file`},
		{"v2^{tree}", `only ^{}, ^{commit} and ^{/REGEXP} name a commit`},
		{"main^3", `only ^, ^1 and ^2`},
		{"main^{/no such message}", `revision "main^{/no such message}": not found in`},
	} {
		_, err := r.Resolve(tc.rev)
		if !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%q): %v\nwant ErrRefNotFound containing %q", tc.rev, err, tc.want)
		}
	}

	// The default revision (Config.Ref) takes the same syntax.
	r2 := openRepo(t, t.TempDir(), Config{URL: up.bare, Ref: "main~1"})
	if err := r2.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := mustSnapshot(t, r2, ""); s.Revision != c3 {
		t.Errorf("Ref main~1: snapshot of %s, want %s", s.Revision, c3)
	}
	if ok, err := r2.IsAncestor("main^2", "HEAD~1"); err != nil || ok {
		t.Errorf("IsAncestor(main^2, HEAD~1) = %v, %v; want false", ok, err)
	}
	if ok, err := r2.IsAncestor("HEAD~2", "main^2"); err != nil || !ok {
		t.Errorf("IsAncestor(HEAD~2, main^2) = %v, %v; want true", ok, err)
	}
}

// gitRevParse is what git makes of rev, for failure messages.
func gitRevParse(dir, rev string) string {
	if rev == "" {
		rev = "HEAD"
	}
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--verify", "-q", rev+"^{commit}").Output()
	if err != nil {
		return "no commit"
	}
	return strings.TrimSpace(string(out))
}

// TestResolveAmbiguousShortSHA makes enough commits that two share their
// first four hex digits: that prefix is refused as ambiguous, naming both,
// and one digit more resolves.
func TestResolveAmbiguousShortSHA(t *testing.T) {
	isolate(t)
	up := newUpstream(t)
	// fast-import with fixed dates makes the same 1000 commits every run.
	var stream strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&stream, "commit refs/heads/main\ncommitter T <t@example.com> 1000000000 +0000\ndata %d\n%04d\n", 5, i)
		stream.WriteString("\n")
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = up.bare
	cmd.Stdin = strings.NewReader(stream.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git fast-import: %v\n%s", err, out)
	}
	byPrefix := map[string][]string{}
	var a, b string
	for _, c := range strings.Fields(gitCmd(t, up.bare, "rev-list", "main")) {
		p := c[:4]
		byPrefix[p] = append(byPrefix[p], c)
		if len(byPrefix[p]) == 2 {
			a, b = byPrefix[p][0], byPrefix[p][1]
		}
	}
	if a == "" {
		t.Fatal("no two of the 1000 commits share 4 hex digits")
	}
	r := openRepo(t, t.TempDir(), Config{URL: up.bare})
	if err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := r.Resolve(a[:4])
	if !errors.Is(err, ErrRefNotFound) || !strings.Contains(err.Error(), "ambiguous") ||
		!strings.Contains(err.Error(), a[:12]) || !strings.Contains(err.Error(), b[:12]) {
		t.Errorf("Resolve(%s): %v; want ambiguous naming %s and %s", a[:4], err, a[:12], b[:12])
	}
	n := 5
	for a[:n] == b[:n] {
		n++
	}
	if got, err := r.Resolve(a[:n]); err != nil || got != a {
		t.Errorf("Resolve(%s) = %s, %v; want %s", a[:n], got, err, a)
	}
}
