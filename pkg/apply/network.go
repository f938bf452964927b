package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Network gives a pod's network namespace its connectivity. The runtime
// calls Attach once the namespace exists and Detach before removing it;
// both are idempotent, keyed by the pod's key.
type Network interface {
	// Attach connects the namespace at nsPath and returns the pod's IP.
	Attach(ctx context.Context, key, nsPath string) (netip.Addr, error)
	// Detach disconnects the pod and releases its IP. nsPath may
	// already be gone.
	Detach(ctx context.Context, key, nsPath string) error
}

// BridgeConfig configures a BridgeNetwork.
type BridgeConfig struct {
	// Bridge is the bridge's name on the node (default gitorch0).
	Bridge string
	// IPAM hands out the pod CIDR; the bridge holds its gateway address.
	IPAM *IPAM
	// HostNetNS is the path of the network namespace the bridge and the
	// node ends of the veth pairs live in; "" is the namespace gitorch
	// runs in. Tests give a namespace of their own.
	HostNetNS string
	// MTU of the bridge and veths; 0 leaves the kernel's default (1500).
	MTU int
}

// BridgeNetwork is the pod network of one node: a bridge holding the
// gateway address of the node's pod CIDR, and a veth pair per pod with
// one end on the bridge and the other as eth0 in the pod, whose default
// route goes through the gateway. Routes to other nodes' pod CIDRs are not
// its business.
type BridgeNetwork struct {
	cfg BridgeConfig
	mu  sync.Mutex
}

// NewBridgeNetwork returns the network described by cfg. Nothing is
// created until the first Attach.
func NewBridgeNetwork(cfg BridgeConfig) (*BridgeNetwork, error) {
	if cfg.IPAM == nil {
		return nil, errors.New("bridge network: no IPAM")
	}
	if cfg.Bridge == "" {
		cfg.Bridge = "gitorch0"
	}
	if len(cfg.Bridge) > 15 {
		return nil, fmt.Errorf("bridge name %q is longer than 15 bytes", cfg.Bridge)
	}
	return &BridgeNetwork{cfg: cfg}, nil
}

// HostVeth is the name of the node's end of the veth pair of the pod k: a
// hash, since interface names are limited to 15 bytes.
func HostVeth(k plan.Key) string { return hostVeth(podDirName(k.Namespace, k.Name)) }

// hostVeth is HostVeth of the pod whose directory is named dir.
func hostVeth(dir string) string { return "gv" + shortHash(dir, 6) }

func shortHash(s string, n int) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:n])
}

func (n *BridgeNetwork) hostHandle() (*netlink.Handle, error) {
	if n.cfg.HostNetNS == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(n.cfg.HostNetNS)
	if err != nil {
		return nil, fmt.Errorf("open host netns %s: %w", n.cfg.HostNetNS, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

// ensureBridge creates the bridge if missing, gives it the gateway address
// and brings it up.
func (n *BridgeNetwork) ensureBridge(h *netlink.Handle) (netlink.Link, error) {
	br, err := h.LinkByName(n.cfg.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return nil, fmt.Errorf("find bridge %s: %w", n.cfg.Bridge, err)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = n.cfg.Bridge
		if n.cfg.MTU > 0 {
			attrs.MTU = n.cfg.MTU
		}
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", n.cfg.Bridge, err)
		}
		if br, err = h.LinkByName(n.cfg.Bridge); err != nil {
			return nil, err
		}
	}
	gw := n.cfg.IPAM.Gateway()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(n.cfg.IPAM.Prefix().Bits(), 32)}}
	if err := h.AddrReplace(br, addr); err != nil {
		return nil, fmt.Errorf("address %s on %s: %w", addr, n.cfg.Bridge, err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("bring up %s: %w", n.cfg.Bridge, err)
	}
	return br, nil
}

// Attach implements Network.
func (n *BridgeNetwork) Attach(_ context.Context, key, nsPath string) (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, err := n.hostHandle()
	if err != nil {
		return netip.Addr{}, err
	}
	defer h.Close()
	br, err := n.ensureBridge(h)
	if err != nil {
		return netip.Addr{}, err
	}
	podNS, err := netns.GetFromPath(nsPath)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("open pod netns %s: %w", nsPath, err)
	}
	defer podNS.Close()
	ph, err := netlink.NewHandleAt(podNS)
	if err != nil {
		return netip.Addr{}, err
	}
	defer ph.Close()

	ip, err := n.cfg.IPAM.Allocate(key)
	if err != nil {
		return netip.Addr{}, err
	}
	hostName := hostVeth(key)
	peerTmp := "gp" + shortHash(key, 6)
	if _, err := ph.LinkByName("eth0"); err != nil {
		// No eth0 in the pod yet: a veth pair left from an earlier,
		// interrupted attach is replaced whole.
		if old, err := h.LinkByName(hostName); err == nil {
			_ = h.LinkDel(old)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = hostName
		attrs.MasterIndex = br.Attrs().Index
		if n.cfg.MTU > 0 {
			attrs.MTU = n.cfg.MTU
		}
		veth := &netlink.Veth{LinkAttrs: attrs, PeerName: peerTmp, PeerNamespace: netlink.NsFd(int(podNS))}
		if n.cfg.MTU > 0 {
			veth.PeerMTU = uint32(n.cfg.MTU)
		}
		if err := h.LinkAdd(veth); err != nil {
			return netip.Addr{}, fmt.Errorf("create veth %s: %w", hostName, err)
		}
		peer, err := ph.LinkByName(peerTmp)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("find %s in pod: %w", peerTmp, err)
		}
		if err := ph.LinkSetName(peer, "eth0"); err != nil {
			return netip.Addr{}, fmt.Errorf("rename %s to eth0: %w", peerTmp, err)
		}
	}
	hostEnd, err := h.LinkByName(hostName)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find %s: %w", hostName, err)
	}
	if err := h.LinkSetMaster(hostEnd, br); err != nil {
		return netip.Addr{}, fmt.Errorf("attach %s to %s: %w", hostName, n.cfg.Bridge, err)
	}
	// Hairpin: a pod reaching its own Service is DNATed back to itself;
	// where br_netfilter runs the nat hooks on bridged frames, the bridge
	// then sends the frame out of the port it came in on, which it only
	// does in hairpin mode.
	if err := h.LinkSetHairpin(hostEnd, true); err != nil {
		return netip.Addr{}, fmt.Errorf("hairpin mode on %s: %w", hostName, err)
	}
	if err := h.LinkSetUp(hostEnd); err != nil {
		return netip.Addr{}, err
	}

	eth0, err := ph.LinkByName("eth0")
	if err != nil {
		return netip.Addr{}, err
	}
	mask := net.CIDRMask(n.cfg.IPAM.Prefix().Bits(), 32)
	if err := ph.AddrReplace(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: mask}}); err != nil {
		return netip.Addr{}, fmt.Errorf("address %s on eth0: %w", ip, err)
	}
	if err := ph.LinkSetUp(eth0); err != nil {
		return netip.Addr{}, err
	}
	if lo, err := ph.LinkByName("lo"); err == nil {
		if err := ph.LinkSetUp(lo); err != nil {
			return netip.Addr{}, err
		}
	}
	gw := n.cfg.IPAM.Gateway()
	route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice()}
	if err := ph.RouteReplace(route); err != nil {
		return netip.Addr{}, fmt.Errorf("default route via %s: %w", gw, err)
	}
	return ip, nil
}

// Detach implements Network.
func (n *BridgeNetwork) Detach(_ context.Context, key, _ string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, err := n.hostHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	if l, err := h.LinkByName(hostVeth(key)); err == nil {
		// Deleting one end deletes the pair.
		if err := h.LinkDel(l); err != nil {
			return fmt.Errorf("delete veth %s: %w", hostVeth(key), err)
		}
	}
	return n.cfg.IPAM.Release(key)
}
