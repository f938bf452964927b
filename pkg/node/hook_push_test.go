package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/source"
	"github.com/gitorch/gitorch/pkg/webhook"
)

// pushRig is a bare repository served by git http-backend on 127.0.0.1,
// a work tree that pushes to it over HTTP, and an agent on the in-memory
// runtime that follows it, polling once an hour, with its API receiving
// GitHub hooks.
type pushRig struct {
	work, home string
	secret     []byte
	api        *httptest.Server
	ag         *node.Agent
	rt         *applytest.FakeRuntime
	// fetchStarts are when the agent began each fetch.
	mu          sync.Mutex
	fetchStarts []time.Time
	n           int
}

// timedSource notes when each fetch begins.
type timedSource struct {
	*source.Repo
	rig *pushRig
}

func (s timedSource) Fetch(ctx context.Context) error {
	s.rig.mu.Lock()
	s.rig.fetchStarts = append(s.rig.fetchStarts, time.Now())
	s.rig.mu.Unlock()
	return s.Repo.Fetch(ctx)
}

func newPushRig(t testing.TB) *pushRig {
	t.Helper()
	testenv.RequireBinary(t, "git")
	r := &pushRig{work: t.TempDir(), home: t.TempDir(), secret: []byte("It's a Secret to Everybody")}
	root := t.TempDir()
	bare := filepath.Join(root, "deploy.git")
	r.git(t, root, "init", "-q", "--bare", "-b", "main", bare)
	r.git(t, bare, "config", "http.receivepack", "true")
	execPath := r.git(t, root, "--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		// Pushes need a user: git http-backend refuses anonymous ones.
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + r.home, "REMOTE_USER=pusher"},
		Stderr: io.Discard,
	}
	gitSrv := httptest.NewServer(backend)
	t.Cleanup(gitSrv.Close)
	url := gitSrv.URL + "/deploy.git"
	r.git(t, r.work, "init", "-q", "-b", "main")
	r.git(t, r.work, "remote", "add", "origin", url)
	first := r.push(t, web(1, "busybox:1.36"))

	dataDir := t.TempDir()
	repo, err := source.Open(dataDir, source.Config{URL: url, Ref: "main"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	r.rt = applytest.NewFakeRuntime(nil)
	r.ag, err = node.New(node.Config{
		Node:   plan.Node{Name: "n1", Allocatable: plan.Resources{MilliCPU: 64000, Memory: 64 << 30, Pods: 110}},
		Source: timedSource{repo, r}, Ref: "main", Runtime: r.rt, DataDir: dataDir,
		PollInterval: time.Hour, Resync: time.Hour, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := webhook.New(webhook.Config{Secret: r.secret, Ref: "main", Trigger: func(webhook.Event) { r.ag.RequestSync() }})
	if err != nil {
		t.Fatal(err)
	}
	r.api = httptest.NewServer(node.NewAPI(r.ag, nil, node.APIOptions{Token: "api-token", Hooks: rc}))
	t.Cleanup(r.api.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.ag.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if _, err := r.ag.WaitRevision(wctx, first); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *pushRig) git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+r.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// push commits files and pushes them to main; it returns the commit.
func (r *pushRig) push(t testing.TB, files map[string]string) string {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(r.work, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.n++
	r.git(t, r.work, "add", "-A")
	r.git(t, r.work, "commit", "-q", "--allow-empty", "-m", fmt.Sprintf("change %d", r.n))
	r.git(t, r.work, "push", "-q", "origin", "main")
	return r.git(t, r.work, "rev-parse", "HEAD")
}

// hook sends GitHub's push hook for commit, signed, and returns the
// status of the answer.
func (r *pushRig) hook(t testing.TB, commit string) int {
	t.Helper()
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"default_branch":"main"}}`, commit)
	req, _ := http.NewRequest(http.MethodPost, r.api.URL+"/v1/hooks/github", strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", commit)
	req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.Sign(r.secret, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitRunning waits until the agent runs commit and its pods run (the
// in-memory runtime's containers).
func (r *pushRig) waitRunning(t testing.TB, commit string, pods int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.ag.WaitRevision(ctx, commit); err != nil {
		t.Fatalf("revision %s: %v", commit, err)
	}
	for {
		n := 0
		for _, p := range r.ag.Status().Pods {
			if p.Phase == plan.PhaseRunning && p.Revision == commit {
				n++
			}
		}
		if n >= pods {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d pods of %s running after a minute", n, pods, commit)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPushThenSignedHookRunsTheNewRevision(t *testing.T) {
	r := newPushRig(t)
	second := r.push(t, web(2, "busybox:1.36"))
	// A hook without a valid signature fetches nothing.
	r.mu.Lock()
	fetches := len(r.fetchStarts)
	r.mu.Unlock()
	req, _ := http.NewRequest(http.MethodPost, r.api.URL+"/v1/hooks/github", strings.NewReader(`{"ref":"refs/heads/main"}`))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.Sign([]byte("guess"), []byte(`{"ref":"refs/heads/main"}`)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a forged hook: %s, want 401", resp.Status)
	}
	r.mu.Lock()
	forged := len(r.fetchStarts) != fetches
	r.mu.Unlock()
	if forged {
		t.Fatal("a forged hook caused a fetch")
	}
	if code := r.hook(t, second); code != http.StatusOK {
		t.Fatalf("signed hook: %d", code)
	}
	r.waitRunning(t, second, 2)
}

// BenchmarkHookToRunning measures, over b.N commits pushed to a git
// http-backend (one pod changes each time) and a signed hook each, the
// hook → fetch start latency, the time the hook took to answer, and push
// → pods of the new revision running on the in-memory runtime.
func BenchmarkHookToRunning(b *testing.B) {
	r := newPushRig(b)
	var toFetch, answer, toRunning []time.Duration
	for i := range b.N {
		// The push itself is not timed: the commit is in the remote
		// when the Git host sends its hook.
		commit := r.push(b, web(1, fmt.Sprintf("busybox:1.%d", i)))
		r.mu.Lock()
		before := len(r.fetchStarts)
		r.mu.Unlock()
		start := time.Now()
		if code := r.hook(b, commit); code != http.StatusOK {
			b.Fatalf("hook: %d", code)
		}
		answer = append(answer, time.Since(start))
		r.waitRunning(b, commit, 1)
		toRunning = append(toRunning, time.Since(start))
		r.mu.Lock()
		if len(r.fetchStarts) > before {
			toFetch = append(toFetch, r.fetchStarts[before].Sub(start))
		}
		r.mu.Unlock()
	}
	report(b, "hook-to-fetch", toFetch)
	report(b, "hook-answer", answer)
	report(b, "hook-to-running", toRunning)
}

func report(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	p99 := ds[min(len(ds)-1, len(ds)*99/100)]
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, name+"-median-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, name+"-p99-ms")
}
