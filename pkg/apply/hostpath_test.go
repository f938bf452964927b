package apply

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// blockDevice is a block device: one made in dir (as root), else one of
// this machine's, else "".
func blockDevice(dir string) string {
	p := filepath.Join(dir, "blk")
	if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err == nil {
		return p
	}
	entries, _ := os.ReadDir("/dev")
	for _, e := range entries {
		p := filepath.Join("/dev", e.Name())
		if fi, err := os.Stat(p); err == nil && fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0 {
			return p
		}
	}
	return ""
}

// umask is the process's file mode creation mask, which applies to what
// DirectoryOrCreate and FileOrCreate make, as in kubelet.
func umask(t *testing.T) fs.FileMode {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			return fs.FileMode(m)
		}
	}
	t.Fatal("no Umask in /proc/self/status")
	return 0
}

func TestHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	missing := filepath.Join(dir, "missing")
	const typeErr = "type" // the error wraps ErrHostPathType
	cases := []struct {
		name, path, typ string
		wantErr         string // "" for none, else a part of the message
		made            fs.FileMode
	}{
		{"no type: an existing file", file, "", "", 0},
		{"no type: a socket", sock, "", "", 0},
		{"no type: a missing path is made a directory", filepath.Join(dir, "plain", "d"), "", "", fs.ModeDir | 0o755},
		{"DirectoryOrCreate makes the directory and its parents", filepath.Join(dir, "a", "b"), "DirectoryOrCreate", "", fs.ModeDir | 0o755},
		{"DirectoryOrCreate on an existing directory", dir, "DirectoryOrCreate", "", 0},
		{"DirectoryOrCreate on a file", file, "DirectoryOrCreate", "is not a DirectoryOrCreate (it is a regular file)", 0},
		{"Directory", dir, "Directory", "", 0},
		{"Directory on a file", file, "Directory", "is not a Directory (it is a regular file)", 0},
		{"Directory missing", missing, "Directory", "is not a Directory (it does not exist)", 0},
		{"FileOrCreate makes an empty file", filepath.Join(dir, "new"), "FileOrCreate", "", 0o644},
		{"FileOrCreate keeps an existing file", file, "FileOrCreate", "", 0},
		{"FileOrCreate needs the parent directory", filepath.Join(dir, "no", "new"), "FileOrCreate", "no such file", 0},
		{"FileOrCreate on a directory", dir, "FileOrCreate", "(it is a directory)", 0},
		{"File", file, "File", "", 0},
		{"File on a socket", sock, "File", "(it is a socket)", 0},
		{"File on a character device", "/dev/null", "File", "(it is a character device)", 0},
		{"File missing", missing, "File", "(it does not exist)", 0},
		{"Socket", sock, "Socket", "", 0},
		{"Socket on a file", file, "Socket", "is not a Socket (it is a regular file)", 0},
		{"Socket missing", missing, "Socket", "(it does not exist)", 0},
		{"CharDevice", "/dev/null", "CharDevice", "", 0},
		{"CharDevice on a directory", dir, "CharDevice", "(it is a directory)", 0},
		{"BlockDevice on a character device", "/dev/null", "BlockDevice", "(it is a character device)", 0},
		{"BlockDevice missing", missing, "BlockDevice", "(it does not exist)", 0},
	}
	if dev := blockDevice(dir); dev != "" {
		cases = append(cases, struct {
			name, path, typ string
			wantErr         string
			made            fs.FileMode
		}{"BlockDevice", dev, "BlockDevice", "", 0})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkHostPath(c.path, c.typ)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
			} else {
				if !errors.Is(err, ErrHostPathType) || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), c.path) {
					t.Fatalf("error %v, want ErrHostPathType naming %s and saying %q", err, c.path, c.wantErr)
				}
			}
			if c.made != 0 {
				fi, err := os.Stat(c.path)
				if err != nil {
					t.Fatal(err)
				}
				want := c.made &^ umask(t)
				if fi.Mode() != want || (fi.Mode().IsRegular() && fi.Size() != 0) {
					t.Fatalf("made %v of %d bytes, want %v, empty", fi.Mode(), fi.Size(), want)
				}
			}
		})
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "kept" {
		t.Fatalf("existing file changed: %q, %v", b, err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a checked type made %s: %v", missing, err)
	}
	if err := checkHostPath(file, "Pipe"); err == nil || errors.Is(err, ErrHostPathType) {
		t.Fatalf("unknown type: error %v, want one that is not ErrHostPathType", err)
	}
}

// A failed check names the volume as well as the path.
func TestSyncVolumesNamesTheHostPathVolume(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "app.sock")
	r := &Containerd{cfg: ContainerdConfig{DataDir: t.TempDir()}}
	err := r.syncVolumes(PodSpec{Namespace: "default", Name: "p", Volumes: []Volume{
		{Name: "sock", HostPath: missing, HostPathType: "Socket"},
	}})
	if !errors.Is(err, ErrHostPathType) || !strings.Contains(err.Error(), "volume sock: ") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("error %v, want ErrHostPathType naming volume sock and %s", err, missing)
	}
}
