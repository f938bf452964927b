package plan

import (
	"net/netip"
	"slices"
	"time"
)

// NetMember is a member of the cluster as the pod network sees it: where
// its pods are (its pod CIDR, from its gossiped metadata) and the address
// that reaches it (its gossip address).
type NetMember struct {
	Name    string
	Address netip.Addr
	PodCIDR netip.Prefix
	State   MemberState
	// Since is when this node saw the member enter State.
	Since time.Time
}

// Route sends a peer's pod CIDR to that peer's address (flannel's
// host-gw: the peer is on the same L2 network, so the kernel reaches the
// gateway directly).
type Route struct {
	Dst  netip.Prefix
	Via  netip.Addr
	Node string
}

// PodNetwork is what a node programs for pods to reach each other across
// nodes and leave the cluster.
type PodNetwork struct {
	// PodCIDR is this node's own pod network (on its bridge); traffic
	// from it to outside Cluster is masqueraded.
	PodCIDR netip.Prefix
	// Routes to the peers' pod CIDRs, sorted by Dst.
	Routes []Route
	// Cluster are the destinations pod traffic reaches without NAT: this
	// node's and every routed peer's pod CIDR and the service CIDR,
	// sorted and without duplicates.
	Cluster []netip.Prefix
	// Wake is when the routes change without a membership event (a dead
	// member's grace ends); zero when only an event can.
	Wake time.Time
}

// Equal reports whether p and q program the same thing (Wake aside).
func (p PodNetwork) Equal(q PodNetwork) bool {
	return p.PodCIDR == q.PodCIDR && slices.Equal(p.Routes, q.Routes) && slices.Equal(p.Cluster, q.Cluster)
}

// PodRoutes decides the routes this node wants to its peers' pod CIDRs,
// and which destinations its pods reach without NAT, from the members as
// gossip reports them. It follows the same clock as Eligible:
//
//   - alive and suspect members keep their route: a suspect member may be
//     alive, and a suspicion that is refuted must not cut its pods off;
//   - a dead member keeps its route for deadGrace after its death, as it
//     keeps its pods (an agent restarted within it loses no traffic),
//     then loses it: its pods start elsewhere, and its CIDR may be
//     taken by a new node;
//   - a member that left loses its route at once.
//
// A member without a valid pod CIDR or address, or whose address is not
// of its CIDR's family, gets no route. Overlapping CIDRs are refused at
// join among live members, but a dead member's CIDR may overlap a new
// member's: the live member wins, then the one seen in its state longest
// (an older claim), then the name. A CIDR overlapping this node's own
// never gets a route (the bridge has it), nor does self.
func PodRoutes(members []NetMember, self string, podCIDR, serviceCIDR netip.Prefix, deadGrace time.Duration, now time.Time) PodNetwork {
	out := PodNetwork{PodCIDR: podCIDR.Masked()}
	if out.PodCIDR.IsValid() {
		out.Cluster = append(out.Cluster, out.PodCIDR)
	}
	if serviceCIDR.IsValid() {
		out.Cluster = append(out.Cluster, serviceCIDR.Masked())
	}
	type candidate struct {
		m    NetMember
		cidr netip.Prefix
		live bool
	}
	var cands []candidate
	for _, m := range members {
		if m.Name == self || !m.PodCIDR.IsValid() || !m.Address.IsValid() {
			continue
		}
		addr := m.Address.Unmap()
		cidr := m.PodCIDR.Masked()
		if addr.Is4() != cidr.Addr().Is4() {
			continue
		}
		if out.PodCIDR.IsValid() && cidr.Overlaps(out.PodCIDR) {
			continue
		}
		live := false
		switch m.State {
		case MemberAlive, MemberSuspect:
			live = true
		case MemberDead:
			end := m.Since.Add(deadGrace)
			if !now.Before(end) {
				continue
			}
			if out.Wake.IsZero() || end.Before(out.Wake) {
				out.Wake = end
			}
		default: // left, or a state gossip does not name
			continue
		}
		m.Address = addr
		cands = append(cands, candidate{m: m, cidr: cidr, live: live})
	}
	// Best claim first; a candidate overlapping one already taken loses.
	// (Indices are sorted, not the candidates: moving structs that hold
	// pointers costs write barriers.)
	order := make([]int32, len(cands))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &cands[i], &cands[j]
		switch {
		case a.live != b.live:
			if a.live {
				return -1
			}
			return 1
		case !a.m.Since.Equal(b.m.Since):
			return a.m.Since.Compare(b.m.Since)
		case a.m.Name < b.m.Name:
			return -1
		case a.m.Name > b.m.Name:
			return 1
		}
		return 0
	})
	// taken are the CIDRs routed so far; under, every prefix that holds
	// one of them. A CIDR overlaps a taken one if it holds one, or one of
	// its own prefixes is taken: a few map lookups per member.
	taken, under := map[netip.Prefix]bool{}, map[netip.Prefix]bool{}
	for _, k := range order {
		c := &cands[k]
		if under[c.cidr] || holdsAny(taken, c.cidr) {
			continue
		}
		taken[c.cidr] = true
		for b := c.cidr.Bits(); b >= 0; b-- {
			p, _ := c.cidr.Addr().Prefix(b)
			under[p] = true
		}
		out.Routes = append(out.Routes, Route{Dst: c.cidr, Via: c.m.Address, Node: c.m.Name})
		out.Cluster = append(out.Cluster, c.cidr)
	}
	slices.SortFunc(out.Routes, func(a, b Route) int { return comparePrefix(a.Dst, b.Dst) })
	slices.SortFunc(out.Cluster, comparePrefix)
	out.Cluster = slices.Compact(out.Cluster)
	return out
}

// holdsAny reports whether p or a shorter prefix holding it is in set.
func holdsAny(set map[netip.Prefix]bool, p netip.Prefix) bool {
	for b := p.Bits(); b >= 0; b-- {
		if q, _ := p.Addr().Prefix(b); set[q] {
			return true
		}
	}
	return false
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
