package apply

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/plan"
)

// RouteProtocol marks the routes gitorch makes (`ip route show proto
// 201`): a restarted agent adopts them, and it never touches a route of
// another protocol.
const RouteProtocol netlink.RouteProtocol = 201

// PodNetTable is the nftables table (family inet) of the pod network's
// egress masquerade. gitorch writes no other table but the Service
// proxy's.
const PodNetTable = "gitorch-net"

// PodNetConfig configures a PodNet.
type PodNetConfig struct {
	// HostNetNS is the path of the node's network namespace; "" is the
	// namespace gitorch runs in. Tests give a namespace of their own.
	HostNetNS string
}

// PodNet programs the pod network across nodes: a route to each peer's
// pod CIDR via the peer's address (host-gw), IP forwarding, and the
// masquerade of pod traffic that leaves the cluster. It changes only
// routes of RouteProtocol and the table inet PodNetTable.
type PodNet struct {
	cfg PodNetConfig
	mu  sync.Mutex
}

// NewPodNet returns the pod network of the node.
func NewPodNet(cfg PodNetConfig) *PodNet { return &PodNet{cfg: cfg} }

// Sync makes the node's routes and masquerade those of want: it adds and
// replaces the routes want has, removes gitorch's routes it does not
// have, and rewrites the masquerade table in one transaction. Every part
// is tried; the error joins those that failed.
func (p *PodNet) Sync(_ context.Context, want plan.PodNetwork) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if err := p.inHost(enableForwarding); err != nil {
		errs = append(errs, fmt.Errorf("enable IP forwarding: %w", err))
	}
	if err := p.syncRoutes(want.Routes); err != nil {
		errs = append(errs, err)
	}
	if err := p.syncMasquerade(want); err != nil {
		errs = append(errs, fmt.Errorf("masquerade (table inet %s): %w", PodNetTable, err))
	}
	return errors.Join(errs...)
}

// Routes are gitorch's routes on the node, sorted by destination.
func (p *PodNet) Routes() ([]plan.Route, error) {
	h, err := p.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	rs, err := ownRoutes(h)
	if err != nil {
		return nil, err
	}
	var out []plan.Route
	for _, r := range rs {
		dst, _ := netip.AddrFromSlice(r.Dst.IP)
		bits, _ := r.Dst.Mask.Size()
		via, _ := netip.AddrFromSlice(r.Gw)
		out = append(out, plan.Route{Dst: netip.PrefixFrom(dst.Unmap(), bits), Via: via.Unmap()})
	}
	slices.SortFunc(out, func(a, b plan.Route) int {
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		return a.Dst.Bits() - b.Dst.Bits()
	})
	return out, nil
}

func (p *PodNet) inHost(fn func() error) error {
	if p.cfg.HostNetNS == "" {
		return fn()
	}
	return nsfile.Do(p.cfg.HostNetNS, fn)
}

func (p *PodNet) handle() (*netlink.Handle, error) { return netlinkHandle(p.cfg.HostNetNS) }

func netlinkHandle(nsPath string) (*netlink.Handle, error) {
	if nsPath == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

// nftConn is a connection to nftables in the namespace at nsPath.
func nftConn(nsPath string) (*nftables.Conn, error) {
	if nsPath == "" {
		return nftables.New()
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer ns.Close()
	// The connection's socket is made here, in the namespace, and stays
	// there once ns is closed.
	return nftables.New(nftables.WithNetNSFd(int(ns)), nftables.AsLasting())
}

// enableForwarding turns IPv4 forwarding on in the calling thread's
// network namespace, where the sysctl file opened belongs.
func enableForwarding() error {
	const path = "/proc/sys/net/ipv4/ip_forward"
	b, err := os.ReadFile(path)
	if err == nil && len(b) > 0 && b[0] == '1' {
		return nil
	}
	return os.WriteFile(path, []byte("1\n"), 0o644)
}

func ownRoutes(h *netlink.Handle) ([]netlink.Route, error) {
	rs, err := h.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes of protocol %d: %w", RouteProtocol, err)
	}
	return rs, nil
}

func (p *PodNet) syncRoutes(want []plan.Route) error {
	h, err := p.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	have, err := ownRoutes(h)
	if err != nil {
		return err
	}
	var errs []error
	wanted := map[netip.Prefix]netip.Addr{}
	for _, r := range want {
		wanted[r.Dst] = r.Via
	}
	own := map[netip.Prefix]bool{}
	for _, r := range have {
		dst, gw := routeKey(r)
		if via, ok := wanted[dst]; ok && via == gw && r.Dst != nil {
			delete(wanted, dst) // already there
			continue
		}
		if _, ok := wanted[dst]; ok {
			own[dst] = true // replaced below
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("remove route to %s: %w", dst, err))
		}
	}
	for _, r := range want {
		via, ok := wanted[r.Dst]
		if !ok {
			continue
		}
		route := &netlink.Route{
			Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
			Gw:       via.AsSlice(),
			Protocol: RouteProtocol,
			Table:    unix.RT_TABLE_MAIN,
		}
		// Replace only a route of gitorch's: a route to the same
		// destination that something else made stays, and is reported.
		set := h.RouteAdd
		if own[r.Dst] {
			set = h.RouteReplace
		}
		switch err := set(route); {
		case errors.Is(err, unix.EEXIST):
			errs = append(errs, fmt.Errorf("route %s via %s (node %s): a route to %s not made by gitorch exists; left alone", r.Dst, via, r.Node, r.Dst))
		case err != nil:
			errs = append(errs, fmt.Errorf("route %s via %s (node %s; host-gw needs the node on this node's L2 network): %w", r.Dst, via, r.Node, err))
		}
	}
	return errors.Join(errs...)
}

func routeKey(r netlink.Route) (netip.Prefix, netip.Addr) {
	var dst netip.Prefix
	if r.Dst != nil {
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		bits, _ := r.Dst.Mask.Size()
		dst = netip.PrefixFrom(a.Unmap(), bits)
	}
	gw, _ := netip.AddrFromSlice(r.Gw)
	return dst, gw.Unmap()
}

// syncMasquerade rewrites table inet PodNetTable in one transaction (the
// table is added if missing, deleted and made anew), so that no packet
// ever sees half of it:
//
//	table inet gitorch-net {
//		set cluster4 {
//			type ipv4_addr
//			flags interval
//			elements = { <this node's pod CIDR>, <each peer's>, <the service CIDR> }
//		}
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			meta nfproto != ipv4 return
//			ip saddr != <pod CIDR> return
//			ip daddr @cluster4 return
//			masquerade
//		}
//	}
//
// The cluster's CIDRs are a set, not a rule each: the rules of a cluster
// of hundreds of nodes, each acknowledged, overflow the netlink socket.
// Without a pod CIDR the table is removed.
func (p *PodNet) syncMasquerade(want plan.PodNetwork) error {
	c, err := nftConn(p.cfg.HostNetNS)
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: PodNetTable}
	c.AddTable(t)
	c.DelTable(t)
	if cidr := want.PodCIDR; cidr.IsValid() && cidr.Addr().Is4() {
		c.AddTable(t)
		set := &nftables.Set{Table: t, Name: "cluster4", KeyType: nftables.TypeIPAddr, Interval: true}
		if err := c.AddSet(set, intervalElements(want.Cluster)); err != nil {
			return err
		}
		ch := c.AddChain(&nftables.Chain{
			Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
		})
		add := func(exprs ...expr.Any) { c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs}) }
		ret := &expr.Verdict{Kind: expr.VerdictReturn}
		add(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}}, ret)
		add(append(ipMatch(12, cidr, expr.CmpOpNeq), ret)...)
		add(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
			ret)
		add(&expr.Masq{})
	}
	return c.Flush()
}

// intervalElements are the elements of an interval set of the IPv4
// prefixes: a start and an end (the address after the last, flagged) per
// range, prefixes held by another left out, as the kernel wants them
// disjoint.
func intervalElements(prefixes []netip.Prefix) []nftables.SetElement {
	var v4 []netip.Prefix
	for _, p := range prefixes {
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked())
		}
	}
	slices.SortFunc(v4, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits() // the shorter, holding the longer, first
	})
	var out []nftables.SetElement
	var last netip.Prefix
	for _, p := range v4 {
		if last.IsValid() && last.Contains(p.Addr()) {
			continue
		}
		last = p
		start := p.Addr().As4()
		out = append(out, nftables.SetElement{Key: start[:]})
		end := lastAddr(p).Next()
		if end.IsValid() { // else the range runs to 255.255.255.255
			e := end.As4()
			out = append(out, nftables.SetElement{Key: e[:], IntervalEnd: true})
		}
	}
	return out
}

// ipMatch compares the IPv4 address at offset of the network header
// (12: source, 16: destination) with prefix. It checks the packet is IPv4
// first, as nft does for `ip saddr` in an inet table (and so lists it).
func ipMatch(offset uint32, prefix netip.Prefix, op expr.CmpOp) []expr.Any {
	a := prefix.Masked().Addr().As4()
	mask := net.CIDRMask(prefix.Bits(), 32)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: 1, Data: a[:]},
	}
}
