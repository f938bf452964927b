package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/apply/proxy"
	"github.com/gitorch/gitorch/pkg/plan"
)

// testNet is a node and its pods, made for one test: a LAN of two hosts
// (the node, and another machine), a bridge in the node with the pod
// subnet 10.244.1.0/24, and pods, each a network namespace with a veth on
// that bridge, its address and a default route through the node.
type testNet struct {
	t      testing.TB
	lan    *applytest.LAN
	node   applytest.Host
	other  applytest.Host
	bridge netip.Addr
	proxy  *proxy.Proxy
}

// pod is a pod network namespace.
type pod struct {
	name  string
	netns string
	addr  netip.Addr
}

func newTestNet(t testing.TB) *testNet {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "sysctl")
	lan := applytest.NewLAN(t, 2)
	n := &testNet{t: t, lan: lan, node: lan.Hosts[0], other: lan.Hosts[1], bridge: netip.MustParseAddr("10.244.1.1")}
	if out, err := n.node.Command("sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		t.Fatalf("ip_forward: %v: %s", err, out)
	}
	n.inNode(func(h *netlink.Handle) error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "gtpods"}}
		if err := h.LinkAdd(br); err != nil {
			return err
		}
		if err := h.AddrAdd(br, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(n.bridge, 24))}); err != nil {
			return err
		}
		if err := h.LinkSetUp(br); err != nil {
			return err
		}
		// The service range, as a default route would give it: the node
		// itself reaches ClusterIPs through it (and the proxy's rules
		// rewrite them before they leave).
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: prefixNet(plan.DefaultServiceCIDR)})
	})
	p, err := proxy.New(proxy.Config{NetNS: n.node.NetNS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	n.proxy = p
	return n
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func (n *testNet) inNode(fn func(h *netlink.Handle) error) {
	n.t.Helper()
	if err := applytest.InNetNS(n.node.NetNS, fn); err != nil {
		n.t.Fatal(err)
	}
}

// addPod makes a pod at 10.244.1.<last>.
func (n *testNet) addPod(name string, last byte) pod {
	n.t.Helper()
	p := pod{name: name, netns: applytest.NetNS(n.t), addr: netip.AddrFrom4([4]byte{10, 244, 1, last})}
	podNS, err := netns.GetFromPath(p.netns)
	if err != nil {
		n.t.Fatal(err)
	}
	defer podNS.Close()
	host := fmt.Sprintf("gtv%d", last)
	n.inNode(func(h *netlink.Handle) error {
		br, err := h.LinkByName("gtpods")
		if err != nil {
			return err
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MasterIndex: br.Attrs().Index}, PeerName: "eth0", PeerNamespace: netlink.NsFd(podNS)}
		if err := h.LinkAdd(veth); err != nil {
			return err
		}
		l, err := h.LinkByName(host)
		if err != nil {
			return err
		}
		// As pkg/apply's pod network does: a pod may reach itself
		// through its Service.
		if err := h.LinkSetHairpin(l, true); err != nil {
			return err
		}
		return h.LinkSetUp(l)
	})
	if err := applytest.InNetNS(p.netns, func(h *netlink.Handle) error {
		for _, name := range []string{"lo", "eth0"} {
			l, err := h.LinkByName(name)
			if err != nil {
				return err
			}
			if err := h.LinkSetUp(l); err != nil {
				return err
			}
		}
		eth0, _ := h.LinkByName("eth0")
		if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(p.addr, 24))}); err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: n.bridge.AsSlice()})
	}); err != nil {
		n.t.Fatal(err)
	}
	return p
}

// serve runs, in the pod, a TCP server on port that writes its name and
// then echoes lines, and a UDP server that answers every datagram with its
// name. Both stop when the test ends.
func (n *testNet) serve(p pod, port int) {
	n.t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	if err := nsfile.Do(p.netns, func() error {
		var err error
		if ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		n.t.Fatal(err)
	}
	var wg sync.WaitGroup
	n.t.Cleanup(func() { ln.Close(); pc.Close(); wg.Wait() })
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				fmt.Fprintf(c, "%s %s\n", p.name, c.RemoteAddr())
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(p.name), from)
		}
	}()
}

// dial connects from the namespace netns to addr over TCP and returns the
// connection and the first line the server wrote (its name and the
// client's address as the server sees it).
func dial(netns string, addr netip.AddrPort) (net.Conn, string, error) {
	var c net.Conn
	err := nsfile.Do(netns, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr.String(), 5*time.Second)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return nil, "", fmt.Errorf("read from %s: %w", addr, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, strings.TrimSpace(line), nil
}

// who connects once and returns the name of the pod that answered.
func who(t *testing.T, netns string, addr netip.AddrPort) string {
	t.Helper()
	c, line, err := dial(netns, addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	c.Close()
	name, _, _ := strings.Cut(line, " ")
	return name
}

// whoUDP sends a datagram and returns the name that answered.
func whoUDP(t *testing.T, netns string, addr netip.AddrPort) string {
	t.Helper()
	var name string
	err := nsfile.Do(netns, func() error {
		c, err := net.Dial("udp4", addr.String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("who")); err != nil {
			return err
		}
		buf := make([]byte, 512)
		k, err := c.Read(buf)
		name = string(buf[:k])
		return err
	})
	if err != nil {
		t.Fatalf("UDP to %s: %v", addr, err)
	}
	return name
}

// ruleset is the node's ruleset for services and the pods behind each.
func (n *testNet) ruleset(services []*serviceDef) plan.Ruleset {
	return rulesetOf(services, "node-1")
}

func (n *testNet) sync(services ...*serviceDef) {
	n.t.Helper()
	if err := n.proxy.Sync(n.ruleset(services)); err != nil {
		n.t.Fatal(err)
	}
}

func TestClusterIPSpreadsAndForgetsRemovedEndpoints(t *testing.T) {
	n := newTestNet(t)
	var pods []pod
	for i := range 3 {
		p := n.addPod(fmt.Sprintf("web-%d", i), byte(10+i))
		n.serve(p, 8080)
		pods = append(pods, p)
	}
	client := n.addPod("client", 20)
	web := &serviceDef{name: "web", ip: "10.96.0.20", port: 80, target: 8080, pods: pods}
	n.sync(web)
	vip := netip.MustParseAddrPort("10.96.0.20:80")

	count := map[string]int{}
	for range 300 {
		count[who(t, client.netns, vip)]++
	}
	for _, p := range pods {
		// Binomial(300, 1/3): below 50 is six standard deviations off.
		if count[p.name] < 50 {
			t.Errorf("%s got %d of 300 connections: %v", p.name, count[p.name], count)
		}
	}
	// From the node itself.
	if got := who(t, n.node.NetNS, vip); !strings.HasPrefix(got, "web-") {
		t.Errorf("from the node: answered by %q", got)
	}

	// web-2 leaves the endpoints: after the next sync it gets nothing.
	web.pods = pods[:2]
	n.sync(web)
	for range 60 {
		if got := who(t, client.netns, vip); got == "web-2" {
			t.Fatal("web-2 still gets connections after it left the endpoints")
		}
	}
}

func TestNoEndpointRefuses(t *testing.T) {
	n := newTestNet(t)
	client := n.addPod("client", 20)
	n.sync(&serviceDef{name: "empty", ip: "10.96.0.11", port: 80, target: 8080, nodePort: 30080})
	for _, from := range []struct{ name, netns string }{{"a pod", client.netns}, {"the node", n.node.NetNS}} {
		_, _, err := dial(from.netns, netip.MustParseAddrPort("10.96.0.11:80"))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("from %s: connect to a Service without endpoints: %v, want connection refused", from.name, err)
		}
	}
	_, _, err := dial(n.other.NetNS, netip.AddrPortFrom(n.node.Addr, 30080))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("NodePort without endpoints from another host: %v, want connection refused", err)
	}
}

func TestNodePortFromAnotherHost(t *testing.T) {
	n := newTestNet(t)
	p := n.addPod("web-0", 10)
	n.serve(p, 8080)
	n.sync(&serviceDef{name: "web", ip: "10.96.0.20", port: 80, target: 8080, nodePort: 30080, pods: []pod{p}})
	c, line, err := dial(n.other.NetNS, netip.AddrPortFrom(n.node.Addr, 30080))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Masqueraded: the pod sees the node's address, so its answer goes
	// back through the node.
	if !strings.HasPrefix(line, "web-0 "+n.bridge.String()+":") {
		t.Errorf("the pod answered %q, want web-0 seeing %s", line, n.bridge)
	}
}

func TestExternalTrafficPolicyLocalKeepsTheClientAddress(t *testing.T) {
	n := newTestNet(t)
	p := n.addPod("web-0", 10)
	n.serve(p, 8080)
	// The pod answers the outside host directly: give it a route back.
	if err := applytest.InNetNS(n.other.NetNS, func(h *netlink.Handle) error {
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: prefixNet(netip.MustParsePrefix("10.244.1.0/24")), Gw: n.node.Addr.AsSlice()})
	}); err != nil {
		t.Fatal(err)
	}
	n.sync(&serviceDef{name: "web", ip: "10.96.0.20", port: 80, target: 8080, nodePort: 30080, local: true, pods: []pod{p}})
	c, line, err := dial(n.other.NetNS, netip.AddrPortFrom(n.node.Addr, 30080))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !strings.HasPrefix(line, "web-0 "+n.other.Addr.String()+":") {
		t.Errorf("the pod answered %q, want web-0 seeing the client %s", line, n.other.Addr)
	}
}

func TestHairpin(t *testing.T) {
	n := newTestNet(t)
	p := n.addPod("web-0", 10)
	n.serve(p, 8080)
	n.sync(&serviceDef{name: "web", ip: "10.96.0.20", port: 80, target: 8080, pods: []pod{p}})
	// The only endpoint reaches its own Service.
	if got := who(t, p.netns, netip.MustParseAddrPort("10.96.0.20:80")); got != "web-0" {
		t.Errorf("hairpin: answered by %q", got)
	}
}

func TestUDPAndAffinity(t *testing.T) {
	n := newTestNet(t)
	var pods []pod
	for i := range 3 {
		p := n.addPod(fmt.Sprintf("dns-%d", i), byte(10+i))
		n.serve(p, 5353)
		pods = append(pods, p)
	}
	client := n.addPod("client", 20)
	udp := &serviceDef{name: "dns", ip: "10.96.0.53", port: 53, target: 5353, udp: true, pods: pods}
	sticky := &serviceDef{name: "sticky", ip: "10.96.0.12", port: 80, target: 5353, affinity: 60, pods: pods}
	n.sync(udp, sticky)
	seen := map[string]int{}
	for range 30 {
		seen[whoUDP(t, client.netns, netip.MustParseAddrPort("10.96.0.53:53"))]++
	}
	if len(seen) < 2 {
		t.Errorf("30 UDP queries from new ports all went to %v", seen)
	}
	first := who(t, client.netns, netip.MustParseAddrPort("10.96.0.12:80"))
	for range 30 {
		if got := who(t, client.netns, netip.MustParseAddrPort("10.96.0.12:80")); got != first {
			t.Fatalf("ClientIP affinity: first %s, then %s", first, got)
		}
	}
}

func TestRestartKeepsOpenConnections(t *testing.T) {
	n := newTestNet(t)
	var pods []pod
	for i := range 2 {
		p := n.addPod(fmt.Sprintf("web-%d", i), byte(10+i))
		n.serve(p, 8080)
		pods = append(pods, p)
	}
	client := n.addPod("client", 20)
	web := &serviceDef{name: "web", ip: "10.96.0.20", port: 80, target: 8080, pods: pods}
	n.sync(web)
	c, _, err := dial(client.netns, netip.MustParseAddrPort("10.96.0.20:80"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A new agent: a new Proxy whose first sync rebuilds the table.
	p2, err := proxy.New(proxy.Config{NetNS: n.node.NetNS})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if err := p2.Sync(n.ruleset([]*serviceDef{web})); err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, "still there?"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "still there?\n" {
		t.Fatalf("after the restart the open connection read %q, %v", line, err)
	}
}

// handles lists the rule handles of each chain of gitorch's tables in the
// node, from nft -a.
func (n *testNet) handles() map[string][]string {
	n.t.Helper()
	out, err := n.node.Command("nft", "-a", "list", "ruleset").CombinedOutput()
	if err != nil {
		n.t.Fatalf("nft list: %v: %s", err, out)
	}
	m := map[string][]string{}
	chain, ours := "", false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "table":
			ours = f[1] == "inet" && proxy.IsTable(proxy.DefaultTable, f[2])
		case !ours:
		case len(f) >= 2 && f[0] == "chain":
			chain = f[1]
			m[chain] = []string{}
		case len(f) >= 2 && f[len(f)-2] == "handle" && chain != "" && !strings.HasPrefix(f[0], "type"):
			m[chain] = append(m[chain], f[len(f)-1])
		case len(f) == 1 && f[0] == "}":
			chain = ""
		}
	}
	return m
}

func TestPartialSyncTouchesOnlyWhatChanged(t *testing.T) {
	n := newTestNet(t)
	testenv.RequireBinary(t, "nft")
	if out, err := n.node.Command("nft", "add table inet other; add chain inet other c; add rule inet other c counter").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	a, b := n.addPod("web-0", 10), n.addPod("web-1", 11)
	n.serve(a, 8080)
	n.serve(b, 8080)
	web := &serviceDef{name: "web", ip: "10.96.0.20", port: 80, target: 8080, pods: []pod{a, b}}
	api := &serviceDef{name: "api", ip: "10.96.0.21", port: 80, target: 8080, pods: []pod{a}}
	n.sync(web, api)
	before := n.handles()
	web.pods = []pod{a}
	n.sync(web, api)
	after := n.handles()

	for _, ch := range []string{"svc-default/api/tcp/p", "services", "nat-prerouting", "masquerading"} {
		if len(before[ch]) == 0 || strings.Join(before[ch], ",") != strings.Join(after[ch], ",") {
			t.Errorf("chain %s: rule handles %v before, %v after; an unchanged chain must keep its rules", ch, before[ch], after[ch])
		}
	}
	if ch := "svc-default/web/tcp/p"; strings.Join(before[ch], ",") == strings.Join(after[ch], ",") {
		t.Errorf("chain %s kept its rules %v though its endpoints changed", ch, after[ch])
	}
	// The removed endpoint, an endpoint of no other Service, leaves the
	// hairpin set; the one api still has stays.
	out, err := n.node.Command("nft", "list", "set", "inet", "gitorch", "hairpin").CombinedOutput()
	if err != nil || strings.Contains(string(out), "10.244.1.11") || !strings.Contains(string(out), "10.244.1.10 . 10.244.1.10") {
		t.Errorf("hairpin set after the partial sync: %s (%v)", out, err)
	}
	if got := who(t, n.node.NetNS, netip.MustParseAddrPort("10.96.0.20:80")); got != "web-0" {
		t.Errorf("after the partial sync web answered from %q", got)
	}
	if err := n.proxy.Delete(); err != nil {
		t.Fatal(err)
	}
	out, err = n.node.Command("nft", "list", "tables").CombinedOutput()
	if err != nil || strings.Contains(string(out), "gitorch") || !strings.Contains(string(out), "table inet other") {
		t.Errorf("after Delete, nft list tables: %s (%v); want inet other and no gitorch", out, err)
	}
}

// TestServicesOverSeveralTables: 1,100 Services are spread over four
// tables; a Service of each answers, and a change to one Service leaves
// the other tables' rules as they were.
func TestServicesOverSeveralTables(t *testing.T) {
	n := newTestNet(t)
	testenv.RequireBinary(t, "nft")
	a, b := n.addPod("web-0", 10), n.addPod("web-1", 11)
	n.serve(a, 8080)
	n.serve(b, 8080)
	const count = 1100
	var defs []*serviceDef
	for i := range count {
		defs = append(defs, &serviceDef{name: fmt.Sprintf("s%04d", i), ip: fmt.Sprintf("10.96.%d.%d", 10+i/250, 1+i%250), port: 80, target: 8080, pods: []pod{a}})
	}
	n.sync(defs...)
	r := n.ruleset(defs)
	if r.Shards != 4 {
		t.Fatalf("%d Services in %d tables, want 4", count, r.Shards)
	}
	// One Service of each table, by the table its key hashes to.
	first := map[int]*serviceDef{}
	for _, d := range defs {
		if s := plan.ProxyShard(plan.Key{Namespace: "default", Name: d.name}, r.Shards); first[s] == nil {
			first[s] = d
		}
	}
	for s, d := range first {
		if got := who(t, n.node.NetNS, netip.MustParseAddrPort(d.ip+":80")); got != "web-0" {
			t.Errorf("%s (table %d) answered from %q", d.name, s, got)
		}
	}
	tables := func() map[string]string {
		out, err := n.node.Command("nft", "-a", "list", "ruleset").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list: %v: %s", err, out)
		}
		m := map[string]string{}
		for _, part := range strings.Split(string(out), "\ntable ")[1:] {
			name := strings.Fields(part)[1]
			m[name] = part
		}
		return m
	}
	before := tables()
	changed := first[2]
	changed.pods = []pod{b}
	n.sync(defs...)
	after := tables()
	for name := range before {
		if !proxy.IsTable(proxy.DefaultTable, name) {
			continue
		}
		same := before[name] == after[name]
		switch name {
		case proxy.ShardTable(proxy.DefaultTable, 2), proxy.DefaultTable: // the DNAT, the hairpin set
			if same {
				t.Errorf("table %s did not change", name)
			}
		default:
			if !same {
				t.Errorf("table %s changed, though none of its Services did", name)
			}
		}
	}
	if got := who(t, n.node.NetNS, netip.MustParseAddrPort(changed.ip+":80")); got != "web-1" {
		t.Errorf("after the change %s answered from %q", changed.name, got)
	}
	// Fewer Services, fewer tables: the others go.
	n.sync(defs[:10]...)
	if after := tables(); len(after) != len(before)-3 {
		t.Errorf("tables with 10 Services: %v", slices.Collect(maps.Keys(after)))
	}
	if got := who(t, n.node.NetNS, netip.MustParseAddrPort(defs[3].ip+":80")); got != "web-0" {
		t.Errorf("with one table %s answered from %q", defs[3].name, got)
	}
}
