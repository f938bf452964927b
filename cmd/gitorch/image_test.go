package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

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
