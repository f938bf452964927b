package applytest

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
)

// LAN is a test network of machines: each host is a network namespace
// whose eth0 is one end of a veth pair; the other ends are ports of a
// bridge in a namespace of its own. Nothing of it is in the machine's own
// network namespace, and its addresses exist only inside it.
type LAN struct {
	// Name is unique to the LAN; its namespaces are Name-br (the bridge)
	// and Name-1 ... Name-N (the hosts).
	Name string
	// Prefix is the hosts' subnet, a /24 in 10.112.0.0-10.199.255.255:
	// outside gitorch's default service CIDR (10.96.0.0/12), so that a
	// host's address is never taken for a ClusterIP.
	Prefix netip.Prefix
	// Bridge is the path of the bridge's network namespace.
	Bridge string
	// Hosts[i] is host Name-(i+1), at the (i+1)th address of Prefix.
	Hosts []Host
}

// Host is a machine of a LAN.
type Host struct {
	// Name is the name of the host's network namespace.
	Name string
	// NetNS is its path, NetNSDir/Name.
	NetNS string
	// Addr is the address of the host's eth0.
	Addr netip.Addr

	port    string // its veth end in the bridge's namespace
	bridge  string // path of the bridge's namespace
	nsenter string
}

// NewLAN makes a LAN of n hosts for the test, and removes it, and every
// process started with Host.Start, when the test ends. Its name and subnet
// are random, so that tests running at once do not collide.
func NewLAN(t testing.TB, n int) *LAN {
	t.Helper()
	testenv.RequireRoot(t)
	nsenter := testenv.RequireBinary(t, "nsenter")
	var r [2]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	l := &LAN{
		Name:   "gt-" + RandomHex(3),
		Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 112 + r[0]%88, r[1], 0}), 24),
	}
	if n < 1 || n > 250 {
		t.Fatalf("NewLAN: %d hosts, want 1 to 250", n)
	}
	t.Cleanup(func() {
		for _, h := range l.Hosts {
			if err := removeNamedNetNS(h.Name); err != nil {
				t.Errorf("remove host %s: %v", h.Name, err)
			}
		}
		if err := removeNamedNetNS(l.Name + "-br"); err != nil {
			t.Errorf("remove the bridge of %s: %v", l.Name, err)
		}
	})
	bridge, err := createNamedNetNS(l.Name + "-br")
	if err != nil {
		t.Fatalf("LAN %s: %v", l.Name, err)
	}
	l.Bridge = bridge
	if err := InNetNS(bridge, func(h *netlink.Handle) error {
		if err := linkUp(h, "lo"); err != nil {
			return err
		}
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
			return fmt.Errorf("add bridge: %w", err)
		}
		return linkUp(h, "br0")
	}); err != nil {
		t.Fatalf("LAN %s: %v", l.Name, err)
	}
	addr := l.Prefix.Addr()
	for i := 0; i < n; i++ {
		addr = addr.Next()
		h := Host{Name: l.Name + "-" + strconv.Itoa(i+1), Addr: addr, port: "p" + strconv.Itoa(i+1), bridge: bridge, nsenter: nsenter}
		path, err := createNamedNetNS(h.Name)
		if err != nil {
			t.Fatalf("LAN %s: %v", l.Name, err)
		}
		h.NetNS = path
		l.Hosts = append(l.Hosts, h)
		if err := l.connect(h); err != nil {
			t.Fatalf("LAN %s: host %s: %v", l.Name, h.Name, err)
		}
	}
	t.Logf("LAN %s: %d hosts on %s", l.Name, n, l.Prefix)
	return l
}

// connect makes the host's veth pair, eth0 in the host with its address
// and the port on the bridge, and brings both up.
func (l *LAN) connect(host Host) error {
	hostNS, err := netns.GetFromPath(host.NetNS)
	if err != nil {
		return err
	}
	defer hostNS.Close()
	if err := InNetNS(l.Bridge, func(h *netlink.Handle) error {
		br, err := h.LinkByName("br0")
		if err != nil {
			return err
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: host.port, MasterIndex: br.Attrs().Index},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(hostNS),
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		return linkUp(h, host.port)
	}); err != nil {
		return err
	}
	return InNetNS(host.NetNS, func(h *netlink.Handle) error {
		if err := linkUp(h, "lo"); err != nil {
			return err
		}
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: host.Addr.AsSlice(), Mask: net.CIDRMask(l.Prefix.Bits(), 32)}}
		if err := h.AddrAdd(eth0, a); err != nil {
			return fmt.Errorf("address %s: %w", host.Addr, err)
		}
		return h.LinkSetUp(eth0)
	})
}

// Cut takes the host off the LAN, as a pulled cable or a dead machine
// would: its port on the bridge goes down, so nothing reaches it or leaves
// it; the host itself keeps its address and sees its link lose carrier.
func (h Host) Cut() error {
	return InNetNS(h.bridge, func(nh *netlink.Handle) error {
		l, err := nh.LinkByName(h.port)
		if err != nil {
			return err
		}
		return nh.LinkSetDown(l)
	})
}

// Restore puts a cut host back on the LAN.
func (h Host) Restore() error {
	return InNetNS(h.bridge, func(nh *netlink.Handle) error { return linkUp(nh, h.port) })
}

// Command returns a command that runs name with args in the host's
// network namespace, through nsenter. (Not `ip netns exec`, which also
// gives the command a mount namespace of its own, where the bind mounts of
// pod namespaces that runc must find are not seen.)
func (h Host) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(h.nsenter, append([]string{"--net=" + h.NetNS, "--", name}, args...)...)
	// Killed if the test binary dies; nsenter execs name, so this is it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Start starts name with args in the host's network namespace, and kills
// it (and waits for it) when the test ends, before the LAN is removed.
func (h Host) Start(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := h.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s on %s: %v", name, h.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s on %s did not exit within 10s of SIGKILL", name, h.Name)
		}
	})
	return cmd
}

// Do runs fn on a thread in the host's network namespace: a socket made
// in fn (net.Listen, net.Dial) stays in that namespace after fn returns.
// Only fn's own goroutine is there: an http.Client called in fn dials on
// other goroutines, in the test's own namespace. Dial in fn (or in a
// Transport's DialContext that calls Do) instead.
func (h Host) Do(fn func() error) error { return nsfile.Do(h.NetNS, fn) }

// InNetNS runs fn with a netlink handle in the namespace at path.
func InNetNS(path string, fn func(*netlink.Handle) error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}
