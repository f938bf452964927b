package e2e_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/status"
)

// deployment is a Deployment of busybox pods that sleep, with small
// requests so that many fit on a node.
func deployment(name string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
spec:
  replicas: %d
  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: %s
        imagePullPolicy: IfNotPresent
        command: ["sleep", "86400"]
        resources:
          requests: {cpu: 10m, memory: 8Mi}
`, name, replicas, name, name, applytest.BusyboxRef)
}

// sleepers is the Deployment most tests run: 6 pods over 3 nodes.
var sleepers = deployment("sleepers", 6)

// twoEach says why a placement does not have two pods on each of n1-n3.
func twoEach(p Placement) string {
	per := p.PerNode()
	for _, n := range []string{"n1", "n2", "n3"} {
		if per[n] != 2 {
			return fmt.Sprintf("not 2 pods on each node: %v (%s)", per, p)
		}
	}
	return ""
}

// startSpread starts a 3-node cluster running the sleepers, and waits
// until every node reports the same 6 pods Running and ready, two on
// each node, and containerd runs each pod on the node the status names.
func startSpread(t testing.TB, opts Options) (*Cluster, Placement, time.Duration) {
	t.Helper()
	c := NewCluster(t, opts)
	c.Commit("sleepers", map[string]string{"sleepers.yaml": sleepers})
	start := time.Now()
	c.Start()
	p := c.AgreeOn(c.Members(), "sleepers-", 6, 90*time.Second, twoEach)
	took := time.Since(start)
	t.Logf("6 pods Running and ready on 3 nodes %v after the agents started: %s", took.Round(time.Millisecond), p)
	// A pod that moved while the nodes learnt of each other is stopped
	// on its first node once its copy is ready: containerd soon runs
	// each pod once, where the status says.
	Eventually(t, 30*time.Second, "containerd runs each pod once, where the status says", func() (bool, string) {
		ctrs, err := c.Containers()
		if err != nil {
			return false, err.Error()
		}
		running := RunningPlacement(ctrs, "sleepers-")
		for pod, node := range p {
			if got := running[pod]; len(got) != 1 || got[0] != node {
				return false, fmt.Sprintf("containerd runs %s on %v; the status says %s", pod, got, node)
			}
		}
		if len(running) != 6 {
			return false, fmt.Sprintf("containerd runs %d sleepers pods, want 6: %v", len(running), running)
		}
		return true, ""
	})
	return c, p, took
}

// (a) A Deployment of 6 replicas spreads over the 3 nodes, every node
// reports the same pods on the same nodes, and lists 3 alive members.
func TestDeploymentSpreadsOverTheCluster(t *testing.T) {
	c, _, took := startSpread(t, Options{})
	// How fast a pod's state reaches every node is measured by the gossip
	// benchmarks (README, Cluster); a bound on the wall time here would
	// be a timing assertion, and at 20 s it could not tell a broadcast
	// from the 10 s push/pull anyway.
	t.Logf("the nodes agreed on 6 ready pods after %v", took.Round(time.Millisecond))
	c.AliveMembers(c.Members(), []string{"n1", "n2", "n3"}, 30*time.Second)
	// The cluster as each node sees it, asked from another node.
	for i, n := range c.Members() {
		from := c.Members()[(i+1)%3]
		st, err := n.StatusFrom(from)
		if err != nil {
			t.Fatal(err)
		}
		if st.Node != n.Name || !st.Quorum || len(st.Members) != 3 {
			t.Errorf("%s asked from %s: node %s, quorum %v, %d members", n.Name, from.Name, st.Node, st.Quorum, len(st.Members))
		}
	}
	out, err := c.Nodes[0].CLI("status", "nodes", "--server", c.Nodes[1].URL(), "--api-token-file", c.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gitorch status nodes, asked of n2 from n1:\n%s", out)
	for _, name := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(out, name) {
			t.Errorf("status nodes lacks %s:\n%s", name, out)
		}
	}
}

// (b) A node whose agent is killed and whose link is cut loses its pods
// to the survivors; the time from the kill to all 6 pods Running and
// ready on the survivors is logged.
func TestNodeDeathMovesItsPods(t *testing.T) {
	c, before, _ := startSpread(t, Options{})
	f := killAndWait(t, c, c.Node("n3"), before)
	t.Logf("n3 killed and cut: its pods run on n1 and n2 (containerd) %v after the kill, Running and ready in both survivors' status %v after it (gossip profile %s)",
		f.Started.Round(time.Millisecond), f.Reported.Round(time.Millisecond), c.opts.Profile)
	// A pod is listed once, where it runs: not also Running and ready
	// on the dead node.
	for _, d := range f.ListedTwice {
		t.Error(d)
	}

	ms, err := c.Node("n1").StatusNodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == "n3" && m.Status != status.MemberDead {
			t.Errorf("n1 lists n3 %s, want dead", m.Status)
		}
	}
	// The machine died, not the containers: n3's containerd namespace,
	// which no survivor reads, still runs its two pods (the cluster's
	// containerd stops them when the test ends).
	ctrs, err := c.Containers()
	if err != nil {
		t.Fatal(err)
	}
	onN3 := 0
	for _, x := range ctrs {
		if x.Node == "n3" && x.PID != 0 {
			onN3++
		}
	}
	if onN3 != 2 {
		t.Errorf("%d containers still run in n3's namespace, want its 2", onN3)
	}
}

// Failover is what killAndWait saw.
type Failover struct {
	// Started is the time from the kill until containerd ran every pod
	// on a survivor; Reported until both survivors' status said so.
	Started, Reported time.Duration
	// ListedTwice are pods a survivor listed Running and ready both on
	// the dead node and on a survivor.
	ListedTwice []string
}

// killAndWait kills node's agent and cuts its link, then waits until
// the survivors report all the pods of before Running and ready on
// themselves.
func killAndWait(t testing.TB, c *Cluster, victim *Node, before Placement) Failover {
	t.Helper()
	var survivors []*Node
	for _, n := range c.Members() {
		if n != victim {
			survivors = append(survivors, n)
		}
	}
	start := time.Now()
	victim.Kill()
	if err := victim.Host.Cut(); err != nil {
		t.Fatal(err)
	}
	after := Placement{}
	var views []Placement
	var f Failover
	Eventually(t, 90*time.Second, "the pods of "+victim.Name+" Running and ready on the survivors", func() (bool, string) {
		if f.Started == 0 {
			if ctrs, err := c.Containers(); err == nil {
				running := RunningPlacement(ctrs, "sleepers-")
				all := true
				for pod := range before {
					all = all && onSurvivor(strings.Join(running[pod], ","), victim.Name) != ""
				}
				if all {
					f.Started = time.Since(start)
				}
			}
		}
		views = views[:0]
		for _, n := range survivors {
			st, err := n.Status()
			if err != nil {
				return false, err.Error()
			}
			p := ReadyPods(st, "sleepers-")
			for pod := range before {
				on := onSurvivor(p[pod], victim.Name)
				if on == "" {
					return false, fmt.Sprintf("%s reports %s", n.Name, AllPods(st, "sleepers-"))
				}
				after[pod] = on
			}
			views = append(views, p)
		}
		return true, ""
	})
	f.Reported = time.Since(start)
	if f.Started == 0 {
		f.Started = f.Reported
	}
	// Only the victim's pods moved.
	for pod, node := range before {
		if node != victim.Name && after[pod] != node {
			t.Errorf("%s moved from %s to %s, though %s lives", pod, node, after[pod], node)
		}
	}
	for i, p := range views {
		for _, pod := range slices.Sorted(maps.Keys(p)) {
			if nodes := p[pod]; strings.Contains(nodes, ",") {
				f.ListedTwice = append(f.ListedTwice, fmt.Sprintf("%s lists %s Running and ready on %s, though %s is dead", survivors[i].Name, pod, nodes, victim.Name))
			}
		}
	}
	return f
}

// onSurvivor is the first node of nodes (comma-separated) that is not
// dead, "" if none.
func onSurvivor(nodes, dead string) string {
	for _, n := range strings.Split(nodes, ",") {
		if n != "" && n != dead {
			return n
		}
	}
	return ""
}

// (c) A node with a wrong gossip key, and one with another cluster name,
// never join: their agents run, the members never list them, and the
// logs say why.
func TestStrangersNeverJoin(t *testing.T) {
	c, before, _ := startSpread(t, Options{Extra: 2})
	wrongKey, otherName := c.Nodes[3], c.Nodes[4]
	// Their manifests are a ConfigMap alone, so that they run no pods of
	// their own.
	c.Commit("strangers", map[string]string{"strangers/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n"})
	wrongKey.Start("--gossip-key-file", c.NewKeyFile("wrong.key"), "--path", "strangers")
	otherName.Start("--cluster-name", "other", "--path", "strangers")

	// Each stranger is refused, and the logs name it.
	Eventually(t, 60*time.Second, "the members' logs name the refused strangers", func() (bool, string) {
		var log strings.Builder
		for _, n := range c.Members() {
			log.WriteString(n.Log())
		}
		for _, want := range []string{
			"wrong encryption key", wrongKey.Host.Addr.String(),
			"another cluster name", otherName.Host.Addr.String(),
		} {
			if !strings.Contains(log.String(), want) {
				return false, fmt.Sprintf("no %q in the members' logs", want)
			}
		}
		return true, ""
	})
	// Each stranger's own log says why it is alone.
	for n, why := range map[*Node][]string{
		wrongKey:  {"key"},
		otherName: {"cluster name", "label"},
	} {
		Eventually(t, 30*time.Second, n.Name+"'s log says why it could not join", func() (bool, string) {
			line := lastLine(n.Log(), "join failed")
			if line == "" {
				return false, "no failed join in its log: " + tail(n.Log(), 5)
			}
			for _, w := range why {
				if strings.Contains(strings.ToLower(line), w) {
					return true, ""
				}
			}
			return false, fmt.Sprintf("its failed join names none of %q: %s", why, line)
		})
	}
	// A while of their trying later, the members still list only
	// themselves, the strangers only themselves, and nothing moved.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.AliveMembers(c.Members(), []string{"n1", "n2", "n3"}, 10*time.Second)
		for _, n := range []*Node{wrongKey, otherName} {
			if !n.Running() {
				t.Fatalf("the agent of %s exited:\n%s", n.Name, tail(n.Log(), 20))
			}
			c.AliveMembers([]*Node{n}, []string{n.Name}, 10*time.Second)
		}
		time.Sleep(500 * time.Millisecond)
	}
	after := c.AgreeOn(c.Members(), "sleepers-", 6, 30*time.Second, nil)
	if !maps.Equal(before, after) {
		t.Errorf("pods moved: %s, then %s", before, after)
	}
	for _, n := range []*Node{wrongKey, otherName} {
		t.Logf("%s's log on its joins: %s", n.Name, lastLine(n.Log(), "join failed"))
	}
}

// lastLine is the last line of log holding s.
func lastLine(log, s string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}

// runningPIDs is every running container's PID, by node and container.
func runningPIDs(t testing.TB, c *Cluster) map[string]uint32 {
	t.Helper()
	ctrs, err := c.Containers()
	if err != nil {
		t.Fatal(err)
	}
	return PIDs(ctrs)
}

// (d) Restarting every agent in turn (SIGTERM, start again, wait until
// it rejoined) restarts no container anywhere.
func TestRollingRestartRestartsNoContainer(t *testing.T) {
	c, before, _ := startSpread(t, Options{})
	pids := runningPIDs(t, c)
	if len(pids) != 6 {
		t.Fatalf("%d running containers, want 6: %v", len(pids), pids)
	}
	all := []string{"n1", "n2", "n3"}
	for round := 1; round <= 2; round++ {
		for _, n := range c.Members() {
			n.Stop()
			n.Start()
			d := c.AliveMembers(c.Members(), all, 60*time.Second)
			t.Logf("round %d: %s restarted; every node lists the three alive %v later", round, n.Name, d.Round(time.Millisecond))
		}
	}
	after := c.AgreeOn(c.Members(), "sleepers-", 6, 30*time.Second, nil)
	if !maps.Equal(before, after) {
		t.Errorf("pods moved: %s, then %s", before, after)
	}
	if got := runningPIDs(t, c); !maps.Equal(pids, got) {
		t.Errorf("containers restarted: PIDs %v before, %v after", pids, got)
	}
	for _, n := range c.Members() {
		st, err := n.Status()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Pods {
			if p.Node != n.Name {
				continue
			}
			for _, ctr := range p.Containers {
				if ctr.Restarts != 0 || ctr.PID == 0 {
					t.Errorf("%s on %s: container %s restarts %d, pid %d", p.Name, n.Name, ctr.Name, ctr.Restarts, ctr.PID)
				}
			}
		}
	}
}

// (e) A commit with a typo is refused by every node, every node shows
// the refusal (its own and the others'), and the pods keep running.
func TestBadCommitIsRefusedEverywhere(t *testing.T) {
	c, before, _ := startSpread(t, Options{})
	pids := runningPIDs(t, c)
	bad := c.Commit("a typo", map[string]string{"sleepers.yaml": strings.Replace(sleepers, "replicas: 6", "replicsa: 6", 1)})
	Eventually(t, 60*time.Second, "every node shows the refusal of every node", func() (bool, string) {
		for _, n := range c.Members() {
			st, err := n.Status()
			if err != nil {
				return false, err.Error()
			}
			if st.Refused == nil || st.Refused.Commit != bad {
				return false, fmt.Sprintf("%s refused %+v", n.Name, st.Refused)
			}
			if errs := strings.Join(st.Refused.Errors, "\n"); !strings.Contains(errs, "replicsa") || !strings.Contains(errs, "sleepers.yaml:") {
				return false, fmt.Sprintf("%s's errors do not name the typo: %s", n.Name, errs)
			}
			for _, m := range st.Members {
				if m.Refused != bad || !strings.Contains(m.RefusedError, "replicsa") {
					return false, fmt.Sprintf("%s shows %s refusing %q: %q", n.Name, m.Name, m.Refused, m.RefusedError)
				}
			}
		}
		return true, ""
	})
	out, err := c.Nodes[0].CLI("status", "--server", c.Nodes[2].URL(), "--api-token-file", c.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gitorch status of n3:\n%s", out)
	if !strings.Contains(out, "replicsa") {
		t.Errorf("gitorch status does not show the refused field:\n%s", out)
	}
	// A few polls later nothing changed.
	time.Sleep(3 * time.Second)
	after := c.AgreeOn(c.Members(), "sleepers-", 6, 10*time.Second, nil)
	if !maps.Equal(before, after) {
		t.Errorf("pods moved: %s, then %s", before, after)
	}
	if got := runningPIDs(t, c); !maps.Equal(pids, got) {
		t.Errorf("containers restarted: PIDs %v before, %v after", pids, got)
	}
}
