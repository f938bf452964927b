package apply_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
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

// TestImportImageNormalizesNames imports archives that name their image
// as build tools do, in either annotation, without the registry: the image
// is stored and reported under the normalized name a pod's image: looks
// for, so a pod with imagePullPolicy Never finds it.
func TestImportImageNormalizesNames(t *testing.T) {
	cd := applytest.StartContainerd(t)
	img, err := applytest.BusyboxImage(applytest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		annotations map[string]string
		podImage    string // as a manifest names it
		want        string
	}{
		{map[string]string{"io.containerd.image.name": "local/busybox:1"}, "local/busybox:1", "docker.io/local/busybox:1"},
		{map[string]string{"io.containerd.image.name": "busybox:2", "org.opencontainers.image.ref.name": "2"}, "busybox:2", "docker.io/library/busybox:2"},
		{map[string]string{"org.opencontainers.image.ref.name": "local/busybox:3"}, "local/busybox:3", "docker.io/local/busybox:3"},
		{map[string]string{"io.containerd.image.name": "gitorch.test/busybox:4"}, "gitorch.test/busybox:4", "gitorch.test/busybox:4"},
	} {
		var buf bytes.Buffer
		if err := applytest.WriteOCIArchiveAnnotated(&buf, tc.annotations, img); err != nil {
			t.Fatal(err)
		}
		names, err := apply.ImportImage(ctx, cd.Client, cd.Namespace, cd.Snapshotter, &buf)
		if err != nil {
			t.Fatalf("%v: %v", tc.annotations, err)
		}
		if len(names) != 1 || names[0] != tc.want {
			t.Errorf("%v: imported %q, want [%s]", tc.annotations, names, tc.want)
		}
		ref, err := apply.NormalizeImage(tc.podImage)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := apply.EnsureImage(ctx, cd.Client, cd.Namespace, cd.Snapshotter, ref, apply.PullNever, apply.Registries{}); err != nil {
			t.Errorf("a pod's image %s after the import: %v", tc.podImage, err)
		}
	}
	// Only normalized names are left in the store.
	infos, err := apply.ListImages(ctx, cd.Client, cd.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, im := range infos {
		stored = append(stored, im.Name)
	}
	want := []string{"docker.io/library/busybox:2", "docker.io/local/busybox:1", "docker.io/local/busybox:3", "gitorch.test/busybox:4"}
	if strings.Join(stored, " ") != strings.Join(want, " ") {
		t.Errorf("stored %q, want %q", stored, want)
	}
}

// TestListImages lists imported images with their digest, size and the
// containers made from them, by their gitorch labels.
func TestListImages(t *testing.T) {
	cd := applytest.StartContainerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := os.Open(applytest.BusyboxArchive(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := apply.ImportImage(ctx, cd.Client, cd.Namespace, cd.Snapshotter, f); err != nil {
		t.Fatal(err)
	}
	img, err := applytest.BusyboxImage(applytest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	// A second name of the same content, used by nothing by name.
	var buf bytes.Buffer
	if err := applytest.WriteOCIArchive(&buf, "gitorch.test/other:1", img); err != nil {
		t.Fatal(err)
	}
	if _, err := apply.ImportImage(ctx, cd.Client, cd.Namespace, cd.Snapshotter, &buf); err != nil {
		t.Fatal(err)
	}
	nctx := cd.Context(ctx)
	for _, c := range []struct{ id, ns, pod, container string }{
		{"web-1", "default", "web-0", "nginx"},
		{"web-2", "default", "web-0", "nginx"}, // a restarted instance
		{"job-1", "batch", "job-x", "main"},
		{"foreign", "", "", ""},
	} {
		labels := map[string]string{}
		if c.pod != "" {
			labels = map[string]string{apply.LabelPodNamespace: c.ns, apply.LabelPod: c.pod, apply.LabelContainer: c.container}
		}
		ctr, err := cd.Client.NewContainer(nctx, c.id, client.WithImageName(applytest.BusyboxRef), client.WithContainerLabels(labels), client.WithNewSpec())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ctr.Delete(cd.Context(context.Background())) })
	}
	infos, err := apply.ListImages(ctx, cd.Client, cd.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("listed %+v, want 2 images", infos)
	}
	wantDigest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	wantUsers := []string{"batch/job-x/main", "default/web-0/nginx", "foreign"}
	for i, name := range []string{applytest.BusyboxRef, "gitorch.test/other:1"} {
		im := infos[i]
		if im.Name != name || im.Digest != wantDigest.String() || im.Size <= 0 {
			t.Errorf("image %d = %s %s %d, want %s %s and a size", i, im.Name, im.Digest, im.Size, name, wantDigest)
		}
		if strings.Join(im.UsedBy, " ") != strings.Join(wantUsers, " ") {
			t.Errorf("%s used by %q, want %q", im.Name, im.UsedBy, wantUsers)
		}
	}
}
