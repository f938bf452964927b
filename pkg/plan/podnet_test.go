package plan

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestPodRoutes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	const grace = 2 * time.Second
	own := netip.MustParsePrefix("10.88.1.0/24")
	svc := netip.MustParsePrefix("10.96.0.0/12")
	member := func(name, addr, cidr string, st MemberState, since time.Time) NetMember {
		m := NetMember{Name: name, State: st, Since: since}
		if addr != "" {
			m.Address = netip.MustParseAddr(addr)
		}
		if cidr != "" {
			m.PodCIDR = netip.MustParsePrefix(cidr)
		}
		return m
	}
	route := func(dst, via, node string) Route {
		return Route{Dst: netip.MustParsePrefix(dst), Via: netip.MustParseAddr(via), Node: node}
	}
	self := member("n1", "10.0.0.1", "10.88.1.0/24", MemberAlive, t0)
	tests := []struct {
		name    string
		members []NetMember
		want    []Route
		wake    time.Time
	}{
		{
			name:    "alone: no route",
			members: []NetMember{self},
		},
		{
			name: "alive and suspect peers keep their routes",
			members: []NetMember{self,
				member("n3", "10.0.0.3", "10.88.3.0/24", MemberSuspect, now.Add(-time.Minute)),
				member("n2", "10.0.0.2", "10.88.2.0/24", MemberAlive, t0)},
			want: []Route{route("10.88.2.0/24", "10.0.0.2", "n2"), route("10.88.3.0/24", "10.0.0.3", "n3")},
		},
		{
			name: "a dead peer keeps its route within the grace, and the pass wakes when it ends",
			members: []NetMember{self,
				member("n2", "10.0.0.2", "10.88.2.0/24", MemberDead, now.Add(-time.Second))},
			want: []Route{route("10.88.2.0/24", "10.0.0.2", "n2")},
			wake: now.Add(time.Second),
		},
		{
			name: "a dead peer past the grace loses its route",
			members: []NetMember{self,
				member("n2", "10.0.0.2", "10.88.2.0/24", MemberDead, now.Add(-grace))},
		},
		{
			name: "a peer that left loses its route at once",
			members: []NetMember{self,
				member("n2", "10.0.0.2", "10.88.2.0/24", MemberLeft, now)},
		},
		{
			name: "a new node taking a dead node's CIDR gets the route, even within the grace",
			members: []NetMember{self,
				member("old", "10.0.0.2", "10.88.2.0/24", MemberDead, now.Add(-time.Second)),
				member("new", "10.0.0.9", "10.88.2.0/25", MemberAlive, now)},
			want: []Route{route("10.88.2.0/25", "10.0.0.9", "new")},
			wake: now.Add(time.Second),
		},
		{
			name: "two live overlapping claims: the older one wins",
			members: []NetMember{self,
				member("b", "10.0.0.2", "10.88.2.0/24", MemberAlive, t0),
				member("a", "10.0.0.3", "10.88.2.0/24", MemberAlive, now)},
			want: []Route{route("10.88.2.0/24", "10.0.0.2", "b")},
		},
		{
			name: "no route for a CIDR overlapping this node's own",
			members: []NetMember{self,
				member("n2", "10.0.0.2", "10.88.0.0/16", MemberAlive, t0)},
		},
		{
			name: "no route without a CIDR or an address, or across families",
			members: []NetMember{self,
				member("nocidr", "10.0.0.2", "", MemberAlive, t0),
				member("noaddr", "", "10.88.3.0/24", MemberAlive, t0),
				member("v6", "fd00::4", "10.88.4.0/24", MemberAlive, t0)},
		},
		{
			name: "an IPv4-mapped address is the IPv4 address",
			members: []NetMember{self,
				member("n2", "::ffff:10.0.0.2", "10.88.2.0/24", MemberAlive, t0)},
			want: []Route{route("10.88.2.0/24", "10.0.0.2", "n2")},
		},
		{
			name: "a changed address moves the route",
			members: []NetMember{self,
				member("n2", "10.0.0.22", "10.88.2.0/24", MemberAlive, t0)},
			want: []Route{route("10.88.2.0/24", "10.0.0.22", "n2")},
		},
		{
			name: "a CIDR not in canonical form is masked",
			members: []NetMember{self,
				member("n2", "10.0.0.2", "10.88.2.7/24", MemberAlive, t0)},
			want: []Route{route("10.88.2.0/24", "10.0.0.2", "n2")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PodRoutes(tt.members, "n1", own, svc, grace, now)
			if !slices.Equal(got.Routes, tt.want) {
				t.Errorf("routes = %v, want %v", got.Routes, tt.want)
			}
			if !got.Wake.Equal(tt.wake) {
				t.Errorf("wake = %v, want %v", got.Wake, tt.wake)
			}
			cluster := []netip.Prefix{own, svc}
			for _, r := range tt.want {
				cluster = append(cluster, r.Dst)
			}
			slices.SortFunc(cluster, comparePrefix)
			if !slices.Equal(got.Cluster, cluster) {
				t.Errorf("cluster = %v, want %v", got.Cluster, cluster)
			}
			if got.PodCIDR != own {
				t.Errorf("pod CIDR = %v, want %v", got.PodCIDR, own)
			}
		})
	}
}

// TestPodRoutesPermutation: the routes do not depend on the order gossip
// lists the members in, and never overlap each other or this node's CIDR.
func TestPodRoutesPermutation(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	own := netip.MustParsePrefix("10.88.0.0/24")
	r := rand.New(rand.NewPCG(1, 2))
	states := []MemberState{MemberAlive, MemberSuspect, MemberDead, MemberLeft}
	for i := 0; i < 200; i++ {
		var members []NetMember
		for j := 0; j < 1+r.IntN(12); j++ {
			bits := 22 + r.IntN(4)
			cidr, _ := netip.AddrFrom4([4]byte{10, 88, byte(r.IntN(8)), 0}).Prefix(bits)
			members = append(members, NetMember{
				Name:    string(rune('a' + j)),
				Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(j + 2)}),
				PodCIDR: cidr,
				State:   states[r.IntN(len(states))],
				Since:   now.Add(-time.Duration(r.IntN(5)) * time.Second),
			})
		}
		want := PodRoutes(members, "self", own, netip.Prefix{}, 2*time.Second, now)
		r.Shuffle(len(members), func(a, b int) { members[a], members[b] = members[b], members[a] })
		got := PodRoutes(members, "self", own, netip.Prefix{}, 2*time.Second, now)
		if !got.Equal(want) {
			t.Fatalf("members %v: routes %v, then shuffled %v", members, want.Routes, got.Routes)
		}
		for k, a := range got.Routes {
			if a.Dst.Overlaps(own) {
				t.Fatalf("route %v overlaps this node's %v", a, own)
			}
			for _, b := range got.Routes[k+1:] {
				if a.Dst.Overlaps(b.Dst) {
					t.Fatalf("routes %v and %v overlap", a, b)
				}
			}
		}
	}
}

// BenchmarkPodRoutes: the routes of a node in a cluster of 1,000 members.
func BenchmarkPodRoutes(b *testing.B) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var members []NetMember
	for i := 0; i < 1000; i++ {
		members = append(members, NetMember{
			Name:    "n" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)),
			Address: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}),
			PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 88 + byte(i>>8), byte(i), 0}), 24),
			State:   MemberAlive,
			Since:   now,
		})
	}
	own := members[0].PodCIDR
	b.ReportAllocs()
	for b.Loop() {
		if got := PodRoutes(members, members[0].Name, own, DefaultServiceCIDR, 2*time.Second, now); len(got.Routes) != 999 {
			b.Fatalf("%d routes", len(got.Routes))
		}
	}
}
