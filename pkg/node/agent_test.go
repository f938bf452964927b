package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/backoff"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/source"
)

// testNode is one node for agent tests: an applytest.Node (a private
// containerd with the busybox image, a bridge in a network namespace of
// the test's own, a runtime) and a Git repository the test commits to.
type testNode struct {
	*applytest.Node
	repo string
}

func newTestNode(t testing.TB) *testNode {
	t.Helper()
	testenv.RequireBinary(t, "git")
	n := &testNode{Node: applytest.NewNode(t, applytest.NodeOptions{Prefix: netip.MustParsePrefix("10.250.7.0/24")}), repo: t.TempDir()}
	n.git(t, "init", "-q", "-b", "main")
	return n
}

func (n *testNode) git(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = n.repo
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+n.repo)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit replaces the repository's files with files and commits them,
// returning the commit's SHA.
func (n *testNode) commit(t testing.TB, msg string, files map[string]string) string {
	t.Helper()
	entries, _ := os.ReadDir(n.repo)
	for _, e := range entries {
		if e.Name() != ".git" {
			os.RemoveAll(filepath.Join(n.repo, e.Name()))
		}
	}
	for name, content := range files {
		p := filepath.Join(n.repo, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n.git(t, "add", "-A")
	n.git(t, "commit", "-q", "--allow-empty", "-m", msg)
	return n.git(t, "rev-parse", "HEAD")
}

// agent is a running agent of a test.
type agent struct {
	*node.Agent
	stop func()
}

var fastBackoff = backoff.Backoff{Initial: time.Second, Max: 4 * time.Second, Reset: time.Minute}

// start runs an agent on the node with a new runtime instance, until the
// returned agent is stopped or the test ends.
func (n *testNode) start(t testing.TB, mod func(*node.Config)) *agent {
	t.Helper()
	repo, err := source.Open(n.DataDir, source.Config{URL: n.repo, Ref: "main"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := n.NewRuntime(t, nil)
	cfg := node.Config{
		Node:         plan.Node{Name: "n1", Allocatable: plan.Resources{MilliCPU: 2000, Memory: 4 << 30, Pods: 110}},
		Source:       repo,
		Ref:          "main",
		Runtime:      rt,
		DataDir:      n.DataDir,
		PollInterval: time.Hour,
		Resync:       time.Second,
		Backoff:      fastBackoff,
		Logger:       testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	ag, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("agent did not stop within a minute of its context's end")
		}
		repo.Close()
	}
	t.Cleanup(stop)
	return &agent{Agent: ag, stop: stop}
}

// apply commits files and waits until the agent runs that revision.
func (a *agent) apply(t testing.TB, n *testNode, msg string, files map[string]string) string {
	t.Helper()
	sha := n.commit(t, msg, files)
	a.Sync()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := a.WaitRevision(ctx, sha); err != nil {
		t.Fatalf("revision %s: %v", sha, err)
	}
	return sha
}

// waitPod polls the agent's status of a pod until cond holds.
func (a *agent) waitPod(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(plan.PodStatus) bool) plan.PodStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, ok := a.Pod(ns, name)
		if ok && cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s/%s: not %s within %v; last status %+v", ns, name, what, timeout, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runningReady(p plan.PodStatus) bool { return p.Phase == plan.PhaseRunning && p.Ready }

func container(p plan.PodStatus, name string) plan.ContainerStatus {
	for _, c := range p.Containers {
		if c.Name == name {
			return c
		}
	}
	return plan.ContainerStatus{}
}

func pids(p plan.PodStatus) map[string]uint32 {
	out := map[string]uint32{}
	for _, c := range p.Containers {
		out[c.Name] = c.PID
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// logOf returns the current log of a container of a pod.
func (n *testNode) logOf(t *testing.T, ns, pod, container string) string {
	t.Helper()
	p, err := n.Runtime.Pod(context.Background(), ns, pod)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := p.Container(container)
	if !ok {
		t.Fatalf("no container %s in %s/%s", container, ns, pod)
	}
	return readFile(t, c.LogPath)
}

// waitLog polls a container's log until it holds want.
func (n *testNode) waitLog(t *testing.T, ns, pod, container, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := n.logOf(t, ns, pod, container)
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of %s in %s/%s has no %q within %v:\n%s", container, ns, pod, want, timeout, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func linkExists(t *testing.T, nsPath, name string) bool {
	t.Helper()
	found := false
	err := nsfile.Do(nsPath, func() error {
		_, err := netlink.LinkByName(name)
		var nf netlink.LinkNotFoundError
		switch {
		case err == nil:
			found = true
		case errors.As(err, &nf):
		default:
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// dialPod connects to the pod's IP from the bridge's namespace.
func dialPod(t *testing.T, hostNS, ip string, port int) (string, error) {
	t.Helper()
	var out string
	err := nsfile.Do(hostNS, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, fmt.Sprint(port)), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		// HTTP/1.0: the server closes the connection after the body.
		b, err := io.ReadAll(c)
		out = string(b)
		return err
	})
	return out, err
}
