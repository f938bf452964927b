package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/status"
)

// binDir holds the gitorch binary the tests build once (see gitorch).
var binDir string

// TestMain builds nothing yet (the first test that needs the binary
// does), and fails the run if the tests leave anything behind.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gitorch-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := applytest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

var build struct {
	once sync.Once
	path string
	err  error
}

// gitorch returns the path of the gitorch binary, built from this tree
// the first time a test asks.
func gitorch(t testing.TB) string {
	t.Helper()
	goBin := testenv.RequireBinary(t, "go")
	build.once.Do(func() {
		p := filepath.Join(binDir, "gitorch")
		out, err := exec.Command(goBin, "build", "-o", p, "github.com/gitorch/gitorch/cmd/gitorch").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build ./cmd/gitorch: %v\n%s", err, out)
			return
		}
		build.path = p
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// Options shape a test cluster.
type Options struct {
	// Nodes is how many agents form the cluster (default 3).
	Nodes int
	// Extra hosts on the LAN, with no agent until a test starts one.
	Extra int
	// Profile is the gossip profile (default lan, memberlist's).
	Profile string
	// Args are more agent flags, for every node.
	Args []string
}

// Cluster is a gitorch cluster on a LAN: an agent per host, one private
// containerd with a namespace per node, a Git repository, a gossip key
// and an API token shared by all.
type Cluster struct {
	t    testing.TB
	Bin  string
	LAN  *applytest.LAN
	CD   *applytest.Containerd
	Dir  string
	Repo string
	// KeyFile is the cluster's gossip key, TokenFile its API token.
	KeyFile, TokenFile string
	// Nodes are the agents of the cluster, then the extra hosts'.
	Nodes []*Node
	opts  Options
	id    string
}

// Node is one host of the cluster and its agent.
type Node struct {
	c *Cluster
	// Name is the node's name, n1, n2, ...; Index its number.
	Name  string
	Index int
	Host  applytest.Host
	// Namespace is the node's containerd namespace.
	Namespace string
	DataDir   string
	LogPath   string

	mu   sync.Mutex
	proc *proc
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// NewCluster makes the cluster's LAN, containerd, repository, key and
// token, imports the busybox image into every node's namespace, and
// starts nothing: commit, then Start.
func NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "git")
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Profile == "" {
		opts.Profile = "lan"
	}
	c := &Cluster{t: t, Bin: gitorch(t), opts: opts, id: "e2e-" + applytest.RandomHex(3)}
	c.LAN = applytest.NewLAN(t, opts.Nodes+opts.Extra)
	// Runs after containerd stopped (cleanups run last first): the runc
	// state and cgroups of the nodes' namespaces, which the agents' tasks
	// keep in the machine's shared places.
	t.Cleanup(c.removeNamespaceLeftovers)
	c.CD = applytest.StartContainerd(t)
	c.Dir = t.TempDir()
	t.Cleanup(func() {
		if err := applytest.UnmountUnder(c.Dir); err != nil {
			t.Error(err)
		}
	})
	c.KeyFile = filepath.Join(c.Dir, "gossip.key")
	c.writeKey(c.KeyFile)
	c.TokenFile = filepath.Join(c.Dir, "api.token")
	if err := os.WriteFile(c.TokenFile, []byte(applytest.RandomHex(16)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Repo = filepath.Join(c.Dir, "repo")
	c.git("init", "-q", "-b", "main", c.Repo)
	c.git("-C", c.Repo, "config", "user.email", "e2e@gitorch.test")
	c.git("-C", c.Repo, "config", "user.name", "e2e")

	archive := applytest.BusyboxArchive(t)
	for i, h := range c.LAN.Hosts {
		n := &Node{
			c: c, Name: "n" + strconv.Itoa(i+1), Index: i + 1, Host: h,
			Namespace: c.id + "-n" + strconv.Itoa(i+1),
			DataDir:   filepath.Join(c.Dir, "n"+strconv.Itoa(i+1)),
			LogPath:   filepath.Join(c.Dir, "n"+strconv.Itoa(i+1)+".log"),
		}
		f, err := os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		_, err = apply.ImportImage(context.Background(), c.CD.Client, n.Namespace, c.CD.Snapshotter, f)
		f.Close()
		if err != nil {
			t.Fatalf("import busybox into %s: %v", n.Namespace, err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			for _, n := range c.Nodes {
				if b, err := os.ReadFile(n.LogPath); err == nil {
					t.Logf("log of %s (last 40 lines):\n%s", n.Name, tail(string(b), logLines()))
				}
			}
		}
	})
	return c
}

func (c *Cluster) writeKey(path string) {
	out, err := exec.Command(c.Bin, "gossip", "keygen").Output()
	if err != nil {
		c.t.Fatalf("gitorch gossip keygen: %v", err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// NewKeyFile writes another gossip key, for a node of another cluster.
func (c *Cluster) NewKeyFile(name string) string {
	p := filepath.Join(c.Dir, name)
	c.writeKey(p)
	return p
}

// removeNamespaceLeftovers removes the runc state directories and the
// empty cgroups of the nodes' containerd namespaces.
func (c *Cluster) removeNamespaceLeftovers() {
	for _, n := range c.Nodes {
		os.RemoveAll(filepath.Join(applytest.SharedRuncRoot, n.Namespace))
		applytest.RemoveCgroups(n.Namespace)
	}
}

func (c *Cluster) git(args ...string) string {
	c.t.Helper()
	out, err := exec.Command("git", args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit writes files (path in the repository → content; "" removes it)
// and commits them, returning the commit's hash.
func (c *Cluster) Commit(msg string, files map[string]string) string {
	c.t.Helper()
	for p, content := range files {
		full := filepath.Join(c.Repo, p)
		if content == "" {
			os.Remove(full)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	c.git("-C", c.Repo, "add", "-A")
	c.git("-C", c.Repo, "commit", "-q", "--allow-empty", "-m", msg)
	return c.git("-C", c.Repo, "rev-parse", "HEAD")
}

// Members are the cluster's nodes (not the extra hosts).
func (c *Cluster) Members() []*Node { return c.Nodes[:c.opts.Nodes] }

// JoinList is every member's address, for --join.
func (c *Cluster) JoinList() string {
	var a []string
	for _, n := range c.Members() {
		a = append(a, n.Host.Addr.String())
	}
	return strings.Join(a, ",")
}

// Start starts the agents of every member.
func (c *Cluster) Start() {
	c.t.Helper()
	for _, n := range c.Members() {
		n.Start()
	}
}

// Args are the node's agent flags: the cluster's, then extra (a later
// flag wins).
func (n *Node) Args(extra ...string) []string {
	c := n.c
	addr := n.Host.Addr.String()
	args := []string{"agent",
		"--node-name", n.Name,
		"--advertise-address", addr,
		"--join", c.JoinList(),
		"--gossip-key-file", c.KeyFile,
		"--gossip-profile", c.opts.Profile,
		"--pod-cidr", fmt.Sprintf("10.88.%d.0/24", n.Index),
		"--api-address", addr + ":7480",
		"--api-token-file", c.TokenFile,
		"--data-dir", n.DataDir,
		"--containerd-address", c.CD.Address,
		"--containerd-namespace", n.Namespace,
		"--snapshotter", c.CD.Snapshotter,
		"--poll-interval", "1s",
		"--repo", c.Repo,
	}
	args = append(args, c.opts.Args...)
	return append(args, extra...)
}

// Start starts the node's agent in its host's network namespace, its
// output appended to LogPath. It is killed when the test ends.
func (n *Node) Start(extra ...string) {
	t := n.c.t
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		select {
		case <-n.proc.done:
		default:
			t.Fatalf("start %s: its agent runs", n.Name)
		}
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== %s: gitorch %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(n.Args(extra...), " "))
	cmd := n.Host.Command(n.c.Bin, n.Args(extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start the agent of %s: %v", n.Name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	first := n.proc == nil
	n.proc = p
	if first {
		t.Cleanup(func() {
			n.Signal(syscall.SIGKILL)
			if !n.Wait(10 * time.Second) {
				t.Errorf("the agent of %s did not exit within 10s of SIGKILL", n.Name)
			}
		})
	}
}

// Signal sends sig to the node's agent, if it runs.
func (n *Node) Signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		_ = n.proc.cmd.Process.Signal(sig)
	}
}

// Wait waits up to d for the node's agent to exit, and reports whether
// it did (or none ran).
func (n *Node) Wait(d time.Duration) bool {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Running reports whether the node's agent runs.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return false
	}
	select {
	case <-n.proc.done:
		return false
	default:
		return true
	}
}

// PID is the agent's process id (nsenter execs the agent), 0 if none
// runs.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.cmd.Process.Pid
}

// Stop stops the agent with SIGTERM, as a service manager does, and
// waits for it to exit.
func (n *Node) Stop() {
	n.c.t.Helper()
	n.Signal(syscall.SIGTERM)
	if !n.Wait(30 * time.Second) {
		n.c.t.Fatalf("the agent of %s did not stop within 30s of SIGTERM", n.Name)
	}
}

// Kill kills the agent with SIGKILL, as a machine dying would, and
// waits for it to be gone.
func (n *Node) Kill() {
	n.c.t.Helper()
	n.Signal(syscall.SIGKILL)
	if !n.Wait(10 * time.Second) {
		n.c.t.Fatalf("the agent of %s did not exit within 10s of SIGKILL", n.Name)
	}
}

// Log is what the agent wrote so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.LogPath)
	return string(b)
}

// URL is the node's API.
func (n *Node) URL() string { return "http://" + n.Host.Addr.String() + ":7480" }

// CLI runs gitorch with args in the node's network namespace (as a user
// logged in on the node would) and returns its standard output.
func (n *Node) CLI(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := n.Host.Command(n.c.Bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("gitorch %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return "", fmt.Errorf("gitorch %s: no answer within 20s", strings.Join(args, " "))
	}
	return out.String(), nil
}

// Status is `gitorch status -o json` asked of the node's API from the
// node itself (--server), decoded.
func (n *Node) Status() (status.Cluster, error) {
	var c status.Cluster
	out, err := n.CLI("status", "--server", n.URL(), "--api-token-file", n.c.TokenFile, "-o", "json")
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		return c, fmt.Errorf("status of %s: %v: %q", n.Name, err, out)
	}
	return c, nil
}

// StatusFrom is `gitorch status -o json` run on node from, asking n.
func (n *Node) StatusFrom(from *Node) (status.Cluster, error) {
	var c status.Cluster
	out, err := from.CLI("status", "--server", n.URL(), "--api-token-file", n.c.TokenFile, "-o", "json")
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		return c, fmt.Errorf("status of %s: %v: %q", n.Name, err, out)
	}
	return c, nil
}

// StatusNodes is `gitorch status nodes -o json` of the node, decoded.
func (n *Node) StatusNodes() ([]status.Member, error) {
	var m []status.Member
	out, err := n.CLI("status", "nodes", "--server", n.URL(), "--api-token-file", n.c.TokenFile, "-o", "json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("status nodes of %s: %v: %q", n.Name, err, out)
	}
	return m, nil
}

// Eventually polls cond every 250 ms until it holds, and fails the test
// with cond's last word if it does not within d; every 10 s it logs
// what it still waits for. It returns how long it took.
func Eventually(t testing.TB, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	next := start.Add(10 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(next) {
			t.Logf("%s: still waiting after %v: %s", what, time.Since(start).Round(time.Second), why)
			next = next.Add(10 * time.Second)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, d, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Placement is where each pod runs: pod name → node.
type Placement map[string]string

func (p Placement) String() string {
	var s []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		s = append(s, k+"@"+p[k])
	}
	return strings.Join(s, " ")
}

// PerNode counts the pods of each node.
func (p Placement) PerNode() map[string]int {
	out := map[string]int{}
	for _, n := range p {
		out[n]++
	}
	return out
}

// ReadyPods is the placement of the pods whose name starts with prefix
// that the status reports Running and ready.
// A pod listed Running and ready on two nodes has both, joined by a
// comma.
func ReadyPods(c status.Cluster, prefix string) Placement {
	p := Placement{}
	for _, pod := range c.Pods {
		if strings.HasPrefix(pod.Name, prefix) && pod.Phase == plan.PhaseRunning && pod.Ready {
			if p[pod.Name] != "" {
				p[pod.Name] += ","
			}
			p[pod.Name] += pod.Node
		}
	}
	return p
}

// AllPods is the placement of every pod whose name starts with prefix,
// whatever its phase, the node followed by the phase and readiness.
func AllPods(c status.Cluster, prefix string) Placement {
	p := Placement{}
	for _, pod := range c.Pods {
		if strings.HasPrefix(pod.Name, prefix) {
			if p[pod.Name] != "" {
				p[pod.Name] += ","
			}
			p[pod.Name] += fmt.Sprintf("%s(%s,ready=%v)", pod.Node, pod.Phase, pod.Ready)
		}
	}
	return p
}

// Container is a container of a gitorch pod, as containerd has it.
type Container struct {
	Node, Pod, ID string
	// PID of its task, 0 without a running task.
	PID uint32
}

// Containers lists the pods' containers of every node's namespace, with
// the PIDs of the running tasks.
func (c *Cluster) Containers() ([]Container, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []Container
	for _, n := range c.Nodes {
		nctx := namespaces.WithNamespace(ctx, n.Namespace)
		ctrs, err := c.CD.Client.Containers(nctx, fmt.Sprintf("labels.%q", apply.LabelPod))
		if err != nil {
			return nil, fmt.Errorf("containers of %s: %w", n.Namespace, err)
		}
		for _, ctr := range ctrs {
			info, err := ctr.Info(nctx, client.WithoutRefreshedMetadata)
			if err != nil {
				continue // removed meanwhile
			}
			x := Container{Node: n.Name, Pod: info.Labels[apply.LabelPod], ID: ctr.ID()}
			if task, err := ctr.Task(nctx, nil); err == nil {
				if st, err := task.Status(nctx); err == nil && st.Status == client.Running {
					x.PID = task.Pid()
				}
			}
			out = append(out, x)
		}
	}
	return out, nil
}

// RunningPlacement is, for each pod whose name starts with prefix, the
// nodes whose containerd runs a task of it.
func RunningPlacement(ctrs []Container, prefix string) map[string][]string {
	out := map[string][]string{}
	for _, x := range ctrs {
		if x.PID == 0 || !strings.HasPrefix(x.Pod, prefix) {
			continue
		}
		if !slices.Contains(out[x.Pod], x.Node) {
			out[x.Pod] = append(out[x.Pod], x.Node)
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// PIDs maps each running container (node/ID) to its task's PID.
func PIDs(ctrs []Container) map[string]uint32 {
	out := map[string]uint32{}
	for _, x := range ctrs {
		if x.PID != 0 {
			out[x.Node+"/"+x.ID] = x.PID
		}
	}
	return out
}

// Node returns the node named name.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no node %s", name)
	return nil
}

// AgreeOn waits until every node in nodes reports the same placement of
// the ready pods named prefix*, with want of them, and returns it.
func (c *Cluster) AgreeOn(nodes []*Node, prefix string, want int, d time.Duration, check func(Placement) string) Placement {
	c.t.Helper()
	var got Placement
	Eventually(c.t, d, fmt.Sprintf("%d ready %s* pods, the same on %s", want, prefix, names(nodes)), func() (bool, string) {
		var first Placement
		for _, n := range nodes {
			st, err := n.Status()
			if err != nil {
				return false, err.Error()
			}
			p := ReadyPods(st, prefix)
			if len(p) != want {
				return false, fmt.Sprintf("%s reports %d ready: %s (all: %s)", n.Name, len(p), p, AllPods(st, prefix))
			}
			if first == nil {
				first = p
			} else if first.String() != p.String() {
				return false, fmt.Sprintf("%s reports %s, %s %s", nodes[0].Name, first, n.Name, p)
			}
		}
		if check != nil {
			if why := check(first); why != "" {
				return false, why
			}
		}
		got = first
		return true, ""
	})
	return got
}

// AliveMembers waits until every node in nodes lists exactly the
// members named want, all alive.
func (c *Cluster) AliveMembers(nodes []*Node, want []string, d time.Duration) time.Duration {
	c.t.Helper()
	sort.Strings(want)
	return Eventually(c.t, d, fmt.Sprintf("%s list %v alive", names(nodes), want), func() (bool, string) {
		for _, n := range nodes {
			ms, err := n.StatusNodes()
			if err != nil {
				return false, err.Error()
			}
			var alive, all []string
			for _, m := range ms {
				all = append(all, m.Name+"="+m.Status)
				if m.Status == status.MemberAlive {
					alive = append(alive, m.Name)
				}
			}
			sort.Strings(alive)
			if !slices.Equal(alive, want) || len(ms) != len(want) {
				return false, fmt.Sprintf("%s lists %v", n.Name, all)
			}
		}
		return true, ""
	})
}

func names(nodes []*Node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.Name)
	}
	return strings.Join(s, ",")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// VmRSS is the resident memory of process pid, in bytes.
func VmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func logLines() int {
	if n, err := strconv.Atoi(os.Getenv("E2E_LOGS")); err == nil {
		return n
	}
	return 40
}
