package apply

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DNSLink is the dummy interface that holds the cluster DNS address on a
// node, so that the node-local DNS server can listen on it and pods reach
// it through their gateway. On a kernel without the dummy driver it is a
// bridge with no ports, which does the same.
const DNSLink = "gitorch-dns"

func netnsHandle(path string) (*netlink.Handle, error) {
	if path == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

// EnsureDNSLink makes the dummy interface DNSLink in the network namespace
// at nsPath ("" for gitorch's own), up, holding addr alone (a /32 or
// /128): an address it held before is removed.
func EnsureDNSLink(nsPath string, addr netip.Addr) error {
	h, err := netnsHandle(nsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(DNSLink)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("find %s: %w", DNSLink, err)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = DNSLink
		err := h.LinkAdd(&netlink.Dummy{LinkAttrs: attrs})
		if errors.Is(err, unix.EOPNOTSUPP) {
			// A kernel without the dummy driver (some VM kernels):
			// a bridge without ports holds a local address as well.
			err = h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create %s: %w", DNSLink, err)
		}
		if link, err = h.LinkByName(DNSLink); err != nil {
			return err
		}
	}
	if t := link.Type(); t != "dummy" && t != "bridge" {
		return fmt.Errorf("%s exists and is a %s, not a dummy interface", DNSLink, t)
	}
	addr = addr.Unmap()
	want := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(addr.BitLen(), addr.BitLen())}}
	if addr.Is6() {
		want.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrReplace(link, want); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr, DNSLink, err)
	}
	have, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	for _, a := range have {
		if a.IP.IsLinkLocalUnicast() || a.IP.Equal(want.IP) {
			continue
		}
		if err := h.AddrDel(link, &a); err != nil {
			return fmt.Errorf("remove old address %s from %s: %w", a.IPNet, DNSLink, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring up %s: %w", DNSLink, err)
	}
	return nil
}

// RemoveDNSLink removes DNSLink from the network namespace at nsPath, if
// it is there.
func RemoveDNSLink(nsPath string) error {
	h, err := netnsHandle(nsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(DNSLink)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	return h.LinkDel(link)
}
