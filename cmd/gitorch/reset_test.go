package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
)

// TestNodeReset runs a pod on a node, then resets the node: without
// --yes nothing goes; with it the containers, snapshots, bridge, veths
// and data directory go; a second reset finds nothing.
func TestNodeReset(t *testing.T) {
	n := applytest.NewNode(t, applytest.NodeOptions{})
	ctx := context.Background()
	pod := apply.PodSpec{Namespace: "default", Name: "sleeper", Containers: []apply.ContainerSpec{
		{Name: "main", Image: applytest.BusyboxRef, Command: []string{"sleep", "3600"}},
	}}
	if _, err := n.Runtime.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	noTerminal(t, nil)
	args := []string{"node", "reset", "--netns", n.NetNS, "--bridge", n.Bridge, "--data-dir", n.DataDir,
		"--containerd-address", n.CD.Address, "--containerd-namespace", n.CD.Namespace, "--snapshotter", n.CD.Snapshotter}
	reset := func(extra ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append(args, extra...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := reset()
	if code != exitError || !strings.Contains(errOut, "run 'gitorch node reset --yes'") {
		t.Fatalf("reset without --yes: exit %d, stderr %q; want %d and a hint", code, errOut, exitError)
	}
	veth := apply.HostVeth(plan.Key{Namespace: "default", Name: "sleeper"})
	for _, want := range []string{"link " + n.Bridge + " (bridge)", "link " + veth + " (veth)", "directory " + n.DataDir, "container " + n.CD.Namespace + "/", "snapshot "} {
		if !strings.Contains(out, want) {
			t.Errorf("reset without --yes lists\n%s\nwithout %q", out, want)
		}
	}
	if got := containers(t, n); got == 0 {
		t.Fatal("reset without --yes removed the containers")
	}

	// Refused while an agent holds the data directory.
	unlock, err := node.LockDataDir(n.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = reset("--yes")
	unlock()
	if code != exitError || !strings.Contains(errOut, "an agent (pid ") {
		t.Fatalf("reset while an agent runs: exit %d, stderr %q", code, errOut)
	}

	// On a terminal it asks; "y" removes.
	noTerminal(t, strings.NewReader("y\n"))
	if code, out, errOut := reset(); code != 0 {
		t.Fatalf("reset answered y: exit %d\n%s\n%s", code, out, errOut)
	} else if !strings.Contains(out, "Remove them? [y/N]") || !strings.Contains(out, "removed link "+n.Bridge) {
		t.Fatalf("reset answered y printed\n%s", out)
	}
	if got := containers(t, n); got != 0 {
		t.Errorf("%d containers left", got)
	}
	if got := snapshotCount(t, n); got != 0 {
		t.Errorf("%d snapshots left", got)
	}
	if _, err := os.Stat(n.DataDir); !os.IsNotExist(err) {
		t.Errorf("data directory: %v, want it gone", err)
	}

	// Idempotent.
	noTerminal(t, nil)
	if code, out, errOut := reset("--yes"); code != 0 || out != "nothing of gitorch's on this node\n" {
		t.Fatalf("second reset: exit %d\n%s\n%s", code, out, errOut)
	}
}

// noTerminal makes standard input in (a terminal) or, with nil, not a
// terminal, for the rest of the test.
func noTerminal(t *testing.T, in io.Reader) {
	t.Helper()
	old := terminalStdin
	terminalStdin = func() io.Reader { return in }
	t.Cleanup(func() { terminalStdin = old })
}

func containers(t *testing.T, n *applytest.Node) int {
	t.Helper()
	cs, err := n.CD.Client.Containers(n.CD.Context(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

func snapshotCount(t *testing.T, n *applytest.Node) int {
	t.Helper()
	k := 0
	err := n.CD.Client.SnapshotService(n.CD.Snapshotter).Walk(n.CD.Context(context.Background()), func(context.Context, snapshots.Info) error {
		k++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}
