// Package nsfile creates Linux namespaces that outlive the process that
// made them: each is bind-mounted onto a file, as `ip netns add` does, so
// that containers can join it by path and a restarted gitorch finds it
// again.
package nsfile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Kind is a namespace type, named as in /proc/PID/ns.
type Kind string

// The kinds a pod shares among its containers.
const (
	Net Kind = "net"
	IPC Kind = "ipc"
	UTS Kind = "uts"
)

var cloneFlags = map[Kind]uintptr{Net: unix.CLONE_NEWNET, IPC: unix.CLONE_NEWIPC, UTS: unix.CLONE_NEWUTS}

// Path is the file that holds namespace kind in dir.
func Path(dir string, kind Kind) string { return filepath.Join(dir, string(kind)) }

// Create makes a new namespace of each kind and bind-mounts it on
// dir/<kind>. With UTS among kinds, hostname is set in the new UTS
// namespace. A kind whose file already holds a namespace is kept, so
// Create can be called again on a half-made set.
func Create(dir string, hostname string, kinds ...Kind) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var flags uintptr
	var todo []Kind
	for _, k := range kinds {
		if _, ok := cloneFlags[k]; !ok {
			return fmt.Errorf("nsfile: unsupported namespace kind %q", k)
		}
		if IsNamespace(Path(dir, k)) {
			continue
		}
		flags |= cloneFlags[k]
		todo = append(todo, k)
	}
	if len(todo) == 0 {
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err, restored := createOnThread(dir, hostname, flags, todo)
		// A thread that could not return to its namespaces stays locked:
		// the Go runtime ends it when this goroutine returns, so no other
		// goroutine ever runs inside the new namespaces.
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// createOnThread runs on a locked thread: it saves the thread's current
// namespaces, unshares new ones, bind-mounts them and returns to the saved
// ones. restored says whether the thread is back where it started.
func createOnThread(dir, hostname string, flags uintptr, todo []Kind) (err error, restored bool) {
	tid := unix.Gettid()
	saved := map[Kind]int{}
	defer func() {
		restored = true
		for k, fd := range saved {
			if e := unix.Setns(fd, int(cloneFlags[k])); e != nil {
				restored = false
				if err == nil {
					err = fmt.Errorf("return to %s namespace: %w", k, e)
				}
			}
			unix.Close(fd)
		}
	}()
	for _, k := range todo {
		fd, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, k), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open own %s namespace: %w", k, err), false
		}
		saved[k] = fd
	}
	if err := unix.Unshare(int(flags)); err != nil {
		return fmt.Errorf("unshare: %w", err), false
	}
	if flags&unix.CLONE_NEWUTS != 0 && hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("sethostname %q: %w", hostname, err), false
		}
	}
	for _, k := range todo {
		p := Path(dir, k)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o444)
		if err != nil {
			return err, false
		}
		f.Close()
		src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, k)
		if err := unix.Mount(src, p, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", src, p, err), false
		}
	}
	return nil, false
}

// IsNamespace reports whether path holds a bind-mounted namespace.
func IsNamespace(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// Remove unmounts and deletes dir/<kind> for each kind. The namespace
// itself goes away when no process uses it any more. Missing files are
// not an error.
func Remove(dir string, kinds ...Kind) error {
	var errs []error
	for _, k := range kinds {
		p := Path(dir, k)
		if IsNamespace(p) {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
				continue
			}
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Do runs fn on an OS thread that has joined the network namespace at
// path, so that sockets fn opens itself belong to that namespace. Work fn
// hands to other goroutines runs elsewhere: http.Client, for one, dials
// from a goroutine of its own, outside the namespace. Dial in fn (net.Dial
// to an IP literal dials on the calling goroutine) and use the connection
// after. The thread returns to its own namespace afterwards, or is ended
// if it cannot.
func Do(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored := false
		defer func() {
			if restored {
				runtime.UnlockOSThread()
			}
		}()
		own, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(own)
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			restored = true
			errc <- fmt.Errorf("open %s: %w", path, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			restored = true
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		err = fn()
		restored = unix.Setns(own, unix.CLONE_NEWNET) == nil
		errc <- err
	}()
	return <-errc
}

// UnmountUnder lazily unmounts every mount point at or below dir, deepest
// first, so that the directory can be removed.
func UnmountUnder(dir string) error {
	points, err := MountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for i := len(points) - 1; i >= 0; i-- {
		if err := unix.Unmount(points[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", points[i], err))
		}
	}
	return errors.Join(errs...)
}

// MountsUnder returns the mount points at or below dir in this process's
// mount namespace, in the order they were mounted.
func MountsUnder(dir string) ([]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountPath(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	return points, sc.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
