// Package applytest is the test harness of the packages that run pods
// (pkg/apply, pkg/node, cmd/gitorch): NewNode gives a test a runtime on a
// private containerd with a busybox image built in Go and a bridge in a
// network namespace of its own; NewLAN joins network namespaces into a
// LAN for tests of several nodes; Main fails a package's test run that
// leaves mounts, runc state, processes or namespaces behind. It never
// touches a containerd, an image store or a network it did not create.
package applytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
)

// SharedRuncRoot is the runc root of containerd's runc shim when a task
// names none; runc adds the containerd namespace to it.
const SharedRuncRoot = "/run/containerd/runc"

// Containerd is a containerd daemon started for one test, with its own
// root, state directory and socket.
type Containerd struct {
	// Address is the gRPC socket.
	Address string
	// Dir holds root/, state/ and the daemon's log.
	Dir string
	// Namespace is a containerd namespace unique to this daemon, so that
	// a task started without RuncRoot, whose state runc keeps in
	// /run/containerd/runc/<namespace> (shared by every containerd on the
	// machine), collides with no other test's.
	Namespace string
	// RuncRoot is where runc keeps the state of this daemon's tasks, in
	// Dir: give it to the runtime (RuntimeConfig does) so that the test
	// leaves nothing in /run.
	RuncRoot string
	// Snapshotter is overlayfs when the daemon loaded it, else native.
	Snapshotter string
	// Client is connected to Address, with Namespace as default.
	Client *client.Client

	cmd  *exec.Cmd
	done chan error
}

// StartContainerd starts Debian's containerd with a generated config in a
// temporary directory and waits until it serves. It stops the daemon,
// every task it runs and every mount left under its directories when the
// test ends.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	testenv.RequireRoot(t)
	bin := testenv.RequireBinary(t, "containerd")
	testenv.RequireBinary(t, "runc")
	testenv.RequireBinary(t, "containerd-shim-runc-v2")

	// Unix socket paths must be shorter than 108 bytes, and t.TempDir's
	// names grow with the test's name: keep the whole daemon in a short
	// directory of its own.
	dir, err := os.MkdirTemp("", "gtc")
	if err != nil {
		t.Fatal(err)
	}
	ns := "gitorch-test-" + RandomHex(4)
	madeNamespace(ns)
	c := &Containerd{
		Address:   filepath.Join(dir, "c.sock"),
		Dir:       dir,
		Namespace: ns,
		RuncRoot:  filepath.Join(dir, "runc"),
		done:      make(chan error, 1),
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.gc.v1.scheduler"]
  deletion_threshold = 0
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Address, c.Address+".t")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, and killed if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	c.cmd = cmd
	go func() { c.done <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() { c.stop(t) })

	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(c.Address); err == nil {
			cl, err := client.New(c.Address, client.WithDefaultNamespace(ns), client.WithTimeout(5*time.Second))
			if err == nil {
				ok, err := cl.IsServing(context.Background())
				if err == nil && ok {
					c.Client = cl
					break
				}
				cl.Close()
			}
		}
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("containerd exited before serving: %v\n%s", err, c.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not serve on %s within 30s\n%s", c.Address, c.Log())
		}
	}
	c.Snapshotter = c.pickSnapshotter(t)
	t.Logf("containerd on %s, namespace %s, snapshotter %s", c.Address, ns, c.Snapshotter)
	return c
}

// Context returns a context carrying the daemon's namespace.
func (c *Containerd) Context(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, c.Namespace)
}

// Log returns the daemon's log so far.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	return string(b)
}

// pickSnapshotter returns overlayfs if the daemon loaded it, else native.
func (c *Containerd) pickSnapshotter(t testing.TB) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Client.IntrospectionService().Plugins(ctx, `type=="io.containerd.snapshotter.v1"`)
	if err != nil {
		t.Fatalf("list snapshotters: %v", err)
	}
	ok := map[string]bool{}
	for _, p := range resp.Plugins {
		if p.InitErr == nil {
			ok[p.ID] = true
		}
	}
	switch {
	case ok["overlayfs"]:
		return "overlayfs"
	case ok["native"]:
		return "native"
	}
	t.Fatalf("containerd has neither overlayfs nor native snapshotter: %v", ok)
	return ""
}

// stop kills every task in every namespace, stops the daemon and removes
// its directory (after unmounting whatever is still mounted under it).
func (c *Containerd) stop(t testing.TB) {
	var used []string // the containerd namespaces, whose cgroups go at the end
	if c.Client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if nss, err := c.Client.NamespaceService().List(ctx); err == nil {
			used = nss
		}
		cancel()
		// Each namespace has a time of its own, so that one slow to
		// clean does not leave the others' tasks running.
		for _, ns := range used {
			ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 30*time.Second)
			killAll(ctx, c.Client)
			cancel()
		}
		c.Client.Close()
	}
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
	// A shim exits shortly after its task is deleted, possibly after
	// containerd: give the shims of deleted tasks a bounded moment, so
	// that the leak check reports only those that stay.
	for deadline := time.Now().Add(10 * time.Second); len(processesNaming(c.Dir)) > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	// A shim whose task containerd could not delete in time stays with
	// its container after containerd is gone: kill both (the containers
	// below, by their cgroups) and say so.
	for _, pid := range processesNaming(c.Dir) {
		t.Logf("killed process %d left after containerd stopped: %s", pid, cmdline(pid))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := UnmountUnder(c.Dir); err != nil {
		t.Errorf("unmount under %s: %v", c.Dir, err)
	}
	for _, ns := range append(used, c.Namespace) {
		if pids := killCgroupProcs(ns); len(pids) > 0 {
			t.Logf("killed processes %v left in the cgroups of containerd namespace %s (a container whose shim was gone)", pids, ns)
		}
		RemoveCgroups(ns)
	}
	// A task made without the daemon's RuncRoot left its state in the
	// machine's runc root: remove it, and fail the test that did it.
	shared := filepath.Join(SharedRuncRoot, c.Namespace)
	if _, err := os.Stat(shared); err == nil {
		t.Errorf("runc state left in %s: make the runtime with RuntimeConfig (or RuncRoot %s)", shared, c.RuncRoot)
		if err := os.RemoveAll(shared); err != nil {
			t.Errorf("remove %s: %v", shared, err)
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Errorf("remove %s: %v", c.Dir, err)
	}
}

func killAll(ctx context.Context, cl *client.Client) {
	ctrs, err := cl.Containers(ctx)
	if err != nil {
		return
	}
	// Kill every task first, then wait for each and delete it: waiting
	// for one before killing the next could use up ctx on a slow one.
	type killed struct {
		ctr  client.Container
		task client.Task
		exit <-chan client.ExitStatus
	}
	var ks []killed
	for _, ctr := range ctrs {
		k := killed{ctr: ctr}
		if task, err := ctr.Task(ctx, nil); err == nil {
			k.task = task
			if ch, err := task.Wait(ctx); err == nil && task.Kill(ctx, syscall.SIGKILL) == nil {
				k.exit = ch
			}
		}
		ks = append(ks, k)
	}
	for _, k := range ks {
		if k.exit != nil {
			select {
			case <-k.exit:
			case <-time.After(10 * time.Second):
			case <-ctx.Done():
			}
		}
		if k.task != nil {
			_, _ = k.task.Delete(ctx, client.WithProcessKill)
		}
		_ = k.ctr.Delete(ctx, client.WithSnapshotCleanup)
	}
}

// UnmountUnder lazily unmounts every mount point at or below dir.
func UnmountUnder(dir string) error { return nsfile.UnmountUnder(dir) }

// RandomHex returns 2n random hex digits.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// RemoveCgroups removes the cgroups runc made for the containerd namespace
// ns (containerd puts a task in /NAMESPACE/ID), once its tasks are gone:
// the empty parents, in every hierarchy, which runc leaves behind. A
// cgroup still in use is left alone.
func RemoveCgroups(ns string) {
	if ns == "" {
		return
	}
	for _, d := range cgroupDirs(ns) {
		var sub []string
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		// Deepest first; only an empty cgroup goes.
		slices.SortFunc(sub, func(a, b string) int { return len(b) - len(a) })
		for _, p := range sub {
			_ = syscall.Rmdir(p)
		}
	}
}

// cgroupDirs are the cgroups of the containerd namespace ns, in every
// hierarchy (v1 and v2).
func cgroupDirs(ns string) []string {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns))
	if d := filepath.Join("/sys/fs/cgroup", ns); exists(d) {
		dirs = append(dirs, d)
	}
	return dirs
}

// killCgroupProcs kills the processes still in the cgroups of the
// containerd namespace ns once its containerd has stopped: a container
// whose shim went away before its task was killed keeps running,
// orphaned, and only its cgroup still names it. It returns their pids,
// after they are gone (or 5 s).
func killCgroupProcs(ns string) []int {
	if ns == "" {
		return nil
	}
	var pids []int
	for _, d := range cgroupDirs(ns) {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() && !slices.Contains(pids, pid) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		alive := false
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				alive = true
			}
		}
		if !alive {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return pids
}
