package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

func TestImageImportCommand(t *testing.T) {
	cd := applytest.StartContainerd(t)
	archive := applytest.BusyboxArchive(t)
	var stdout, stderr bytes.Buffer
	code := run([]string{"image", "import",
		"--containerd-address", cd.Address,
		"--containerd-namespace", cd.Namespace,
		"--snapshotter", cd.Snapshotter,
		archive}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	if want := "imported " + applytest.BusyboxRef + "\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
	img, err := cd.Client.GetImage(cd.Context(context.Background()), applytest.BusyboxRef)
	if err != nil {
		t.Fatalf("image not in containerd after import: %v", err)
	}
	if ok, err := img.IsUnpacked(cd.Context(context.Background()), cd.Snapshotter); err != nil || !ok {
		t.Errorf("image not unpacked: %v %v", ok, err)
	}
}

func TestImageImportNeedsOneArchive(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"image", "import"}, &stdout, &stderr)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, stderr.String())
	}
	if !strings.Contains(stderr.String(), "one archive") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

// TestImageListCommand imports an archive that names its image as a build
// tool does (local/busybox:1 in io.containerd.image.name) and lists it
// under the name a pod finds it by, with the container using it.
func TestImageListCommand(t *testing.T) {
	cd := applytest.StartContainerd(t)
	img, err := applytest.BusyboxImage(applytest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	var buf bytes.Buffer
	if err := applytest.WriteOCIArchiveAnnotated(&buf, map[string]string{"io.containerd.image.name": "local/busybox:1"}, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(archive, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	gitorch := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append(args, "--containerd-address", cd.Address, "--containerd-namespace", cd.Namespace)
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("gitorch %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	if out := gitorch("image", "import", "--snapshotter", cd.Snapshotter, archive); out != "imported docker.io/local/busybox:1\n" {
		t.Errorf("import printed %q", out)
	}
	ctx := cd.Context(context.Background())
	ctr, err := cd.Client.NewContainer(ctx, "web-0-nginx", client.WithImageName("docker.io/local/busybox:1"), client.WithNewSpec(),
		client.WithContainerLabels(map[string]string{apply.LabelPodNamespace: "default", apply.LabelPod: "web-0", apply.LabelContainer: "nginx"}))
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Delete(cd.Context(context.Background()))

	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(gitorch("image", "ls")), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^NAME\s+DIGEST\s+SIZE\s+IN USE BY$`).MatchString(lines[0]) {
		t.Fatalf("image ls:\n%s", strings.Join(lines, "\n"))
	}
	row := regexp.MustCompile(`^docker\.io/local/busybox:1\s+` + regexp.QuoteMeta(d.String()[:19]) + `\s+[0-9.]+[kM]?B\s+default/web-0/nginx$`)
	if !row.MatchString(lines[1]) {
		t.Errorf("image ls row %q does not match %s", lines[1], row)
	}
	var infos []apply.ImageInfo
	if err := json.Unmarshal([]byte(gitorch("image", "ls", "-o", "json")), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Name != "docker.io/local/busybox:1" || infos[0].Digest != d.String() || infos[0].Size <= 0 ||
		len(infos[0].UsedBy) != 1 || infos[0].UsedBy[0] != "default/web-0/nginx" {
		t.Errorf("image ls -o json: %+v", infos)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 1234: "1.23kB", 999_499: "999kB", 999_500: "1MB", 4_200_000: "4.2MB", 12_345_678_901: "12.3GB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
