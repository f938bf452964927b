// Command guestbook-images builds the guestbook's two programs
// (examples/guestbook-app/frontend and backend) as static Go binaries and
// writes each as a one-layer OCI image archive, for nodes without registry
// access:
//
//	go run ./scripts/guestbook-images -o DIR
//	gitorch image import DIR/guestbook-frontend.tar
//	gitorch image import DIR/guestbook-backend.tar
//
// The images are gitorch.local/guestbook-frontend:1 and
// gitorch.local/guestbook-backend:1 (change the tag with -tag). Each holds
// its binary at /, /etc/passwd and /etc/group, and an empty /tmp; the
// binary is the entrypoint. Built from the same sources with the same Go,
// an image has the same digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

// program is one image: a main package and what its image says.
type program struct {
	name string // the binary, and guestbook-<name> the image
	pkg  string
	port string // exposed port
}

var programs = []program{
	{"frontend", "github.com/gitorch/gitorch/examples/guestbook-app/frontend", "80/tcp"},
	{"backend", "github.com/gitorch/gitorch/examples/guestbook-app/backend", "6379/tcp"},
}

// stamp is the time of every file and of the image, so that a build is
// reproducible.
var stamp = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	out := flag.String("o", ".", "directory to write guestbook-frontend.tar and guestbook-backend.tar to")
	registry := flag.String("registry", "gitorch.local", "registry part of the images' names")
	tag := flag.String("tag", "1", "tag of the images")
	flag.Parse()
	if err := run(*out, *registry, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "guestbook-images:", err)
		os.Exit(1)
	}
}

func run(out, registry, tag string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "guestbook-images")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, p := range programs {
		bin := filepath.Join(tmp, p.name)
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", bin, p.pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build %s: %w", p.pkg, err)
		}
		img, err := image(bin, p)
		if err != nil {
			return fmt.Errorf("image of %s: %w", p.name, err)
		}
		ref := fmt.Sprintf("%s/guestbook-%s:%s", registry, p.name, tag)
		path := filepath.Join(out, "guestbook-"+p.name+".tar")
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := applytest.WriteOCIArchive(f, ref, img); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		d, _ := img.Digest()
		fmt.Printf("%s  %s  %s\n", path, ref, d)
	}
	return nil
}

// image makes the one-layer image of the binary at bin.
func image(bin string, p program) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.ModTime = stamp
		h.Size = int64(len(body))
		_ = tw.WriteHeader(h)
		_, _ = tw.Write(body)
	}
	for _, d := range []string{"etc", "tmp"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644}, []byte("root:x:0:0:root:/:/"+p.name+"\nnobody:x:65534:65534:nobody:/:/"+p.name+"\n"))
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644}, []byte("root:x:0:\nnogroup:x:65534:\n"))
	add(&tar.Header{Typeflag: tar.TypeReg, Name: p.name, Mode: 0o755}, data)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return applytest.OneLayerImage(buf.Bytes(), stamp, func(c *v1.Config) {
		c.Entrypoint = []string{"/" + p.name}
		c.Env = []string{"PATH=/"}
		c.ExposedPorts = map[string]struct{}{p.port: {}}
	})
}
