package applytest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gitorch/gitorch/internal/testenv"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// BusyboxRef is the name tests give the busybox image.
const BusyboxRef = "gitorch.test/busybox:latest"

// fixedTime stamps every file of the image, so that building it twice
// from the same busybox gives the same digest.
var fixedTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// BusyboxImage builds a one-layer OCI image holding the static busybox
// binary at busybox (a path on this machine) as /bin/busybox, a symlink in
// /bin for each of its applets, /etc/passwd and /etc/group with root and
// nobody, and an empty /tmp and /www. Its command is sh, PATH=/bin.
func BusyboxImage(busybox string) (v1.Image, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w (is it busybox?)", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: fixedTime})
	}
	file := func(name string, mode int64, data []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: fixedTime})
		_, _ = tw.Write(data)
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "root", "www"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	file("bin/busybox", 0o755, bin)
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: fixedTime})
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return OneLayerImage(buf.Bytes(), fixedTime, func(c *v1.Config) {
		c.Env = []string{"PATH=/bin"}
		c.Cmd = []string{"sh"}
	})
}

// OneLayerImage is the linux OCI image of one layer, the tar stream
// layer, created at created (a fixed time gives the same digest for the
// same layer), for this machine's architecture; config sets its runtime
// configuration (entrypoint, command, environment, ports).
func OneLayerImage(layer []byte, created time.Time, config func(*v1.Config)) (v1.Image, error) {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layer)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.OCILayer})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: created}
	if config != nil {
		config(&cf.Config)
	}
	return mutate.ConfigFile(img, cf)
}

// WriteOCIArchive writes img as an OCI image layout in a tar stream, named
// ref in index.json by the OCI ref.name annotation.
func WriteOCIArchive(w io.Writer, ref string, img v1.Image) error {
	return WriteOCIArchiveAnnotated(w, map[string]string{specs.AnnotationRefName: ref}, img)
}

// WriteOCIArchiveAnnotated writes img as an OCI image layout in a tar
// stream, with annotations on its entry in index.json: the names
// (org.opencontainers.image.ref.name, io.containerd.image.name) build
// tools give it.
func WriteOCIArchiveAnnotated(w io.Writer, annotations map[string]string, img v1.Image) error {
	tw := tar.NewWriter(w)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: fixedTime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	blob := func(d v1.Hash, data []byte) error {
		return add(filepath.Join("blobs", d.Algorithm, d.Hex), data)
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := blob(d, data); err != nil {
			return err
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	if err := blob(cfgName, cfg); err != nil {
		return err
	}
	man, err := img.RawManifest()
	if err != nil {
		return err
	}
	manDigest, err := img.Digest()
	if err != nil {
		return err
	}
	if err := blob(manDigest, man); err != nil {
		return err
	}
	index := specs.Index{
		MediaType: specs.MediaTypeImageIndex,
		Manifests: []specs.Descriptor{{
			MediaType:   specs.MediaTypeImageManifest,
			Digest:      digestOf(manDigest),
			Size:        int64(len(man)),
			Annotations: annotations,
			Platform:    &specs.Platform{OS: "linux", Architecture: runtime.GOARCH},
		}},
	}
	index.SchemaVersion = 2
	ib, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := add("index.json", ib); err != nil {
		return err
	}
	return tw.Close()
}

// BusyboxArchive builds the busybox image from Debian's busybox-static and
// writes it as an OCI archive named BusyboxRef in the test's temporary
// directory, returning the archive's path.
func BusyboxArchive(t testing.TB) string {
	t.Helper()
	_, err := os.Stat(BusyboxPath)
	testenv.Require(t, err == nil, BusyboxPath+" not found (Debian package busybox-static)")
	img, err := BusyboxImage(BusyboxPath)
	if err != nil {
		t.Fatalf("build busybox image: %v", err)
	}
	p := filepath.Join(t.TempDir(), "busybox.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteOCIArchive(f, BusyboxRef, img); err != nil {
		f.Close()
		t.Fatalf("write OCI archive: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func digestOf(h v1.Hash) digest.Digest { return digest.Digest(h.String()) }
