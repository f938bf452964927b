package apply_test

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/plan"
)

// podNetBench is a network namespace with a link on 10.0.0.0/16, where
// routes via 10.0.x.y are on-link, and a PodNet on it.
func podNetBench(b testing.TB, peers int) (*apply.PodNet, plan.PodNetwork) {
	b.Helper()
	ns := applytest.NetNS(b)
	la := netlink.NewLinkAttrs()
	la.Name = "gtb0"
	veth := &netlink.Veth{LinkAttrs: la, PeerName: "gtb1"}
	nsh, err := netns.GetFromPath(ns)
	if err != nil {
		b.Fatal(err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(veth); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"gtb0", "gtb1"} {
		l, err := h.LinkByName(name)
		if err != nil {
			b.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			b.Fatal(err)
		}
	}
	l, _ := h.LinkByName("gtb0")
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 0, 0, 1), Mask: net.CIDRMask(16, 32)}}); err != nil {
		b.Fatal(err)
	}
	members := []plan.NetMember{{Name: "self", Address: netip.MustParseAddr("10.0.0.1"), PodCIDR: netip.MustParsePrefix("10.88.0.0/24"), State: plan.MemberAlive}}
	for i := 1; i <= peers; i++ {
		members = append(members, plan.NetMember{
			Name:    "n" + netip.AddrFrom4([4]byte{0, 0, byte(i >> 8), byte(i)}).String(),
			Address: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i + 1)}),
			PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 88 + byte(i>>8), byte(i), 0}), 24),
			State:   plan.MemberAlive,
		})
	}
	want := plan.PodRoutes(members, "self", members[0].PodCIDR, plan.DefaultServiceCIDR, 0, members[0].Since)
	return apply.NewPodNet(apply.PodNetConfig{HostNetNS: ns}), want
}

// TestPodNetworkManyPeers: a cluster of 1,000 nodes fits in one sync
// (the cluster's CIDRs are one set, not a rule each), and a sync to none
// removes every route.
func TestPodNetworkManyPeers(t *testing.T) {
	p, want := podNetBench(t, 999)
	ctx := context.Background()
	if err := p.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	rs, err := p.Routes()
	if err != nil || len(rs) != 999 {
		t.Fatalf("%d routes, %v; want 999", len(rs), err)
	}
	if err := p.Sync(ctx, plan.PodNetwork{PodCIDR: want.PodCIDR}); err != nil {
		t.Fatal(err)
	}
	if rs, err := p.Routes(); err != nil || len(rs) != 0 {
		t.Fatalf("%d routes, %v; want none", len(rs), err)
	}
}

// BenchmarkPodNetResync is the sync every resync makes in a cluster of
// 250 nodes when nothing changed: list gitorch's routes, rewrite the
// masquerade table.
func BenchmarkPodNetResync(b *testing.B) {
	p, want := podNetBench(b, 249)
	ctx := context.Background()
	if err := p.Sync(ctx, want); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := p.Sync(ctx, want); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPodNetPeerChange is a sync after one peer of 250 changed its
// address (one route replaced), then changed it back.
func BenchmarkPodNetPeerChange(b *testing.B) {
	p, want := podNetBench(b, 249)
	ctx := context.Background()
	moved := want
	moved.Routes = append([]plan.Route(nil), want.Routes...)
	moved.Routes[0].Via = netip.MustParseAddr("10.0.255.254")
	if err := p.Sync(ctx, want); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		w := want
		if i%2 == 0 {
			w = moved
		}
		i++
		if err := p.Sync(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
}
