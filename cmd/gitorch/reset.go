package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/node"
)

// terminalStdin is standard input when it is a terminal (a prompt can be
// answered), else nil.
var terminalStdin = func() io.Reader {
	if _, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return os.Stdin
}

func (a *app) nodeResetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove everything gitorch made on this node",
		Long: `Reset removes what gitorch made on this node, as if it had never run: the
nftables tables inet gitorch and inet gitorch-<n> (Services) and inet
gitorch-net (egress masquerade), gitorch's routes to other nodes' pods
(protocol 201), the pods' bridge (--bridge) and veths (gv*), the cluster
DNS interface gitorch-dns, the
containers and snapshots of its containerd namespace (images stay), and its
data directory (Git cache, pod state, IPAM, membership). Nothing of another
name, protocol or containerd namespace is touched.

Without --yes it lists what it would remove and asks (on a terminal) or
says to run again with --yes (otherwise). It refuses while an agent runs
on the data directory: stop the agent first ('gitorch node leave' moves
its pods to the other nodes and stops it). Reset is idempotent: run again,
it finds nothing.`,
		Example: `  # What would go
  gitorch node reset

  # Leave the cluster, then wipe the node
  gitorch node leave && gitorch node reset --yes

  # A node run with its own data directory and containerd
  gitorch node reset --yes --data-dir /srv/gitorch \
      --containerd-address /run/gitorch/containerd.sock --bridge pods0`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.nodeReset(cmd.Context())
		},
	}
	addContainerdFlags(cmd)
	f := cmd.Flags()
	f.String("data-dir", "", agentDataDirUsage)
	f.String("bridge", "gitorch0", "name of the pods' bridge")
	f.Bool("yes", false, "remove without asking")
	f.String("netns", "", "network namespace (a path) to reset instead of this process's (for tests)")
	_ = f.MarkHidden("netns")
	return cmd
}

func (a *app) nodeReset(ctx context.Context) error {
	c := a.cfg
	dataDir := c.GetString("data-dir")
	if dataDir == "" {
		var err error
		if dataDir, err = agentDataDir(os.Geteuid(), os.Getenv); err != nil {
			return err
		}
	}
	cfg := apply.ResetConfig{
		HostNetNS:   c.GetString("netns"),
		Bridge:      c.GetString("bridge"),
		Namespace:   c.GetString("containerd-namespace"),
		Snapshotter: c.GetString("snapshotter"),
		DataDir:     dataDir,
	}
	if fileExists(dataDir) {
		unlock, err := node.LockDataDir(dataDir)
		if errors.Is(err, node.ErrDataDirInUse) {
			pid, _ := os.ReadFile(filepath.Join(dataDir, node.LockFile))
			return fmt.Errorf("an agent (pid %s) is running on %s: stop it first ('gitorch node leave' moves its pods and stops it)", strings.TrimSpace(string(pid)), dataDir)
		}
		if err != nil {
			return err
		}
		defer unlock()
	}
	addr := c.GetString("containerd-address")
	if fileExists(addr) {
		cl, err := client.New(addr, client.WithTimeout(10*time.Second))
		if err != nil {
			return fmt.Errorf("connect to containerd at %s (its containers and snapshots are gitorch's too): %w", addr, err)
		}
		defer cl.Close()
		cfg.Client = cl
	} else {
		fmt.Fprintf(a.stderr, "no containerd at %s: no containers or snapshots to remove\n", addr)
	}

	items, err := apply.Reset(ctx, cfg, false)
	if err != nil {
		return fmt.Errorf("find what gitorch made: %w", err)
	}
	if len(items) == 0 {
		fmt.Fprintln(a.stdout, "nothing of gitorch's on this node")
		return nil
	}
	if !c.GetBool("yes") {
		fmt.Fprintln(a.stdout, "gitorch node reset would remove:")
		for _, it := range items {
			fmt.Fprintf(a.stdout, "  %s\n", it)
		}
		in := terminalStdin()
		if in == nil {
			return &exitCodeError{code: exitError, err: errors.New("nothing removed: run 'gitorch node reset --yes' to remove them")}
		}
		fmt.Fprint(a.stdout, "Remove them? [y/N] ")
		answer, _ := bufio.NewReader(in).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return &exitCodeError{code: exitError, err: errors.New("nothing removed")}
		}
	}
	removed, err := apply.Reset(ctx, cfg, true)
	for _, it := range removed {
		fmt.Fprintf(a.stdout, "removed %s\n", it)
	}
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}
