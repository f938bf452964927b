package source

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestCompact fetches many single commits with a low merge threshold: the
// number of packs stays bounded, snapshots taken before a merge keep
// reading during the grace period, and the cache passes git fsck.
func TestCompact(t *testing.T) {
	isolate(t)
	defer func(above int, grace time.Duration) { compactAbove, compactGrace = above, grace }(compactAbove, compactGrace)
	compactAbove, compactGrace = 3, time.Hour
	ctx := context.Background()
	up := newUpstream(t)
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("d/f%02d.yaml", i)] = fmt.Sprintf("v: %d\n", i)
	}
	revs := []string{up.commit("base", files)}
	up.push("main")
	d := startGitDaemon(t, up.root)
	data := t.TempDir()
	r := openRepo(t, data, Config{URL: d.url("repo.git")})
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	first := mustSnapshot(t, r, "main")
	packs := func() []string {
		p, _ := filepath.Glob(filepath.Join(r.Dir(), "objects", "pack", "*.pack"))
		return p
	}
	for i := 1; i <= 12; i++ {
		revs = append(revs, up.commit(fmt.Sprint("change ", i), map[string]string{fmt.Sprintf("d/f%02d.yaml", i): fmt.Sprintf("v: changed %d\n", i)}))
		up.push("main")
		if err := r.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.merged) == 0 {
		t.Fatalf("no pack merged after 13 fetches (%d packs)", len(packs()))
	}
	// The snapshot from before the merges still reads every file.
	for i := range 50 {
		if got := readFile(t, first.FS, fmt.Sprintf("d/f%02d.yaml", i)); got != fmt.Sprintf("v: %d\n", i) {
			t.Errorf("old snapshot f%02d = %q", i, got)
		}
	}
	// After the grace period the merged packs go.
	r.mu.Lock()
	err := r.compact(time.Now().Add(2 * compactGrace))
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(packs()); n > compactAbove+1 {
		t.Errorf("%d packs after merging, want at most %d", n, compactAbove+1)
	}
	for i, rev := range revs {
		s := mustSnapshot(t, r, rev)
		want := fmt.Sprintf("v: changed %d\n", i)
		if i == 0 {
			want = "v: 0\n"
		}
		if got := readFile(t, s.FS, fmt.Sprintf("d/f%02d.yaml", i)); got != want {
			t.Errorf("rev %d f%02d = %q, want %q", i, i, got, want)
		}
	}
	gitCmd(t, r.Dir(), "fsck", "--no-progress", "--no-dangling")
	if r2 := openRepo(t, data, Config{URL: d.url("repo.git")}); len(r2.Reclones()) != 0 {
		t.Errorf("merged cache reported damaged: %v", r2.Reclones())
	}
}
