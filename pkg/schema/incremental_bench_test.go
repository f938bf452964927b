package schema

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
	gitsource "github.com/gitorch/gitorch/pkg/source"
)

func gitRun(b *testing.B, dir string, args ...string) {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// BenchmarkIncremental is what a node does when a commit changes one file
// of the 10,000-object repository: from the fetched commit to its
// validated objects and their placement. The node validated the previous
// commit with the same cache. snapshot-ms, validate-ms and place-ms split
// the time; cpu-ms is the CPU time it took (all cores). Needs git.
func BenchmarkIncremental(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal("git not found (Debian: apt-get install git)")
		}
		b.Skip("git not found: install it (Debian: apt-get install git) to run this benchmark")
	}
	work := b.TempDir()
	tree := generatedTree(10000)
	for name, f := range tree {
		p := filepath.Join(work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	gitRun(b, work, "init", "-q", "-b", "main")
	gitRun(b, work, "add", ".")
	gitRun(b, work, "commit", "-q", "-m", "10,000 objects")
	repo, err := gitsource.Open(b.TempDir(), gitsource.Config{URL: work, Ref: "main"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer repo.Close()
	ctx := context.Background()
	var nodes []plan.Node
	for i := 0; i < 10; i++ {
		nodes = append(nodes, plan.Node{Name: fmt.Sprintf("node-%d", i),
			Allocatable: plan.Resources{MilliCPU: 200_000, Memory: 400 << 30, Pods: 5000}})
	}
	cache := NewCache(0)
	load := func() (snap, validate, place time.Duration, res *Result) {
		t0 := time.Now()
		s, err := repo.Snapshot(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		t1 := time.Now()
		res, err = Load(s.FS, Options{Cache: cache})
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors() > 0 {
			b.Fatalf("invalid: %v", res.Findings[0])
		}
		t2 := time.Now()
		p := plan.Schedule(res.RuntimeObjects(), nodes)
		if len(p.Pods) != 3*(10002/3) {
			b.Fatalf("%d pods placed", len(p.Pods))
		}
		return t1.Sub(t0), t2.Sub(t1), time.Since(t2), res
	}
	if err := repo.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	load() // the node validated the previous commit
	var snapT, valT, placeT, cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("apps/app-%05d.yaml", i%3334)
		data := strings.Replace(string(tree[name].Data), "replicas: 3", "replicas: 3 # "+fmt.Sprint(i), 1)
		if err := os.WriteFile(filepath.Join(work, filepath.FromSlash(name)), []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
		gitRun(b, work, "commit", "-q", "-am", "one file")
		if err := repo.Fetch(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c0 := cpuTime()
		s, v, p, res := load()
		cpu += cpuTime() - c0
		if res.Files-res.CachedFiles != 1 {
			b.Fatalf("%d files validated, want 1", res.Files-res.CachedFiles)
		}
		snapT, valT, placeT = snapT+s, valT+v, placeT+p
	}
	n := float64(b.N)
	b.ReportMetric(float64(snapT.Microseconds())/n/1000, "snapshot-ms")
	b.ReportMetric(float64(valT.Microseconds())/n/1000, "validate-ms")
	b.ReportMetric(float64(placeT.Microseconds())/n/1000, "place-ms")
	b.ReportMetric(float64(cpu.Microseconds())/n/1000, "cpu-ms")
}
