package applytest

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/client"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply"
)

// NodeOptions changes what NewNode makes; the zero value is a node of its
// own with the busybox image.
type NodeOptions struct {
	// NetNS is the network namespace that holds the node's bridge, such
	// as a LAN host's; "" makes a namespace for the node alone.
	NetNS string
	// Prefix is the pods' subnet (default 10.250.9.0/24). It exists only
	// inside NetNS.
	Prefix netip.Prefix
	// Bridge names the pods' bridge (default gtest0).
	Bridge string
	// NoImage leaves the busybox image out of the node's containerd.
	NoImage bool
}

// Node is what a gitorch node runs pods with, made for one test: a
// private containerd holding the busybox image (BusyboxRef), a data
// directory, and a bridge network in a network namespace the test owns,
// with a runtime on all of them. Everything is removed when the test ends.
type Node struct {
	// CD is the node's containerd.
	CD *Containerd
	// NetNS is the path of the network namespace that holds the bridge:
	// the node's own network, where pods are reachable.
	NetNS string
	// DataDir is the runtime's data directory.
	DataDir string
	// Prefix is the pods' subnet, Bridge their bridge's name.
	Prefix netip.Prefix
	Bridge string
	// Runtime and IPAM were made by NewRuntime when the node was made.
	Runtime *apply.Containerd
	IPAM    *apply.IPAM
}

// NewNode makes a node for the test.
func NewNode(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	cd := StartContainerd(t)
	if !opts.NoImage {
		ImportBusybox(t, cd)
	}
	n := &Node{CD: cd, NetNS: opts.NetNS, DataDir: t.TempDir(), Prefix: opts.Prefix, Bridge: opts.Bridge}
	if n.NetNS == "" {
		n.NetNS = NetNS(t)
	}
	if !n.Prefix.IsValid() {
		n.Prefix = netip.MustParsePrefix("10.250.9.0/24")
	}
	if n.Bridge == "" {
		n.Bridge = "gtest0"
	}
	// Runs before t.TempDir's removal: whatever a failed test left
	// mounted under the data dir must not make the removal fail.
	t.Cleanup(func() {
		if err := UnmountUnder(n.DataDir); err != nil {
			t.Error(err)
		}
	})
	n.Runtime, n.IPAM = n.NewRuntime(t, nil)
	return n
}

// NewRuntime returns a new runtime instance on the node's containerd
// (through c, or the daemon's own client if c is nil), data directory and
// network, as a restarted gitorch builds it.
func (n *Node) NewRuntime(t testing.TB, c *client.Client) (*apply.Containerd, *apply.IPAM) {
	t.Helper()
	ipam, err := apply.OpenIPAM(filepath.Join(n.DataDir, "ipam.json"), n.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	network, err := apply.NewBridgeNetwork(apply.BridgeConfig{Bridge: n.Bridge, IPAM: ipam, HostNetNS: n.NetNS})
	if err != nil {
		t.Fatal(err)
	}
	cfg := n.CD.RuntimeConfig(n.DataDir)
	if c != nil {
		cfg.Client = c
	}
	cfg.Network = network
	rt, err := apply.NewContainerd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt, ipam
}

// RuntimeConfig is the configuration of a runtime on the daemon with
// data directory dataDir and no network: its client, namespace,
// snapshotter and runc root.
func (c *Containerd) RuntimeConfig(dataDir string) apply.ContainerdConfig {
	return apply.ContainerdConfig{
		Client:      c.Client,
		Namespace:   c.Namespace,
		Snapshotter: c.Snapshotter,
		DataDir:     dataDir,
		RuncRoot:    c.RuncRoot,
	}
}

// CtrRun is `ctr run -d` of image as container id running args, on the
// daemon as the runtime uses it: its socket, namespace, snapshotter and
// runc root.
func (c *Containerd) CtrRun(t testing.TB, image, id string, args ...string) *exec.Cmd {
	t.Helper()
	ctr := testenv.RequireBinary(t, "ctr")
	return exec.Command(ctr, append([]string{"-a", c.Address, "-n", c.Namespace, "run", "-d",
		"--snapshotter", c.Snapshotter, "--runc-root", c.RuncRoot, image, id}, args...)...)
}

// RemoveContainer kills the task of container id, if it has one, and
// deletes the container and its snapshot.
func (c *Containerd) RemoveContainer(t testing.TB, id string) {
	t.Helper()
	ctx := c.Context(context.Background())
	ctr, err := c.Client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if task, err := ctr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
			t.Fatalf("delete task %s: %v", id, err)
		}
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		t.Fatalf("delete container %s: %v", id, err)
	}
}

// ImportBusybox builds the busybox image and imports it into the daemon
// as BusyboxRef.
func ImportBusybox(t testing.TB, cd *Containerd) {
	t.Helper()
	f, err := os.Open(BusyboxArchive(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := apply.ImportImage(context.Background(), cd.Client, cd.Namespace, cd.Snapshotter, f); err != nil {
		t.Fatalf("import busybox: %v", err)
	}
}
