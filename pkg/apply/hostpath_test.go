package apply

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cases := []struct {
		name, path, typ string
		wantErr         string // "" for none; "type" for ErrHostPathType
	}{
		{"no type: an existing file", file, "", ""},
		{"no type: a missing path", filepath.Join(dir, "missing"), "", "no such file"},
		{"DirectoryOrCreate makes the directory", filepath.Join(dir, "a", "b"), "DirectoryOrCreate", ""},
		{"DirectoryOrCreate on a file", file, "DirectoryOrCreate", "type"},
		{"Directory", dir, "Directory", ""},
		{"Directory on a file", file, "Directory", "type"},
		{"Directory missing", filepath.Join(dir, "nope"), "Directory", "no such file"},
		{"FileOrCreate makes the file", filepath.Join(dir, "new"), "FileOrCreate", ""},
		{"FileOrCreate needs the parent", filepath.Join(dir, "no", "new"), "FileOrCreate", "no such file"},
		{"FileOrCreate on a directory", dir, "FileOrCreate", "type"},
		{"File", file, "File", ""},
		{"File on a socket", sock, "File", "type"},
		{"Socket", sock, "Socket", ""},
		{"Socket on a file", file, "Socket", "type"},
		{"CharDevice", "/dev/null", "CharDevice", ""},
		{"CharDevice on a directory", dir, "CharDevice", "type"},
		{"BlockDevice on a character device", "/dev/null", "BlockDevice", "type"},
		{"an unknown type", file, "Pipe", "not a Kubernetes hostPath type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkHostPath(c.path, c.typ)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.wantErr == "type" && !errors.Is(err, ErrHostPathType):
				t.Fatalf("error %v, want ErrHostPathType", err)
			case c.wantErr != "" && c.wantErr != "type" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
	if fi, err := os.Stat(filepath.Join(dir, "new")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("FileOrCreate made %v, %v", fi, err)
	}
}
