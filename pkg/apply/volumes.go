package apply

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func (r *Containerd) volumeDir(key, name string) string {
	return filepath.Join(r.podDir(key), "volumes", name)
}

// claimDir is where a claim's data lives on this node, outside any pod's
// directory so that it outlives the pod.
func (r *Containerd) claimDir(namespace, claim string) string {
	return filepath.Join(r.cfg.DataDir, "volumes", namespace, claim)
}

// syncVolumes makes the pod's emptyDir and Files volumes, and brings the
// files of Files volumes up to date.
func (r *Containerd) syncVolumes(pod PodSpec) error {
	seen := map[string]bool{}
	for _, v := range pod.Volumes {
		if !validName(v.Name) {
			return fmt.Errorf("volume name %q: want a DNS label", v.Name)
		}
		if seen[v.Name] {
			return fmt.Errorf("volume %q declared twice", v.Name)
		}
		seen[v.Name] = true
		switch {
		case v.Claim != "":
			// Both name a directory: no "/", no "..".
			if len(validation.IsDNS1123Subdomain(v.Claim)) > 0 || !validName(pod.Namespace) {
				return fmt.Errorf("volume %s: claim %q in namespace %q: want a DNS name and label", v.Name, v.Claim, pod.Namespace)
			}
			if err := os.MkdirAll(r.claimDir(pod.Namespace, v.Claim), 0o755); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.HostPath != "":
			if !filepath.IsAbs(v.HostPath) {
				return fmt.Errorf("volume %s: hostPath %q is not absolute", v.Name, v.HostPath)
			}
			if err := checkHostPath(v.HostPath, v.HostPathType); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
		default:
			dir := r.volumeDir(pod.dirName(), v.Name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if v.Memory {
				if mounted, err := isMountPoint(dir); err != nil {
					return err
				} else if !mounted {
					if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
						return fmt.Errorf("volume %s: mount tmpfs: %w", v.Name, err)
					}
				}
			}
			if !v.EmptyDir {
				if err := syncFiles(dir, v.Files); err != nil {
					return fmt.Errorf("volume %s: %w", v.Name, err)
				}
			}
		}
	}
	return nil
}

// syncFiles makes dir hold exactly files: changed files are replaced
// atomically (rename), files not listed are removed.
func syncFiles(dir string, files []VolumeFile) error {
	want := map[string]bool{}
	for _, f := range files {
		rel, err := cleanRel(f.Path)
		if err != nil {
			return err
		}
		want[rel] = true
		p := filepath.Join(dir, rel)
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, f.Data) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() == mode.Perm() {
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writeFileSync(p, f.Data, mode.Perm()); err != nil {
			return err
		}
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if !want[rel] {
			return os.Remove(p)
		}
		return nil
	})
}

// cleanRel checks that p is a relative path that stays inside its
// directory and returns it cleaned.
func cleanRel(p string) (string, error) {
	c := filepath.Clean(p)
	if p == "" || filepath.IsAbs(p) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q must be relative and stay inside the volume", p)
	}
	return c, nil
}

// mountSource is the host path a container mount binds.
func (r *Containerd) mountSource(pod PodSpec, m Mount) (string, error) {
	var src string
	switch {
	case m.Volume != "":
		var vol *Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == m.Volume {
				vol = &pod.Volumes[i]
			}
		}
		if vol == nil {
			return "", fmt.Errorf("mount of %s: pod has no volume %q", m.Destination, m.Volume)
		}
		switch {
		case vol.Claim != "":
			src = r.claimDir(pod.Namespace, vol.Claim)
		case vol.HostPath != "":
			src = vol.HostPath
		default:
			src = r.volumeDir(pod.dirName(), vol.Name)
		}
	case m.Source != "":
		src = m.Source
	default:
		return "", fmt.Errorf("mount of %s names no volume", m.Destination)
	}
	if m.SubPath != "" {
		rel, err := cleanRel(m.SubPath)
		if err != nil {
			return "", fmt.Errorf("mount of %s: subPath: %w", m.Destination, err)
		}
		root := src
		src = filepath.Join(src, rel)
		// A subPath inside a volume that does not exist yet is made, as
		// Kubernetes does.
		if _, err := os.Lstat(src); os.IsNotExist(err) {
			if err := os.MkdirAll(src, 0o755); err != nil {
				return "", err
			}
		}
		// A symlink could lead out of the volume.
		realRoot, err := filepath.EvalSymlinks(root)
		if err != nil {
			return "", err
		}
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			return "", err
		}
		if real != realRoot && !strings.HasPrefix(real, realRoot+"/") {
			return "", fmt.Errorf("mount of %s: subPath %q leaves its volume", m.Destination, m.SubPath)
		}
	}
	return src, nil
}

// validName reports whether s is a DNS label (RFC 1123), as volume
// names are.
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// ErrHostPathType: a hostPath volume's path is missing, of another kind
// than its type asks for, or could not be made. The pod cannot start
// until the node's files change (kubelet keeps such a pod in
// ContainerCreating with the reason as an event).
var ErrHostPathType = errors.New("hostPath type check failed")

// checkHostPath makes or checks path as the hostPath type typ says, as
// kubelet does. A path of no type is not checked; when it is missing it
// is made a directory, as containerd's CRI plugin (and dockerd) do, so
// that it can be bind mounted.
func checkHostPath(path, typ string) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrHostPathType, fmt.Sprintf(format, args...))
	}
	_, err := os.Stat(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return fail("%v", err)
	}
	switch typ {
	case "", string(corev1.HostPathDirectoryOrCreate):
		if missing {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return fail("%v", err)
			}
		}
		if typ == "" {
			return nil
		}
	case string(corev1.HostPathFileOrCreate):
		if missing {
			// The parent must exist, as in Kubernetes.
			f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil && !errors.Is(err, fs.ErrExist) {
				return fail("FileOrCreate: %v", err)
			}
			if f != nil {
				f.Close()
			}
		}
	case string(corev1.HostPathDirectory), string(corev1.HostPathFile), string(corev1.HostPathSocket),
		string(corev1.HostPathCharDev), string(corev1.HostPathBlockDev):
		if missing {
			return fail("%s is not a %s (it does not exist)", path, typ)
		}
	default:
		return fmt.Errorf("hostPath %s: type %q is not a Kubernetes hostPath type", path, typ)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail("%v", err)
	}
	var ok bool
	switch mode := fi.Mode(); typ {
	case string(corev1.HostPathDirectoryOrCreate), string(corev1.HostPathDirectory):
		ok = mode.IsDir()
	case string(corev1.HostPathFileOrCreate), string(corev1.HostPathFile):
		ok = mode.IsRegular()
	case string(corev1.HostPathSocket):
		ok = mode&os.ModeSocket != 0
	case string(corev1.HostPathCharDev):
		ok = mode&os.ModeDevice != 0 && mode&os.ModeCharDevice != 0
	case string(corev1.HostPathBlockDev):
		ok = mode&os.ModeDevice != 0 && mode&os.ModeCharDevice == 0
	}
	if !ok {
		return fail("%s is not a %s (it is %s)", path, typ, describeMode(fi.Mode()))
	}
	return nil
}

func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	}
	return "of mode " + m.String()
}
