package node_test

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
)

// podNetRecorder is a PodNetwork that keeps what it was last given.
type podNetRecorder struct {
	mu   sync.Mutex
	last plan.PodNetwork
	n    int
}

func (r *podNetRecorder) Sync(_ context.Context, want plan.PodNetwork) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last, r.n = want, r.n+1
	return nil
}

func (r *podNetRecorder) routes() []plan.Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.last.Routes)
}

// TestPodNetworkFollowsMembership: the agent gives its pod network the
// routes to its peers' pod CIDRs, and changes them as peers die (after
// the grace), leave, come back and change address.
func TestPodNetworkFollowsMembership(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	cidr := func(i byte) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 88, i, 0}), 24) }
	addr := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, i}) }
	c.bus.mu.Lock()
	for i, name := range []string{"n2", "n3"} {
		m := c.bus.member[name]
		m.Meta.PodCIDR = cidr(byte(i + 2))
		c.bus.member[name] = m
	}
	c.bus.mu.Unlock()
	rec := &podNetRecorder{}
	c.start("n1", func(cfg *node.Config) {
		cfg.PodNet = rec
		cfg.Meta.PodCIDR = cidr(1)
	})
	expect := func(what string, want ...plan.Route) {
		t.Helper()
		waitFor(t, what, func() bool { return slices.Equal(rec.routes(), want) })
	}
	r2 := plan.Route{Dst: cidr(2), Via: addr(2), Node: "n2"}
	r3 := plan.Route{Dst: cidr(3), Via: addr(3), Node: "n3"}
	expect("routes to n2 and n3", r2, r3)
	rec.mu.Lock()
	cluster := rec.last.Cluster
	rec.mu.Unlock()
	if want := []netip.Prefix{cidr(1), cidr(2), cidr(3), plan.DefaultServiceCIDR}; !slices.Equal(cluster, want) {
		t.Fatalf("destinations without NAT = %v, want %v", cluster, want)
	}

	// n3 dies: its route stays through the grace (3 s here), then goes.
	c.bus.setState("n3", gossip.StateDead)
	c.clk.Advance(2 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if got := rec.routes(); !slices.Equal(got, []plan.Route{r2, r3}) {
		t.Fatalf("routes within n3's grace = %v", got)
	}
	c.clk.Advance(2 * time.Second)
	expect("n3's route gone after the grace", r2)

	// n3 comes back; n2 changes its address, then leaves.
	c.bus.setState("n3", gossip.StateAlive)
	expect("n3's route back", r2, r3)
	c.bus.mu.Lock()
	m := c.bus.member["n2"]
	m.Addr = netip.AddrPortFrom(addr(22), 7946)
	c.bus.member["n2"] = m
	c.bus.mu.Unlock()
	c.bus.changed()
	expect("n2's route via its new address", plan.Route{Dst: cidr(2), Via: addr(22), Node: "n2"}, r3)
	c.bus.setState("n2", gossip.StateLeft)
	expect("n2's route gone once it left", r3)
}
