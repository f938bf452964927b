package gossip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func pod(name, phase string, ready bool) PodStatus {
	p := PodStatus{Namespace: "default", Name: name, Phase: phase, Ready: ready, IP: "10.1.0.7",
		Revision: strings.Repeat("ab", 20), TemplateHash: "5d8f7c9b6", Containers: 2,
		StartedAt: time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC), Workload: "Deployment/" + name}
	if ready {
		p.ReadyContainers = 2
	}
	return p
}

// Three nodes started in an awkward order: n0 names itself and peers not
// yet started, n1 names n2 which starts after it, n2 names nobody.
func TestThreeNodes(t *testing.T) {
	ports := freePorts(t, 3)
	var changes atomic.Int32
	c0 := nodeConfig("n0", ports[0], addr(ports[0]), addr(ports[1]), addr(ports[2]))
	c0.OnChange = func() { changes.Add(1) }
	c0.Meta = Meta{APIAddr: "127.0.0.1:8080", PodCIDR: netip.MustParsePrefix("10.1.0.0/24"), Labels: map[string]string{"zone": "a"}}
	n0 := start(t, c0)
	n1 := start(t, nodeConfig("n1", ports[1], addr(ports[2])))
	n2 := start(t, nodeConfig("n2", ports[2]))
	nodes := []*testNode{n0, n1, n2}
	eventually(t, 10*time.Second, allAlive(nodes))

	for _, m := range n2.Members() {
		if m.Name == "n0" && (m.Meta.APIAddr != "127.0.0.1:8080" || m.Meta.Labels["zone"] != "a" || m.Addr.String() != addr(ports[0])) {
			t.Errorf("n2 sees n0 as %+v", m)
		}
		if m.Self != (m.Name == "n2") || m.Since.IsZero() {
			t.Errorf("n2 sees %s with Self=%v Since=%v", m.Name, m.Self, m.Since)
		}
	}
	if changes.Load() == 0 {
		t.Error("OnChange was not called while members joined")
	}

	t.Run("state", func(t *testing.T) {
		for i, n := range nodes {
			n.SetLocalState(NodeState{Revision: strings.Repeat("0", 40), Pods: []PodStatus{
				pod(fmt.Sprintf("web-%d", i), "Running", true), pod(fmt.Sprintf("db-%d", i), "Pending", false)}})
		}
		eventually(t, 5*time.Second, statesAgree(nodes))
		if got := len(n1.States()["n0"].Pods); got != 2 {
			t.Fatalf("n1 sees %d pods on n0, want 2", got)
		}
		// A change, then a deletion.
		n0.SetLocalState(NodeState{Revision: strings.Repeat("0", 40), Pods: []PodStatus{pod("web-0", "Running", false)}})
		eventually(t, 5*time.Second, statesAgree(nodes))
		if p := n2.States()["n0"].Pods; len(p) != 1 || p[0].Ready {
			t.Fatalf("n2 sees n0's pods as %+v", p)
		}
	})

	t.Run("deltas", func(t *testing.T) {
		// Enough pods that the state no longer fits in one packet: changes
		// go out one pod at a time.
		var pods []PodStatus
		for i := range 60 {
			pods = append(pods, pod(fmt.Sprintf("api-7c9d8f6b5-%d", i), "Running", true))
		}
		n1.SetLocalState(NodeState{Revision: strings.Repeat("1", 40), Pods: pods})
		if n := len(encodeSnapshots([]*snapshot{n1.store.snapshotOf("n1")})); n <= n1.maxBcast {
			t.Fatalf("state of %d bytes fits in a packet; the test needs more pods", n)
		}
		eventually(t, 10*time.Second, statesAgree(nodes))
		pods = append([]PodStatus(nil), pods[1:]...)
		pods[0].Restarts = 3
		n1.SetLocalState(NodeState{Revision: strings.Repeat("1", 40), Pods: pods})
		eventually(t, 10*time.Second, statesAgree(nodes))
		if got := len(n2.States()["n1"].Pods); got != 59 {
			t.Fatalf("n2 sees %d pods on n1, want 59", got)
		}
	})

	t.Run("leave", func(t *testing.T) {
		if err := n2.Leave(2 * time.Second); err != nil {
			t.Fatal(err)
		}
		n2.Shutdown()
		eventually(t, 5*time.Second, func() string {
			if st := memberStates(n0)["n2"]; st != StateLeft {
				return fmt.Sprintf("n0 sees n2 as %q", st)
			}
			return ""
		})
	})

	t.Run("kill", func(t *testing.T) {
		n1.Shutdown()
		var seen []MemberState
		eventually(t, 15*time.Second, func() string {
			st := memberStates(n0)["n1"]
			if len(seen) == 0 || seen[len(seen)-1] != st {
				seen = append(seen, st)
			}
			if st != StateDead {
				return fmt.Sprintf("n0 sees n1 as %q (states seen %v)", st, seen)
			}
			return ""
		})
		if fmt.Sprint(seen) != "[alive suspect dead]" && fmt.Sprint(seen) != "[suspect dead]" {
			t.Errorf("n0 saw n1 go through %v, want alive, suspect, dead", seen)
		}
		var since time.Time
		for _, m := range n0.Members() {
			if m.Name == "n1" {
				since = m.Since
			}
		}
		if since.IsZero() || time.Since(since) > 5*time.Second {
			t.Errorf("n1 dead since %v", since)
		}
		// Its last state is still known.
		if _, ok := n0.States()["n1"]; !ok {
			t.Error("n0 forgot n1's state at its death")
		}
	})
}

func TestLargerClusters(t *testing.T) {
	for _, size := range []int{10, 50} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			// 50 nodes in one process on 2 cores shared with other tests:
			// probes of 100 ms time out under load and members flap,
			// which this test is not about. Give probes the LAN timeout.
			timing := LocalTiming()
			if size > 10 {
				timing.ProbeInterval, timing.ProbeTimeout = time.Second, 500*time.Millisecond
			}
			nodes := startCluster(t, size, timing)
			eventually(t, 60*time.Second, allAlive(nodes))
			for i, n := range nodes {
				n.SetLocalState(NodeState{Revision: strings.Repeat("a", 40), Pods: []PodStatus{pod(fmt.Sprintf("web-%d", i), "Running", true)}})
			}
			eventually(t, 20*time.Second, statesAgree(nodes))
			nodes[size-1].SetLocalState(NodeState{Revision: strings.Repeat("b", 40)})
			eventually(t, 20*time.Second, statesAgree(nodes))
		})
	}
}

func TestWrongKeyNeverJoins(t *testing.T) {
	ports := freePorts(t, 3)
	a := start(t, nodeConfig("a", ports[0]))
	b := start(t, nodeConfig("b", ports[1], addr(ports[0])))
	cc := nodeConfig("c", ports[2], addr(ports[0]), addr(ports[1]))
	cc.Keys = [][]byte{[]byte("ffffffffffffffffffffffffffffffff")}
	c := start(t, cc)
	eventually(t, 10*time.Second, allAlive([]*testNode{a, b}))
	eventually(t, 10*time.Second, func() string {
		if a.logs.find("WARN", "wrong encryption key", "127.0.0.1") == "" {
			return "a logged no refusal of the wrong key"
		}
		return ""
	})
	neverMember(t, []*testNode{a, b}, c)
}

func TestOtherClusterNeverJoins(t *testing.T) {
	ports := freePorts(t, 3)
	a := start(t, nodeConfig("a", ports[0]))
	b := start(t, nodeConfig("b", ports[1], addr(ports[0])))
	cc := nodeConfig("c", ports[2], addr(ports[0]), addr(ports[1]))
	cc.ClusterName = "other"
	c := start(t, cc)
	eventually(t, 10*time.Second, allAlive([]*testNode{a, b}))
	eventually(t, 10*time.Second, func() string {
		if a.logs.find("WARN", "another cluster name", "127.0.0.1") == "" {
			return "a logged no refusal of the other cluster"
		}
		return ""
	})
	neverMember(t, []*testNode{a, b}, c)
	// The stranger's own log says what may be wrong.
	if c.logs.find("INFO", "another cluster name (--cluster-name), or another gossip key") == "" {
		t.Error("the node of the other cluster did not log why it cannot join")
	}
}

// neverMember checks, over several probe and push/pull rounds, that out
// and the nodes of in never see each other.
func neverMember(t *testing.T, in []*testNode, out *testNode) {
	t.Helper()
	until := time.Now().Add(3 * LocalTiming().PushPullInterval / 2)
	for time.Now().Before(until) {
		for _, n := range in {
			if _, ok := memberStates(n)[out.cfg.NodeName]; ok {
				t.Fatalf("%s sees %s as a member", n.cfg.NodeName, out.cfg.NodeName)
			}
			if _, ok := memberStates(out)[n.cfg.NodeName]; ok {
				t.Fatalf("%s sees %s as a member", out.cfg.NodeName, n.cfg.NodeName)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOverlappingPodCIDRRefused(t *testing.T) {
	ports := freePorts(t, 3)
	ca := nodeConfig("a", ports[0])
	ca.Meta.PodCIDR = netip.MustParsePrefix("10.1.0.0/24")
	cb := nodeConfig("b", ports[1], addr(ports[0]))
	cb.Meta.PodCIDR = netip.MustParsePrefix("10.1.1.0/24")
	cc := nodeConfig("c", ports[2], addr(ports[1]))
	cc.Meta.PodCIDR = netip.MustParsePrefix("10.1.0.128/25")
	a, b := start(t, ca), start(t, cb)
	eventually(t, 10*time.Second, allAlive([]*testNode{a, b}))
	c := start(t, cc)
	want := `pod CIDR 10.1.0.128/25 of node "c" overlaps 10.1.0.0/24 of node "a"`
	eventually(t, 10*time.Second, func() string {
		if b.logs.find("WARN", want) == "" {
			return "b logged no refusal naming both nodes and CIDRs"
		}
		return ""
	})
	neverMember(t, []*testNode{a, b}, c)
	// Moving a member's CIDR onto another's is refused locally.
	err := b.SetMeta(Meta{PodCIDR: netip.MustParsePrefix("10.1.0.0/16")})
	if err == nil || !strings.Contains(err.Error(), `overlaps 10.1.0.0/24 of node "a"`) {
		t.Errorf("SetMeta onto a's CIDR: %v", err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	cfg := nodeConfig("a", 1)
	cfg.Keys = nil
	if _, err := New(cfg); !errors.Is(err, ErrNoKeys) {
		t.Errorf("no keys: %v", err)
	}
	cfg.Insecure = true
	if _, err := New(cfg); err != nil {
		t.Errorf("insecure: %v", err)
	}
	cfg = nodeConfig("a", 1)
	cfg.Keys = [][]byte{testKey, []byte("short")}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "key 2 is 5 bytes, want 32") {
		t.Errorf("short key: %v", err)
	}
	cfg = nodeConfig("", 1)
	if _, err := New(cfg); err == nil {
		t.Error("no node name accepted")
	}
	cfg = nodeConfig("a", 1)
	cfg.ClusterName = strings.Repeat("x", 256)
	if _, err := New(cfg); err == nil {
		t.Error("cluster name of 256 bytes accepted")
	}
	cfg = nodeConfig("a", 1)
	cfg.Meta.Labels = map[string]string{"big": strings.Repeat("x", 600)}
	if _, err := New(cfg); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("big meta: %v", err)
	}
}

// Key rotation, mid-way: a node that already encrypts with the new key
// and one that still encrypts with the old one talk, as both have both.
func TestKeyRotation(t *testing.T) {
	newKey := []byte("NEWNEWNEWNEWNEWNEWNEWNEWNEWNEW12")
	ports := freePorts(t, 2)
	ca := nodeConfig("a", ports[0])
	ca.Keys = [][]byte{testKey, newKey}
	cb := nodeConfig("b", ports[1], addr(ports[0]))
	cb.Keys = [][]byte{newKey, testKey}
	a, b := start(t, ca), start(t, cb)
	eventually(t, 10*time.Second, allAlive([]*testNode{a, b}))
}

// Every node restarted at once, then one after another without waiting:
// all end alive in every view (hashicorp/memberlist#311).
func TestMassRestart(t *testing.T) {
	const n = 6
	nodes := startCluster(t, n, LocalTiming())
	eventually(t, 15*time.Second, allAlive(nodes))
	restart := func(i int) {
		nodes[i].Shutdown()
		nodes[i] = start(t, nodes[i].cfg)
		nodes[i].SetLocalState(NodeState{Revision: strings.Repeat("c", 40), Pods: []PodStatus{pod(fmt.Sprintf("p%d", i), "Running", true)}})
	}
	for i := range nodes {
		nodes[i].SetLocalState(NodeState{Pods: []PodStatus{pod("old", "Running", true)}})
	}
	eventually(t, 10*time.Second, statesAgree(nodes))

	for _, nd := range nodes {
		nd.Shutdown()
	}
	for i := range nodes {
		nodes[i] = start(t, nodes[i].cfg)
	}
	eventually(t, 20*time.Second, allAlive(nodes))

	// In turn: each node is killed and started again while the others may
	// still be suspecting the previous one.
	for round := 0; round < 2; round++ {
		for i := range nodes {
			restart(i)
		}
	}
	eventually(t, 30*time.Second, allAlive(nodes))
	// The restarted nodes' states replace their old ones everywhere.
	eventually(t, 10*time.Second, statesAgree(nodes))
	for _, p := range nodes[0].States()["n03"].Pods {
		if p.Name == "old" {
			t.Errorf("n00 still sees n03's pod from before the restart")
		}
	}
}

func TestSetMetaAtTheLimit(t *testing.T) {
	ports := freePorts(t, 2)
	a := start(t, nodeConfig("a", ports[0]))
	b := start(t, nodeConfig("b", ports[1], addr(ports[0])))
	eventually(t, 10*time.Second, allAlive([]*testNode{a, b}))
	m := Meta{APIAddr: "very-long-host-name.example.internal:8443", PodCIDR: netip.MustParsePrefix("fd00:1:2:3::/64"),
		CPUMilli: 64000, MemoryBytes: 256 << 30, Revision: strings.Repeat("f", 40), Labels: map[string]string{}}
	for i := 0; ; i++ {
		m.Labels[fmt.Sprintf("topology.kubernetes.io/zone-%02d", i)] = "europe-west4-a"
		if _, err := encodeMeta(m); err != nil {
			delete(m.Labels, fmt.Sprintf("topology.kubernetes.io/zone-%02d", i))
			break
		}
	}
	size := len(mustEncode(t, m))
	if size > MetaMaxSize || size < MetaMaxSize-60 {
		t.Fatalf("meta of %d bytes is not near the limit", size)
	}
	if err := a.SetMeta(m); err != nil {
		t.Fatalf("meta of %d bytes: %v", size, err)
	}
	eventually(t, 5*time.Second, func() string {
		for _, mm := range b.Members() {
			if mm.Name == "a" && len(mm.Meta.Labels) == len(m.Labels) {
				return ""
			}
		}
		return "b does not see a's labels"
	})
	m.Labels["one-more"] = "label"
	err := a.SetMeta(m)
	if !errors.Is(err, ErrMetaTooLarge) || !strings.Contains(err.Error(), "limit is 512") {
		t.Fatalf("meta over the limit: %v", err)
	}
}

func mustEncode(t *testing.T, m Meta) []byte {
	t.Helper()
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A member that this node suspected, that refuted, and that from then on
// answers other nodes' probes but never this node's direct pings (a paused
// process, then a path lost between two nodes): memberlist holds it alive,
// and so must Members, on every node.
func TestSuspicionEndsWhenMemberRefutes(t *testing.T) {
	timing := LocalTiming()
	// With 3 nodes and SuspicionMult over 3, memberlist expects no
	// confirmation and waits the minimum, 10 × 200 ms, before a death.
	timing.SuspicionMult = 10
	nodes, faults, ports := faultyCluster(t, 3, timing)
	a, x := faults[0](), faults[1]()

	// n1 pauses until n0 and n2 suspect it; n0 and n1 stay cut from each
	// other: only n2 relays between them.
	x.paused.Store(true)
	eventually(t, 10*time.Second, func() string {
		for _, n := range []*testNode{nodes[0], nodes[2]} {
			if st := memberStates(n)["n1"]; st != StateSuspect {
				return fmt.Sprintf("%s sees n1 %s", n.cfg.NodeName, st)
			}
		}
		return ""
	})
	a.cutFrom(addr(ports[1]), true)
	x.cutFrom(addr(ports[0]), true)
	x.paused.Store(false)
	// n1 syncs with n2 at once (rather than at its next push/pull), hears
	// it is suspect, and refutes well before the suspicion could end in a
	// death.
	if _, err := nodes[1].ml.Join([]string{addr(ports[2])}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, allAlive(nodes))
}

// A restarted node sends no state until it sets one: its peers keep its
// previous run's pods meanwhile, never an empty list, then take the new
// run's state over the old one.
func TestRestartedNodeKeepsItsStateUntilItSetsOne(t *testing.T) {
	nodes := startCluster(t, 3, LocalTiming())
	eventually(t, 15*time.Second, allAlive(nodes))
	pods := []PodStatus{pod("a", "Running", true), pod("b", "Running", true)}
	nodes[2].SetLocalState(NodeState{Pods: pods})
	eventually(t, 10*time.Second, statesAgree(nodes))
	check := func(when string) {
		t.Helper()
		for _, n := range nodes[:2] {
			if got := len(n.States()["n02"].Pods); got != 2 {
				t.Fatalf("%s: %s sees %d pods of n02, want 2", when, n.cfg.NodeName, got)
			}
		}
	}
	nodes[2].Shutdown()
	nodes[2] = start(t, nodes[2].cfg)
	// The new run is a member again, and has exchanged full states with
	// its peers, but has not said what it runs.
	eventually(t, 15*time.Second, allAlive(nodes))
	for range 2 * int(LocalTiming().PushPullInterval/(100*time.Millisecond)) {
		check("before the restarted node set its state")
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok := nodes[2].States()["n02"]; ok {
		t.Fatal("the restarted node lists a state of its own before it set one")
	}
	nodes[2].SetLocalState(NodeState{Pods: []PodStatus{pod("a", "Running", true), pod("c", "Running", false)}})
	eventually(t, 10*time.Second, statesAgree(nodes))
}
