package apply_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/plan"
)

// linkExists reports whether the link name exists in the netns at path.
func linkExists(t *testing.T, nsPath, name string) bool {
	t.Helper()
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if err != nil && !errors.As(err, &nf) {
		t.Fatal(err)
	}
	return err == nil
}

func TestBridgeNetworkAttachDetach(t *testing.T) {
	hostNS := applytest.NetNS(t)
	dir := t.TempDir()
	ipam, err := apply.OpenIPAM(filepath.Join(dir, "ipam.json"), netip.MustParsePrefix("10.250.7.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	network, err := apply.NewBridgeNetwork(apply.BridgeConfig{Bridge: "gtest0", IPAM: ipam, HostNetNS: hostNS})
	if err != nil {
		t.Fatal(err)
	}
	podDir := filepath.Join(dir, "pod")
	if err := nsfile.Create(podDir, "", nsfile.Net); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsfile.Remove(podDir, nsfile.Net) })
	podNS := nsfile.Path(podDir, nsfile.Net)

	ctx := context.Background()
	ip, err := network.Attach(ctx, "default_web", podNS)
	if err != nil {
		t.Fatal(err)
	}
	if !ipam.Prefix().Contains(ip) {
		t.Fatalf("pod IP %s outside %s", ip, ipam.Prefix())
	}
	// Attach again (a restarted node) keeps the same address and link.
	again, err := network.Attach(ctx, "default_web", podNS)
	if err != nil || again != ip {
		t.Fatalf("second attach = %s, %v; want %s", again, err, ip)
	}

	// A listener in the pod is reachable from the bridge's side.
	var ln net.Listener
	if err := nsfile.Do(podNS, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(ip.String(), "8080"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("hello from the pod"))
			c.Close()
		}
	}()
	var got []byte
	if err := nsfile.Do(hostNS, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), "8080"), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err = io.ReadAll(c)
		return err
	}); err != nil {
		t.Fatalf("dial pod from bridge side: %v", err)
	}
	if string(got) != "hello from the pod" {
		t.Fatalf("read %q", got)
	}
	if !linkExists(t, hostNS, apply.HostVeth(plan.Key{Namespace: "default", Name: "web"})) {
		t.Fatal("host veth missing after attach")
	}
	if linkExists(t, "/proc/self/ns/net", apply.HostVeth(plan.Key{Namespace: "default", Name: "web"})) {
		t.Fatal("veth created in the test's own network namespace")
	}

	if err := network.Detach(ctx, "default_web", podNS); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, hostNS, apply.HostVeth(plan.Key{Namespace: "default", Name: "web"})) {
		t.Fatal("host veth still there after detach")
	}
	if linkExists(t, podNS, "eth0") {
		t.Fatal("pod eth0 still there after detach")
	}
	if _, ok := ipam.Lookup("default_web"); ok {
		t.Fatal("IP still allocated after detach")
	}
	// Detach is idempotent.
	if err := network.Detach(ctx, "default_web", podNS); err != nil {
		t.Fatal(err)
	}
}
