package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/apply/proxy"
)

// resetDNSLink is the interface that holds the cluster DNS address on a
// node (a dummy where the kernel has them).
const resetDNSLink = "gitorch-dns"

// ProxyTable is the nftables table (family inet) of the Service proxy; the
// Services are in the tables named after it (proxy.ShardTable).
const ProxyTable = "gitorch"

// ResetConfig says where the things a gitorch node made are.
type ResetConfig struct {
	// HostNetNS is the path of the node's network namespace; "" is the
	// namespace gitorch runs in.
	HostNetNS string
	// Bridge is the pods' bridge (default gitorch0).
	Bridge string
	// Client is the node's containerd (nil: containers and snapshots are
	// left alone); Namespace is gitorch's namespace in it (default
	// DefaultNamespace), Snapshotter its snapshotter (default
	// containerd's).
	Client      *client.Client
	Namespace   string
	Snapshotter string
	// DataDir is the agent's state directory ("" leaves the disk alone).
	DataDir string
}

// ResetItem is one thing Reset removes.
type ResetItem struct {
	Kind string // "nftables table", "route", "link", "container", "snapshot", "directory"
	Name string
}

func (i ResetItem) String() string { return i.Kind + " " + i.Name }

// Reset removes what gitorch made on the node: its nftables tables (inet
// ProxyTable and inet PodNetTable), its routes (RouteProtocol), the pods'
// bridge, the node ends of pods' veths (gv*), the DNS interface, the
// containers (with their tasks) and the snapshots of its containerd
// namespace, and its data directory, after unmounting whatever is
// mounted under it (pods' namespaces, volumes). With remove false it only
// lists them. It returns what it found, and removes all it can: the
// error joins every failure. Nothing of another name, protocol or
// namespace is touched; what is absent is not an error, so a second
// Reset finds nothing.
func Reset(ctx context.Context, cfg ResetConfig, remove bool) ([]ResetItem, error) {
	if cfg.Bridge == "" {
		cfg.Bridge = "gitorch0"
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	var items []ResetItem
	var errs []error
	// Containers first: their tasks hold the pods' namespaces.
	if cfg.Client != nil {
		it, err := resetContainerd(ctx, cfg, remove)
		items = append(items, it...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	it, err := resetTables(cfg.HostNetNS, remove)
	items = append(items, it...)
	if err != nil {
		errs = append(errs, err)
	}
	it, err = resetLinks(cfg, remove)
	items = append(items, it...)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.DataDir != "" {
		if _, err := os.Lstat(cfg.DataDir); err == nil {
			items = append(items, ResetItem{"directory", cfg.DataDir})
			if remove {
				if err := nsfile.UnmountUnder(cfg.DataDir); err != nil {
					errs = append(errs, err)
				}
				if err := os.RemoveAll(cfg.DataDir); err != nil {
					errs = append(errs, fmt.Errorf("remove %s: %w", cfg.DataDir, err))
				}
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return items, errors.Join(errs...)
}

func resetTables(nsPath string, remove bool) ([]ResetItem, error) {
	c, err := nftConn(nsPath)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list nftables tables: %w", err)
	}
	var items []ResetItem
	for _, t := range tables {
		if !proxy.IsTable(ProxyTable, t.Name) && t.Name != PodNetTable {
			continue
		}
		items = append(items, ResetItem{"nftables table", "inet " + t.Name})
		if remove {
			c.DelTable(t)
		}
	}
	if remove && len(items) > 0 {
		if err := c.Flush(); err != nil {
			return items, fmt.Errorf("delete nftables tables: %w", err)
		}
	}
	return items, nil
}

func resetLinks(cfg ResetConfig, remove bool) ([]ResetItem, error) {
	h, err := netlinkHandle(cfg.HostNetNS)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var items []ResetItem
	var errs []error
	routes, err := ownRoutes(h)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range routes {
		dst, gw := routeKey(r)
		items = append(items, ResetItem{"route", fmt.Sprintf("%s via %s", dst, gw)})
		if remove {
			if err := h.RouteDel(&r); err != nil {
				errs = append(errs, fmt.Errorf("remove route to %s: %w", dst, err))
			}
		}
	}
	links, err := h.LinkList()
	if err != nil {
		return items, errors.Join(append(errs, fmt.Errorf("list links: %w", err))...)
	}
	// Veths before the bridge they are ports of.
	slices.SortStableFunc(links, func(a, b netlink.Link) int {
		return boolInt(a.Attrs().Name == cfg.Bridge) - boolInt(b.Attrs().Name == cfg.Bridge)
	})
	for _, l := range links {
		name, kind := l.Attrs().Name, l.Type()
		switch {
		case strings.HasPrefix(name, "gv") && kind == "veth":
		case name == cfg.Bridge && kind == "bridge":
		case name == resetDNSLink:
		default:
			continue
		}
		items = append(items, ResetItem{"link", fmt.Sprintf("%s (%s)", name, kind)})
		if remove {
			var nf netlink.LinkNotFoundError
			if err := h.LinkDel(l); err != nil && !errors.As(err, &nf) {
				errs = append(errs, fmt.Errorf("remove link %s: %w", name, err))
			}
		}
	}
	return items, errors.Join(errs...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func resetContainerd(ctx context.Context, cfg ResetConfig, remove bool) ([]ResetItem, error) {
	ctx = namespaces.WithNamespace(ctx, cfg.Namespace)
	ctrs, err := cfg.Client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers in containerd namespace %s: %w", cfg.Namespace, err)
	}
	var items []ResetItem
	var errs []error
	for _, ctr := range ctrs {
		items = append(items, ResetItem{"container", cfg.Namespace + "/" + ctr.ID()})
		if !remove {
			continue
		}
		if task, err := ctr.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete task of %s: %w", ctr.ID(), err))
				continue
			}
		} else if !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("task of %s: %w", ctr.ID(), err))
			continue
		}
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete container %s: %w", ctr.ID(), err))
		}
	}
	name := cfg.Snapshotter
	if name == "" {
		name = defaults.DefaultSnapshotter
	}
	sn := cfg.Client.SnapshotService(name)
	var keys []string
	parents := map[string]string{}
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		keys = append(keys, info.Name)
		parents[info.Name] = info.Parent
		return nil
	}); err != nil {
		return items, errors.Join(append(errs, fmt.Errorf("list snapshots (%s) in containerd namespace %s: %w", name, cfg.Namespace, err))...)
	}
	slices.Sort(keys)
	for _, k := range keys {
		items = append(items, ResetItem{"snapshot", name + "/" + k})
	}
	if !remove {
		return items, errors.Join(errs...)
	}
	// Children before parents: remove the snapshots no other one names
	// as parent, until none is left (a chain of n takes n rounds).
	// A snapshot that could not go keeps its parents.
	left := slices.Clone(keys)
	var stuck []string
	for len(left) > 0 {
		isParent := map[string]bool{}
		for _, k := range slices.Concat(left, stuck) {
			isParent[parents[k]] = true
		}
		var next []string
		removed := false
		for _, k := range left {
			if isParent[k] {
				next = append(next, k)
				continue
			}
			if err := sn.Remove(ctx, k); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove snapshot %s: %w", k, err))
				stuck = append(stuck, k)
				continue
			}
			removed = true
		}
		if !removed {
			break // the failures are in errs
		}
		left = next
	}
	return items, errors.Join(errs...)
}
