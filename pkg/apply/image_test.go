package apply_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

func TestImportImageOCIArchive(t *testing.T) {
	cd := applytest.StartContainerd(t)
	archive := applytest.BusyboxArchive(t)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names, err := apply.ImportImage(ctx, cd.Client, cd.Namespace, cd.Snapshotter, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != applytest.BusyboxRef {
		t.Fatalf("imported %q, want [%s]", names, applytest.BusyboxRef)
	}
	img, err := cd.Client.GetImage(cd.Context(ctx), applytest.BusyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	unpacked, err := img.IsUnpacked(cd.Context(ctx), cd.Snapshotter)
	if err != nil {
		t.Fatal(err)
	}
	if !unpacked {
		t.Fatalf("%s is not unpacked into %s", applytest.BusyboxRef, cd.Snapshotter)
	}
}

func TestImportImageDockerArchive(t *testing.T) {
	cd := applytest.StartContainerd(t)
	img, err := applytest.BusyboxImage(applytest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference("gitorch.test/docker-save:1.0")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarball.Write(ref, img, &buf); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names, err := apply.ImportImage(ctx, cd.Client, cd.Namespace, cd.Snapshotter, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "gitorch.test/docker-save:1.0" {
		t.Fatalf("imported %q", names)
	}
}

func TestImportImageRefusesBareTag(t *testing.T) {
	cd := applytest.StartContainerd(t)
	img, err := applytest.BusyboxImage(applytest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := applytest.WriteOCIArchive(&buf, "latest", img); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = apply.ImportImage(ctx, cd.Client, cd.Namespace, cd.Snapshotter, &buf)
	if err == nil || !strings.Contains(err.Error(), "full references") {
		t.Fatalf("err = %v, want a refusal naming full references", err)
	}
}
