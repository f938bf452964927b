package node_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/clock/clocktest"
	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
)

// fakeBus is gossip as a test controls it: every node sees the same
// members and states at once, and the test sets who is alive.
type fakeBus struct {
	mu     sync.Mutex
	clk    *clocktest.Fake
	states map[string]gossip.NodeState
	member map[string]gossip.Member
	agents map[string]*node.Agent
	// alone: nodes whose view shows only themselves (not joined yet).
	alone map[string]bool
	// blind: nodes that see only themselves while the others hear them
	// (a join the node has not heard of yet).
	blind map[string]bool
	// published records every state the nodes in it set, once a test
	// asked for it (record).
	published map[string][]gossip.NodeState
}

// record has the bus keep every state name publishes from now on.
func (b *fakeBus) record(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.published == nil {
		b.published = map[string][]gossip.NodeState{}
	}
	b.published[name] = []gossip.NodeState{}
}

// recorded returns the states name published since record.
func (b *fakeBus) recorded(name string) []gossip.NodeState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.published[name])
}

func newFakeBus(clk *clocktest.Fake) *fakeBus {
	return &fakeBus{clk: clk, states: map[string]gossip.NodeState{}, member: map[string]gossip.Member{}, agents: map[string]*node.Agent{}, alone: map[string]bool{}, blind: map[string]bool{}}
}

// view is one node's handle on the bus.
type view struct {
	bus  *fakeBus
	name string
}

func (v view) Members() []gossip.Member {
	v.bus.mu.Lock()
	defer v.bus.mu.Unlock()
	var out []gossip.Member
	for _, m := range v.bus.member {
		if (v.bus.alone[v.name] || v.bus.blind[v.name]) && m.Name != v.name {
			continue
		}
		m.Self = m.Name == v.name
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b gossip.Member) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return out
}

func (v view) SetMeta(m gossip.Meta) error {
	v.bus.mu.Lock()
	mm := v.bus.member[v.name]
	mm.Meta = m
	v.bus.member[v.name] = mm
	v.bus.mu.Unlock()
	v.bus.changed()
	return nil
}

func (v view) SetLocalState(s gossip.NodeState) {
	v.bus.mu.Lock()
	if v.bus.alone[v.name] {
		// Cut off: what it says reaches no one.
		v.bus.mu.Unlock()
		return
	}
	old, had := v.bus.states[v.name]
	v.bus.states[v.name] = s
	if rec, ok := v.bus.published[v.name]; ok {
		v.bus.published[v.name] = append(rec, s)
	}
	v.bus.mu.Unlock()
	if !had || fmt.Sprint(old) != fmt.Sprint(s) {
		v.bus.changed()
	}
}

func (v view) States() map[string]gossip.NodeState {
	v.bus.mu.Lock()
	defer v.bus.mu.Unlock()
	out := map[string]gossip.NodeState{}
	for k, s := range v.bus.states {
		if (v.bus.alone[v.name] || v.bus.blind[v.name]) && k != v.name {
			continue
		}
		out[k] = s
	}
	return out
}

// States is every node's state as the bus holds it.
func (b *fakeBus) States() map[string]gossip.NodeState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.states)
}

func (b *fakeBus) changed() {
	b.mu.Lock()
	agents := make([]*node.Agent, 0, len(b.agents))
	for _, a := range b.agents {
		agents = append(agents, a)
	}
	b.mu.Unlock()
	for _, a := range agents {
		go a.ClusterChanged()
	}
}

// setState makes the bus report name as st from now on.
func (b *fakeBus) setState(name string, st gossip.MemberState) {
	b.mu.Lock()
	m := b.member[name]
	m.State, m.Since = st, b.clk.Now()
	b.member[name] = m
	b.mu.Unlock()
	b.changed()
}

// clusterNode is one agent of a fake cluster.
type clusterNode struct {
	name string
	rt   *applytest.FakeRuntime
	ag   *node.Agent
	stop func()
}

// fakeCluster runs n agents on one fake bus, one fake clock and one
// in-memory repository.
type fakeCluster struct {
	t     *testing.T
	clk   *clocktest.Fake
	src   *memSource
	bus   *fakeBus
	nodes map[string]*clusterNode
	dirs  map[string]string
}

func newFakeCluster(t *testing.T, names ...string) *fakeCluster {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	c := &fakeCluster{t: t, clk: clk, src: newMemSource(), bus: newFakeBus(clk), nodes: map[string]*clusterNode{}, dirs: map[string]string{}}
	for i, name := range names {
		c.bus.member[name] = gossip.Member{Name: name, State: gossip.StateAlive, Since: clk.Now(),
			Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 7946),
			Meta: gossip.Meta{CPUMilli: 4000, MemoryBytes: 8 << 30}}
		c.dirs[name] = t.TempDir()
		c.nodes[name] = &clusterNode{name: name, rt: applytest.NewFakeRuntime(clk)}
	}
	return c
}

// start starts (or restarts) the agent of name on its runtime and data,
// with mod applied to its configuration.
func (c *fakeCluster) start(name string, mod ...func(*node.Config)) *clusterNode {
	n := c.nodes[name]
	cfg := node.Config{
		Node:         plan.Node{Name: name, Allocatable: plan.Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}},
		Source:       c.src,
		Runtime:      n.rt,
		DataDir:      c.dirs[name],
		PollInterval: time.Hour,
		Resync:       time.Hour,
		Clock:        c.clk,
		Logger:       testLogger(c.t),
		Cluster:      view{c.bus, name},
		Meta:         gossip.Meta{CPUMilli: 4000, MemoryBytes: 8 << 30},
		// The timing these tests advance the clock by, whatever the
		// defaults.
		Membership: plan.MembershipPolicy{DeadGrace: 3 * time.Second, RejoinSettle: 30 * time.Second},
		Handoff:    plan.HandoffPolicy{Fence: 15 * time.Second},
	}
	for _, m := range mod {
		m(&cfg)
	}
	ag, err := node.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.bus.mu.Lock()
	c.bus.agents[name] = ag
	m := c.bus.member[name]
	m.Meta = cfg.Meta
	c.bus.member[name] = m
	c.bus.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	var once sync.Once
	n.ag = ag
	n.stop = func() {
		once.Do(func() {
			c.bus.mu.Lock()
			delete(c.bus.agents, name)
			c.bus.mu.Unlock()
			cancel()
			<-done
		})
	}
	c.t.Cleanup(n.stop)
	return n
}

// runningOn lists the pods running on each node's runtime.
func (c *fakeCluster) runningOn() map[string][]string {
	out := map[string][]string{}
	for name, n := range c.nodes {
		pods, _ := n.rt.ListPods(context.Background())
		for _, p := range pods {
			if len(p.Containers) > 0 && p.Containers[0].State == "running" {
				out[name] = append(out[name], p.Name)
			}
		}
	}
	return out
}

func (c *fakeCluster) total() int {
	n := 0
	for _, pods := range c.runningOn() {
		n += len(pods)
	}
	return n
}

func TestFakeClusterSpreadsAndHeals(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(web(6, "busybox:1.36"))
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	waitFor(t, "6 pods running", func() bool { return c.total() == 6 })
	on := c.runningOn()
	for _, name := range []string{"n1", "n2", "n3"} {
		if len(on[name]) == 0 {
			t.Fatalf("no pod on %s: %v", name, on)
		}
	}
	// Every node reports the same cluster.
	waitFor(t, "every node sees 6 pods", func() bool {
		for _, n := range c.nodes {
			if len(n.ag.Cluster().Pods) != 6 {
				return false
			}
		}
		return true
	})
	// n3 dies: its pods stay placed on it through the grace, then come
	// back on the others.
	lost := len(on["n3"])
	c.nodes["n3"].stop()
	c.bus.setState("n3", gossip.StateDead)
	c.clk.Advance(2 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if got := len(c.runningOn()["n1"]) + len(c.runningOn()["n2"]); got != 6-lost {
		t.Fatalf("pods moved before the grace ended: %v", c.runningOn())
	}
	c.clk.Advance(2 * time.Second)
	waitFor(t, "n3's pods on n1 and n2", func() bool {
		on := c.runningOn()
		return len(on["n1"])+len(on["n2"]) == 6
	})
	// Every node lists each pod once, where it runs now.
	waitFor(t, "n1 lists the 6 pods once each, none on n3", func() bool {
		pods := c.nodes["n1"].ag.Cluster().Pods
		seen := map[string]bool{}
		for _, p := range pods {
			if seen[p.Name] || p.Node == "n3" {
				return false
			}
			seen[p.Name] = true
		}
		return len(pods) == 6
	})
}

func TestFakeClusterQuickRestartMovesNothing(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(web(6, "busybox:1.36"))
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	waitFor(t, "6 pods running", func() bool { return c.total() == 6 })
	starts, stops := map[string]int{}, map[string]int{}
	for name, n := range c.nodes {
		starts[name], stops[name] = n.rt.Count("start "), n.rt.Count("stop")
	}
	// A rolling restart: each agent stops, is seen dead for a second,
	// and comes back within the grace.
	for _, name := range []string{"n1", "n2", "n3"} {
		c.nodes[name].stop()
		c.bus.setState(name, gossip.StateDead)
		c.clk.Advance(time.Second)
		c.start(name)
		c.bus.setState(name, gossip.StateAlive)
		waitFor(t, name+" runs its pods again", func() bool { return len(c.nodes[name].ag.Status().Pods) > 0 })
	}
	c.clk.Advance(10 * time.Second)
	time.Sleep(20 * time.Millisecond)
	for name, n := range c.nodes {
		if got := n.rt.Count("start "); got != starts[name] {
			t.Fatalf("%s started %d containers during the rolling restart: %v", name, got-starts[name], n.rt.Ops())
		}
		if got := n.rt.Count("stop"); got != stops[name] {
			t.Fatalf("%s stopped something: %v", name, n.rt.Ops())
		}
	}
}

// A restarted agent publishes its pods only once it has adopted them:
// peers never see its pod count, nor its ready count, drop (they would
// count a rollout's pods short, and drop its Service endpoints).
func TestFakeClusterRestartedAgentNeverPublishesFewerPods(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(web(9, "busybox:1.36"))
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	waitFor(t, "9 pods running", func() bool { return c.total() == 9 })
	c.restartEachKeepsItsPods(t)
}

// The same with a readiness probe: the restarted agent's prober has no
// result yet for the pods it adopts.
func TestFakeClusterRestartedAgentNeverPublishesFewerReadyPods(t *testing.T) {
	c, _ := startRollingCluster(t, 600)
	c.restartEachKeepsItsPods(t)
}

// restartEachKeepsItsPods restarts each agent in turn, and fails if one
// publishes fewer pods, or fewer ready pods, than it had before.
func (c *fakeCluster) restartEachKeepsItsPods(t *testing.T) {
	ready := func(st gossip.NodeState) (n int) {
		for _, p := range st.Pods {
			if p.Ready {
				n++
			}
		}
		return n
	}
	for _, name := range []string{"n1", "n2", "n3"} {
		before := len(c.runningOn()[name])
		if before == 0 {
			t.Fatalf("%s runs no pod", name)
		}
		waitFor(t, name+" publishes its pods ready", func() bool {
			st := c.bus.States()[name]
			return len(st.Pods) == before && ready(st) == before
		})
		c.bus.record(name)
		c.nodes[name].stop()
		c.start(name)
		waitFor(t, name+" publishes its pods again", func() bool {
			c.clk.Advance(100 * time.Millisecond)
			rec := c.bus.recorded(name)
			return len(rec) > 0 && len(rec[len(rec)-1].Pods) == before && ready(rec[len(rec)-1]) == before
		})
		for i, st := range c.bus.recorded(name) {
			if len(st.Pods) < before || ready(st) < before {
				t.Fatalf("%s's state %d after its restart has %d pods, %d ready; it ran %d ready: %+v", name, i, len(st.Pods), ready(st), before, st)
			}
		}
	}
}

func TestFakeClusterRejoinIsMakeBeforeBreak(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(web(6, "busybox:1.36"))
	for _, name := range []string{"n1", "n2"} {
		c.start(name)
	}
	// n3 was never up: the others know it dead past the grace.
	c.bus.setState("n3", gossip.StateDead)
	c.clk.Advance(5 * time.Second)
	waitFor(t, "6 pods on n1 and n2", func() bool { return c.total() == 6 })
	c.start("n3")
	c.bus.setState("n3", gossip.StateAlive)
	settling := func(name string) bool {
		for _, m := range c.nodes[name].ag.Cluster().Members {
			if m.Name == "n3" && !m.Schedulable && !m.SettledAt.IsZero() {
				return true
			}
		}
		return false
	}
	waitFor(t, "n1 and n2 to see n3 settling", func() bool { return settling("n1") && settling("n2") })
	// n3 settles first: nothing moves for 30 s.
	c.clk.Advance(20 * time.Second)
	time.Sleep(20 * time.Millisecond)
	// n3 itself may start the pods it is placed (it knows no history);
	// the others keep theirs until n3 reports them ready.
	if on := c.runningOn(); len(on["n1"])+len(on["n2"]) < 6 {
		t.Fatalf("availability lost during settle: %v", on)
	}
	c.clk.Advance(15 * time.Second)
	defer func() {
		if t.Failed() {
			t.Logf("running: %v", c.runningOn())
			for name, n := range c.nodes {
				t.Logf("%s: %+v", name, n.ag.Cluster().Members)
			}
		}
	}()
	waitFor(t, "pods spread back to n3 with none lost", func() bool {
		on := c.runningOn()
		return len(on["n3"]) > 0 && c.total() == 6
	})
	for name, n := range c.nodes {
		if name == "n3" {
			continue
		}
		// Every stop on n1 and n2 came after n3 started that pod.
		for _, op := range n.rt.Ops() {
			var pod string
			if _, err := fmt.Sscanf(op, "stoppod default/%s", &pod); err == nil {
				if c.nodes["n3"].rt.Count("start default/"+pod) == 0 {
					t.Fatalf("%s stopped %s before n3 started it", name, pod)
				}
			}
		}
	}
}

func TestFakeClusterLeaveMovesPodsMakeBeforeBreak(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(web(6, "busybox:1.36"))
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	waitFor(t, "6 pods running", func() bool { return c.total() == 6 })
	moving := c.runningOn()["n1"]
	if len(moving) == 0 {
		t.Fatal("no pod on n1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes["n1"].ag.Leave(ctx); err != nil {
		t.Logf("running: %v", c.runningOn())
		t.Logf("n1 pods: %+v", c.nodes["n1"].ag.Status().Pods)
		t.Logf("n1 sees: %+v", c.nodes["n1"].ag.Cluster().Pods)
		t.Fatal(err)
	}
	on := c.runningOn()
	if len(on["n1"]) != 0 || len(on["n2"])+len(on["n3"]) != 6 {
		t.Fatalf("after leave: %v", on)
	}
	for _, pod := range moving {
		// n1 stopped each pod after another node had started it.
		started := c.nodes["n2"].rt.Count("start default/"+pod) + c.nodes["n3"].rt.Count("start default/"+pod)
		if started == 0 {
			t.Fatalf("%s stopped on n1 but started nowhere", pod)
		}
	}
	if !c.bus.member["n1"].Meta.Unschedulable {
		t.Fatal("n1 did not announce it is unschedulable")
	}
}

const dbStatefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, image: busybox:1.36}
`

// A node restarted before it has rejoined sees only itself: it must not
// take that for a partition and stop its StatefulSet pods.
func TestFakeClusterRestartBeforeRejoinKeepsStatefulSetPods(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(map[string]string{"db.yaml": dbStatefulSet})
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	waitFor(t, "3 db pods running", func() bool { return c.total() == 3 })
	n1 := c.nodes["n1"]
	pods := len(c.runningOn()["n1"])
	stops := n1.rt.Count("stop")
	n1.stop()
	c.bus.mu.Lock()
	c.bus.alone["n1"] = true
	c.bus.mu.Unlock()
	c.start("n1")
	waitFor(t, "n1 loaded its revision", func() bool { return n1.ag.Status().Running != nil })
	c.clk.Advance(time.Second)
	time.Sleep(20 * time.Millisecond)
	c.bus.mu.Lock()
	delete(c.bus.alone, "n1")
	c.bus.mu.Unlock()
	c.bus.changed()
	c.clk.Advance(10 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if got := n1.rt.Count("stop"); got != stops {
		t.Fatalf("n1 stopped StatefulSet pods while rejoining: %v", n1.rt.Ops())
	}
	if c.total() != 3 {
		t.Fatalf("db pods: %v", c.runningOn())
	}
	waitFor(t, "n1 reports its pods again", func() bool { return len(n1.ag.Status().Pods) == pods })
}

// Cut off from the others, a node stops its StatefulSet pods; the
// others start them only after the fence and the pods' grace period.
func TestFakeClusterPartitionFencesStatefulSetPods(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(map[string]string{"db.yaml": dbStatefulSet})
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name)
	}
	waitFor(t, "3 db pods running", func() bool { return c.total() == 3 })
	cut := ""
	for name, pods := range c.runningOn() {
		if len(pods) > 0 {
			cut = name
			break
		}
	}
	lost := c.runningOn()[cut]
	// The partition: cut sees only itself (the others dead), and the
	// others see it dead.
	c.bus.mu.Lock()
	c.bus.alone[cut] = true
	c.bus.mu.Unlock()
	c.bus.setState(cut, gossip.StateDead)
	c.clk.Advance(4 * time.Second) // past the 3 s grace: cut has no quorum
	waitFor(t, cut+" stops its StatefulSet pods", func() bool { return len(c.runningOn()[cut]) == 0 })
	// The others wait for the fence (15 s) plus the grace period (30 s).
	c.clk.Advance(30 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if c.total() != 3-len(lost) {
		t.Fatalf("started before the fence ended: %v", c.runningOn())
	}
	c.clk.Advance(20 * time.Second)
	waitFor(t, "the lost pods back on the others", func() bool { return c.total() == 3 && len(c.runningOn()[cut]) == 0 })

	// The partition heals: no ordinal ever runs twice, and the cluster
	// settles with each once.
	c.bus.mu.Lock()
	delete(c.bus.alone, cut)
	c.bus.mu.Unlock()
	c.bus.setState(cut, gossip.StateAlive)
	once := func() {
		t.Helper()
		seen := map[string]string{}
		for name, pods := range c.runningOn() {
			for _, p := range pods {
				if other, ok := seen[p]; ok {
					t.Fatalf("%s runs on %s and %s", p, other, name)
				}
				seen[p] = name
			}
		}
	}
	for range 60 {
		once()
		c.clk.Advance(time.Second)
		time.Sleep(2 * time.Millisecond)
		once()
	}
	waitFor(t, "3 db pods after the heal", func() bool { once(); return c.total() == 3 })
}
