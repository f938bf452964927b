package source

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The benchmark repository: benchFiles files in 100 directories, and
// benchCommits commits (the first adds every file, each later one changes
// ten files). Generated once per run with git fast-import.
const (
	benchFiles   = 10000
	benchCommits = 1000
)

var (
	benchOnce sync.Once
	benchRoot string // holds repo.git
	benchErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchRoot != "" {
		os.RemoveAll(benchRoot)
	}
	os.Exit(code)
}

func benchFileContent(i, rev int) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: file-%05d\ndata:\n  revision: \"%d\"\n  filler: %q\n", i, rev, "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor")
}

// benchRepo returns the root served by the git daemon, generating the
// repository on first use.
func benchRepo(b *testing.B) string {
	b.Helper()
	benchOnce.Do(func() {
		benchRoot, benchErr = os.MkdirTemp("", "gitorch-bench-")
		if benchErr != nil {
			return
		}
		bare := filepath.Join(benchRoot, "repo.git")
		if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", bare).CombinedOutput(); err != nil {
			benchErr = fmt.Errorf("git init: %v: %s", err, out)
			return
		}
		benchErr = fastImport(bare, func(w *bufio.Writer) {
			for c := 0; c < benchCommits; c++ {
				writeCommit(w, c, false, func() {
					if c == 0 {
						for i := 0; i < benchFiles; i++ {
							writeFile(w, i, 0)
						}
						return
					}
					for k := 0; k < 10; k++ {
						writeFile(w, (c*10+k)*7919%benchFiles, c)
					}
				})
			}
		})
		if benchErr == nil {
			if out, err := exec.Command("git", "-C", bare, "repack", "-adq").CombinedOutput(); err != nil {
				benchErr = fmt.Errorf("git repack: %v: %s", err, out)
			}
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchRoot
}

var benchSeq = benchCommits

// addBenchCommit appends one commit changing ten files to main.
func addBenchCommit(b *testing.B, root string) {
	b.Helper()
	benchSeq++
	c := benchSeq
	err := fastImport(filepath.Join(root, "repo.git"), func(w *bufio.Writer) {
		writeCommit(w, c, true, func() {
			for k := 0; k < 10; k++ {
				writeFile(w, (c*10+k)*7919%benchFiles, c)
			}
		})
	})
	if err != nil {
		b.Fatal(err)
	}
}

// writeCommit writes one commit to main; with resume it continues from the
// branch as a previous fast-import run left it.
func writeCommit(w *bufio.Writer, c int, resume bool, files func()) {
	msg := fmt.Sprintf("commit %d\n", c)
	fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\ndata %d\n%s", 1700000000+c, len(msg), msg)
	if resume {
		fmt.Fprintf(w, "from refs/heads/main^0\n")
	}
	files()
	fmt.Fprintf(w, "\n")
}

func writeFile(w *bufio.Writer, i, rev int) {
	content := benchFileContent(i, rev)
	fmt.Fprintf(w, "M 100644 inline dir-%02d/file-%05d.yaml\ndata %d\n%s\n", i%100, i, len(content), content)
}

func fastImport(bare string, write func(*bufio.Writer)) error {
	cmd := exec.Command("git", "-C", bare, "fast-import", "--quiet")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	w := bufio.NewWriterSize(stdin, 1<<20)
	write(w)
	if err := w.Flush(); err != nil {
		return fmt.Errorf("git fast-import: %v: %s", err, out.String())
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git fast-import: %v: %s", err, out.String())
	}
	return nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.buf)
}

func gitB(b *testing.B, args ...string) {
	b.Helper()
	if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
		b.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// BenchmarkClone clones the benchmark repository over git:// from Debian's
// git daemon, with go-git (this package) and with the git CLI.
func BenchmarkClone(b *testing.B) {
	isolate(b)
	root := benchRepo(b)
	d := startGitDaemon(b, root)
	url := d.url("repo.git")
	b.Run("go-git", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			b.StartTimer()
			r, err := Open(dir, Config{URL: url}, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Fetch(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("git-cli", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dir := filepath.Join(b.TempDir(), "clone.git")
			b.StartTimer()
			gitB(b, "clone", "-q", "--bare", url, dir)
		}
	})
}

// BenchmarkFetchIncremental fetches one new commit (ten changed files)
// into an up-to-date cache, with go-git and with the git CLI.
func BenchmarkFetchIncremental(b *testing.B) {
	isolate(b)
	root := benchRepo(b)
	d := startGitDaemon(b, root)
	url := d.url("repo.git")
	ctx := context.Background()
	b.Run("go-git", func(b *testing.B) {
		r, err := Open(b.TempDir(), Config{URL: url}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Fetch(ctx); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			b.StopTimer()
			addBenchCommit(b, root)
			b.StartTimer()
			if err := r.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("git-cli", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "cache.git")
		gitB(b, "init", "-q", "--bare", dir)
		gitB(b, "-C", dir, "remote", "add", "origin", url)
		gitB(b, "-C", dir, "fetch", "-q", "--prune", "origin")
		b.ResetTimer()
		for b.Loop() {
			b.StopTimer()
			addBenchCommit(b, root)
			b.StartTimer()
			gitB(b, "-C", dir, "fetch", "-q", "--prune", "origin")
		}
	})
}

// BenchmarkSnapshotRead takes a snapshot of the benchmark repository's tip
// and reads every one of its 10,000 files, as loading manifests does.
func BenchmarkSnapshotRead(b *testing.B) {
	isolate(b)
	root := benchRepo(b)
	r, err := Open(b.TempDir(), Config{URL: filepath.Join(root, "repo.git")}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Fetch(context.Background()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := r.Snapshot(context.Background(), "main")
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		err = fs.WalkDir(s.FS, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			n++
			_, err = fs.ReadFile(s.FS, p)
			return err
		})
		if err != nil || n != benchFiles {
			b.Fatalf("read %d files: %v", n, err)
		}
		s.Close()
	}
}
