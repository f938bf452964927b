package applytest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/gitorch/gitorch/pkg/apply/nsfile"
)

// made records what this process's tests made outside their temporary
// directories, for Main to check once they are over.
var made struct {
	sync.Mutex
	namespaces []string // containerd namespaces (runc state in SharedRuncRoot)
	netns      []string // named network namespaces (NetNSDir)
}

func madeNamespace(ns string) {
	made.Lock()
	defer made.Unlock()
	made.namespaces = append(made.namespaces, ns)
}

func madeNetNS(name string) {
	made.Lock()
	defer made.Unlock()
	made.netns = append(made.netns, name)
}

// Main runs a package's tests, for its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(applytest.Main(m)) }
//
// The tests run with TMPDIR in a directory of their own; when they are
// over, Main fails the run if they left anything behind (see Leftovers),
// then removes what it found, so that a leak costs one failed run and
// does not pile up.
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gitorch-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	old, had := os.LookupEnv("TMPDIR")
	os.Setenv("TMPDIR", dir)
	hostLinks, _ := linkNames()
	code := m.Run()
	if had {
		os.Setenv("TMPDIR", old)
	} else {
		os.Unsetenv("TMPDIR")
	}
	left := Leftovers(dir, hostLinks)
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the tests left behind:\n\t%s\n", strings.Join(left, "\n\t"))
		if code == 0 {
			code = 1
		}
	}
	if err := removeLeftovers(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// Leftovers lists what tests that ran with TMPDIR=tmp left behind: mounts,
// files or running processes under tmp, runc state of the containerd
// namespaces they made, the named network namespaces they made, and
// links of the machine's network namespace that were not in before and
// carry a name the tests give (gtest*, gv*, gt-*).
func Leftovers(tmp string, before []string) []string {
	var out []string
	points, err := nsfile.MountsUnder(tmp)
	if err != nil {
		out = append(out, fmt.Sprintf("mounts: %v", err))
	}
	for _, p := range points {
		out = append(out, "mount "+p)
	}
	if entries, err := os.ReadDir(tmp); err == nil {
		for _, e := range entries {
			out = append(out, "file "+filepath.Join(tmp, e.Name()))
		}
	}
	for _, pid := range processesNaming(tmp) {
		out = append(out, fmt.Sprintf("process %d: %s", pid, cmdline(pid)))
	}
	made.Lock()
	namespaces, netnsNames := slices.Clone(made.namespaces), slices.Clone(made.netns)
	made.Unlock()
	for _, ns := range namespaces {
		if p := filepath.Join(SharedRuncRoot, ns); exists(p) {
			out = append(out, "runc state "+p)
		}
	}
	for _, name := range netnsNames {
		if p := filepath.Join(NetNSDir, name); exists(p) {
			out = append(out, "network namespace "+p)
		}
	}
	if now, err := linkNames(); err == nil {
		for _, l := range now {
			ours := strings.HasPrefix(l, "gtest") || strings.HasPrefix(l, "gv") || strings.HasPrefix(l, "gt-")
			if ours && !slices.Contains(before, l) {
				out = append(out, "link "+l+" in the machine's network namespace")
			}
		}
	}
	return out
}

// removeLeftovers removes what Leftovers finds.
func removeLeftovers(tmp string) error {
	for _, pid := range processesNaming(tmp) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	made.Lock()
	defer made.Unlock()
	for _, ns := range made.namespaces {
		os.RemoveAll(filepath.Join(SharedRuncRoot, ns))
	}
	for _, name := range made.netns {
		removeNamedNetNS(name)
	}
	if err := nsfile.UnmountUnder(tmp); err != nil {
		return err
	}
	return os.RemoveAll(tmp)
}

// processesNaming returns the processes other than this one whose command
// line holds s, such as a containerd shim with its daemon's socket.
func processesNaming(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if strings.Contains(cmdline(pid), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(bytes.TrimRight(bytes.ReplaceAll(b, []byte{0}, []byte{' '}), " "))
}

func linkNames() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names, nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
