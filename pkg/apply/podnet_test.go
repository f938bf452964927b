package apply_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/plan"
)

// lanNode is a node of a test LAN with a pod network: a bridge in the
// host's namespace and one pod.
type lanNode struct {
	host    applytest.Host
	cidr    netip.Prefix
	net     *apply.BridgeNetwork
	podNet  *apply.PodNet
	podNS   string
	podIP   netip.Addr
	dataDir string
}

func newLANNode(t *testing.T, h applytest.Host, cidr string) *lanNode {
	t.Helper()
	n := &lanNode{host: h, cidr: netip.MustParsePrefix(cidr), dataDir: t.TempDir()}
	ipam, err := apply.OpenIPAM(filepath.Join(n.dataDir, "ipam.json"), n.cidr)
	if err != nil {
		t.Fatal(err)
	}
	if n.net, err = apply.NewBridgeNetwork(apply.BridgeConfig{Bridge: "gtest0", IPAM: ipam, HostNetNS: h.NetNS}); err != nil {
		t.Fatal(err)
	}
	n.podNet = apply.NewPodNet(apply.PodNetConfig{HostNetNS: h.NetNS})
	podDir := filepath.Join(n.dataDir, "pod")
	if err := nsfile.Create(podDir, "", nsfile.Net); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsfile.Remove(podDir, nsfile.Net) })
	n.podNS = nsfile.Path(podDir, nsfile.Net)
	if n.podIP, err = n.net.Attach(context.Background(), "default_pod", n.podNS); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *lanNode) member(name string) plan.NetMember {
	return plan.NetMember{Name: name, Address: n.host.Addr, PodCIDR: n.cidr, State: plan.MemberAlive}
}

// sync programs the node's pod network for the members, as the agent
// does with what PodRoutes decides.
func (n *lanNode) sync(t *testing.T, self string, members ...plan.NetMember) plan.PodNetwork {
	t.Helper()
	want := plan.PodRoutes(members, self, n.cidr, plan.DefaultServiceCIDR, 2*time.Second, time.Now())
	if err := n.podNet.Sync(context.Background(), want); err != nil {
		t.Fatalf("sync %s: %v", self, err)
	}
	return want
}

// listen accepts connections in the namespace at nsPath, on addr:port,
// and answers each with the address it sees the connection come from.
func listen(t *testing.T, nsPath string, addr netip.Addr, port int) {
	t.Helper()
	var ln net.Listener
	if err := nsfile.Do(nsPath, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, uint16(port)).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String()))
			c.Close()
		}
	}()
}

// seenFrom connects from the namespace at nsPath to addr:port and returns
// the source address the listener saw.
func seenFrom(nsPath string, addr netip.Addr, port int) (string, error) {
	var conn net.Conn
	if err := nsfile.Do(nsPath, func() (err error) {
		conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(port)).String(), 3*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 64)
	k, err := conn.Read(b)
	if err != nil {
		return "", err
	}
	return string(b[:k]), nil
}

func routesIn(t *testing.T, p *apply.PodNet) []plan.Route {
	t.Helper()
	rs, err := p.Routes()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func route(dst netip.Prefix, via netip.Addr) plan.Route { return plan.Route{Dst: dst, Via: via} }

// TestPodNetworkAcrossNodes: two nodes on one LAN, a pod on each, and an
// outside machine. Pods reach each other without NAT, reach the outside
// masqueraded, and a route follows its member's address, death and
// departure.
func TestPodNetworkAcrossNodes(t *testing.T) {
	lan := applytest.NewLAN(t, 3)
	a := newLANNode(t, lan.Hosts[0], "10.251.1.0/24")
	b := newLANNode(t, lan.Hosts[1], "10.251.2.0/24")
	outside := lan.Hosts[2]
	members := []plan.NetMember{a.member("a"), b.member("b")}
	a.sync(t, "a", members...)
	b.sync(t, "b", members...)

	if got, want := routesIn(t, a.podNet), []plan.Route{route(b.cidr, b.host.Addr)}; !slices.Equal(got, want) {
		t.Fatalf("routes on a = %v, want %v", got, want)
	}
	// The table reads as docs/network.md shows it.
	nftBin := testenv.RequireBinary(t, "nft")
	out, err := a.host.Command(nftBin, "list", "table", "inet", apply.PodNetTable).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v\n%s", err, out)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		rules = append(rules, strings.TrimSpace(l))
	}
	for _, want := range []string{
		"type nat hook postrouting priority srcnat; policy accept;",
		"meta nfproto != ipv4 return",
		"ip saddr != " + a.cidr.String() + " return",
		"ip daddr @cluster4 return",
		"masquerade",
		"flags interval",
	} {
		if !slices.Contains(rules, want) {
			t.Errorf("table inet %s has no line %q:\n%s", apply.PodNetTable, want, out)
		}
	}
	elements := "elements = { " + plan.DefaultServiceCIDR.String() + ", " + a.cidr.String() + ", " + b.cidr.String() + " }"
	if !strings.Contains(strings.Join(strings.Fields(string(out)), " "), elements) {
		t.Errorf("set cluster4 of table inet %s is not %q:\n%s", apply.PodNetTable, elements, out)
	}

	// Pod to pod across nodes: the receiver sees the sender's pod IP.
	listen(t, b.podNS, b.podIP, 8080)
	listen(t, a.podNS, a.podIP, 8080)
	if seen, err := seenFrom(a.podNS, b.podIP, 8080); err != nil || seen != a.podIP.String() {
		t.Fatalf("pod a → pod b: seen from %q, %v; want %s (no NAT)", seen, err, a.podIP)
	}
	if seen, err := seenFrom(b.podNS, a.podIP, 8080); err != nil || seen != b.podIP.String() {
		t.Fatalf("pod b → pod a: seen from %q, %v; want %s (no NAT)", seen, err, b.podIP)
	}

	// Egress: the outside machine, which has no route to any pod CIDR,
	// sees the node's address.
	listen(t, outside.NetNS, outside.Addr, 9090)
	if seen, err := seenFrom(a.podNS, outside.Addr, 9090); err != nil || seen != a.host.Addr.String() {
		t.Fatalf("pod a → outside: seen from %q, %v; want the node's address %s", seen, err, a.host.Addr)
	}
	// The node itself is not masqueraded (it is not pod traffic).
	if seen, err := seenFrom(a.host.NetNS, outside.Addr, 9090); err != nil || seen != a.host.Addr.String() {
		t.Fatalf("node a → outside: seen from %q, %v", seen, err)
	}

	// A restarted agent adopts its routes: a new PodNet syncing the same
	// membership changes nothing, and traffic keeps flowing.
	a.podNet = apply.NewPodNet(apply.PodNetConfig{HostNetNS: a.host.NetNS})
	a.sync(t, "a", members...)
	if got, want := routesIn(t, a.podNet), []plan.Route{route(b.cidr, b.host.Addr)}; !slices.Equal(got, want) {
		t.Fatalf("routes on a after a restart = %v, want %v", got, want)
	}

	// A changed address moves the route.
	moved := b.member("b")
	moved.Address = outside.Addr
	a.sync(t, "a", a.member("a"), moved)
	if got, want := routesIn(t, a.podNet), []plan.Route{route(b.cidr, outside.Addr)}; !slices.Equal(got, want) {
		t.Fatalf("routes on a after b's address changed = %v, want %v", got, want)
	}

	// A member dead past the grace loses its route, and its pods are
	// unreachable; alive again, it gets it back.
	dead := b.member("b")
	dead.State, dead.Since = plan.MemberDead, time.Now().Add(-time.Minute)
	a.sync(t, "a", a.member("a"), dead)
	if got := routesIn(t, a.podNet); len(got) != 0 {
		t.Fatalf("routes on a after b died = %v, want none", got)
	}
	if seen, err := seenFrom(a.podNS, b.podIP, 8080); err == nil {
		t.Fatalf("pod a reached pod b (seen from %s) with no route to it", seen)
	}
	a.sync(t, "a", members...)
	if seen, err := seenFrom(a.podNS, b.podIP, 8080); err != nil || seen != a.podIP.String() {
		t.Fatalf("pod a → pod b after b's return: seen from %q, %v", seen, err)
	}
	// A member that left loses its route at once.
	left := b.member("b")
	left.State, left.Since = plan.MemberLeft, time.Now()
	a.sync(t, "a", a.member("a"), left)
	if got := routesIn(t, a.podNet); len(got) != 0 {
		t.Fatalf("routes on a after b left = %v, want none", got)
	}
}

// TestPodNetworkTouchesOnlyItsOwn: routes of other protocols, a route to
// a peer's CIDR made by something else, and other nftables tables are
// left as they are by Sync and by Reset.
func TestPodNetworkTouchesOnlyItsOwn(t *testing.T) {
	lan := applytest.NewLAN(t, 2)
	a := newLANNode(t, lan.Hosts[0], "10.251.1.0/24")
	peer := lan.Hosts[1]
	foreign := netip.MustParsePrefix("10.252.0.0/24")
	taken := netip.MustParsePrefix("10.251.3.0/24")
	inNS(t, a.host.NetNS, func(h *netlink.Handle) {
		for _, dst := range []netip.Prefix{foreign, taken} {
			r := &netlink.Route{Dst: ipNet(dst), Gw: peer.Addr.AsSlice(), Protocol: netlink.RouteProtocol(4)}
			if err := h.RouteAdd(r); err != nil {
				t.Fatal(err)
			}
		}
	})
	other := &nftables.Table{Family: nftables.TableFamilyINet, Name: "other"}
	nft(t, a.host.NetNS, func(c *nftables.Conn) { c.AddTable(other) })

	b := plan.NetMember{Name: "b", Address: peer.Addr, PodCIDR: netip.MustParsePrefix("10.251.2.0/24"), State: plan.MemberAlive}
	c := plan.NetMember{Name: "c", Address: peer.Addr, PodCIDR: taken, State: plan.MemberAlive}
	want := plan.PodRoutes([]plan.NetMember{a.member("a"), b, c}, "a", a.cidr, netip.Prefix{}, 0, time.Now())
	err := a.podNet.Sync(context.Background(), want)
	if err == nil {
		t.Fatalf("sync with a route to %s that gitorch did not make: no error", taken)
	}
	t.Logf("sync: %v", err)
	if got := routesIn(t, a.podNet); !slices.Equal(got, []plan.Route{route(b.PodCIDR, peer.Addr)}) {
		t.Fatalf("gitorch's routes = %v, want only the one to b", got)
	}
	a.sync(t, "a", a.member("a"))
	if got := routesIn(t, a.podNet); len(got) != 0 {
		t.Fatalf("gitorch's routes = %v after b left, want none", got)
	}
	if _, err := apply.Reset(context.Background(), apply.ResetConfig{HostNetNS: a.host.NetNS, Bridge: "gtest0"}, true); err != nil {
		t.Fatal(err)
	}
	inNS(t, a.host.NetNS, func(h *netlink.Handle) {
		for _, dst := range []netip.Prefix{foreign, taken} {
			rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipNet(dst)}, netlink.RT_FILTER_DST)
			if err != nil || len(rs) != 1 {
				t.Errorf("route to %s of another protocol: %v, %v; want it kept", dst, rs, err)
			}
		}
	})
	nft(t, a.host.NetNS, func(c *nftables.Conn) {
		if _, err := c.ListTableOfFamily("other", nftables.TableFamilyINet); err != nil {
			t.Errorf("table inet other: %v; want it kept", err)
		}
	})
}

// TestResetRemovesTheNetwork: Reset lists, then removes, gitorch's
// tables, routes, bridge, veths and DNS interface, and then finds
// nothing.
func TestResetRemovesTheNetwork(t *testing.T) {
	lan := applytest.NewLAN(t, 2)
	a := newLANNode(t, lan.Hosts[0], "10.251.1.0/24")
	b := newLANNode(t, lan.Hosts[1], "10.251.2.0/24")
	a.sync(t, "a", a.member("a"), b.member("b"))
	nft(t, a.host.NetNS, func(c *nftables.Conn) {
		c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: apply.ProxyTable})
		c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: apply.ProxyTable + "-3"})
		c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: apply.ProxyTable + "-other"})
	})
	dnsKind := "dummy"
	inNS(t, a.host.NetNS, func(h *netlink.Handle) {
		err := h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: dnsLink}})
		if errors.Is(err, unix.EOPNOTSUPP) {
			// A kernel without dummy interfaces: the DNS address is
			// then on a link of another kind, removed by its name.
			dnsKind = "bridge"
			err = h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: dnsLink}})
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	dataDir := filepath.Join(t.TempDir(), "gitorch")
	if err := nsfile.Create(filepath.Join(dataDir, "pods", "x"), "", nsfile.Net); err != nil {
		t.Fatal(err)
	}
	cfg := apply.ResetConfig{HostNetNS: a.host.NetNS, Bridge: "gtest0", DataDir: dataDir}
	ctx := context.Background()

	items, err := apply.Reset(ctx, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.String())
	}
	want := []string{
		"nftables table inet " + apply.ProxyTable,
		"nftables table inet " + apply.ProxyTable + "-3",
		"nftables table inet " + apply.PodNetTable,
		fmt.Sprintf("route %s via %s", b.cidr, b.host.Addr),
		"link " + apply.HostVeth(plan.Key{Namespace: "default", Name: "pod"}) + " (veth)",
		"link gtest0 (bridge)",
		"link " + dnsLink + " (" + dnsKind + ")",
		"directory " + dataDir,
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("reset would remove\n%q\nwant\n%q", got, want)
	}
	// Listing removed nothing.
	if seen, err := seenFrom(a.podNS, b.podIP, 1); err == nil {
		t.Fatalf("dial to a closed port answered %q", seen)
	}
	if rs := routesIn(t, a.podNet); len(rs) != 1 {
		t.Fatalf("routes after a listing: %v", rs)
	}

	if _, err := apply.Reset(ctx, cfg, true); err != nil {
		t.Fatal(err)
	}
	items, err = apply.Reset(ctx, cfg, false)
	if err != nil || len(items) != 0 {
		t.Fatalf("after a reset, reset finds %v, %v; want nothing", items, err)
	}
	// Idempotent: a second reset has nothing to do and does not fail.
	if _, err := apply.Reset(ctx, cfg, true); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gtest0", dnsLink} {
		if linkExists(t, a.host.NetNS, name) {
			t.Errorf("link %s still there", name)
		}
	}
}

// dnsLink is the cluster DNS's interface, which Reset removes.
const dnsLink = "gitorch-dns"

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func inNS(t *testing.T, path string, fn func(*netlink.Handle)) {
	t.Helper()
	if err := applytest.InNetNS(path, func(h *netlink.Handle) error { fn(h); return nil }); err != nil {
		t.Fatal(err)
	}
}

// nft runs fn with an nftables connection in the namespace at path and
// flushes what it queued.
func nft(t *testing.T, path string, fn func(*nftables.Conn)) {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)), nftables.AsLasting())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	fn(c)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}
