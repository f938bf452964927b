package apply_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

// importVariant imports the busybox image with an extra random layer,
// named ref, so that it is an image of its own.
func importVariant(t *testing.T, n *applytest.Node, ref string) {
	t.Helper()
	base, err := applytest.BusyboxImage(applytest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := random.Layer(4096, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := applytest.WriteOCIArchive(&buf, ref, img); err != nil {
		t.Fatal(err)
	}
	if _, err := apply.ImportImage(context.Background(), n.CD.Client, n.CD.Namespace, n.CD.Snapshotter, &buf); err != nil {
		t.Fatal(err)
	}
}

// usageFalling is a disk usage that starts at start percent and falls
// by 5 points for every image removed from the node's containerd.
func usageFalling(t *testing.T, n *applytest.Node, start int) func() (uint64, uint64, error) {
	ctx := n.CD.Context(context.Background())
	store := n.CD.Client.ImageService()
	count := func() int {
		imgs, err := store.List(ctx)
		if err != nil {
			t.Error(err)
		}
		return len(imgs)
	}
	initial := count()
	return func() (uint64, uint64, error) {
		return uint64(start - 5*(initial-count())), 100, nil
	}
}

func imageNames(t *testing.T, n *applytest.Node) []string {
	t.Helper()
	imgs, err := n.CD.Client.ImageService().List(n.CD.Context(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name)
	}
	slices.Sort(names)
	return names
}

// Above the high threshold, unused images are removed least recently
// used first until usage is below the low one, or none is left to remove;
// the images of containers, running or exited, and those younger than
// MinAge stay.
func TestCollectImages(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	for i := range 4 {
		importVariant(t, n, fmt.Sprintf("gitorch.test/v%d:1", i))
	}
	// A running container of v1 and an exited one of v3 keep them.
	pod := apply.PodSpec{Namespace: "default", Name: "user", Containers: []apply.ContainerSpec{
		busybox("running", "exec sleep 3600"),
		busybox("exited", "true"),
	}}
	pod.Containers[0].Image = "gitorch.test/v1:1"
	pod.Containers[1].Image = "gitorch.test/v3:1"
	if _, err := n.Runtime.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	waitContainer(t, n.Runtime, "default", "user", "exited", 30*time.Second, exited)

	// Usage falls by 5 points with every removal, from 97.
	policy := apply.ImageGCPolicy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: time.Minute, Usage: usageFalling(t, n, 97)}
	// Nothing is old enough yet.
	rep, err := n.Runtime.CollectImages(ctx, policy)
	if err != nil || len(rep.Removed) != 0 || rep.UsedBefore != 97 {
		t.Fatalf("young images removed: %+v, %v", rep, err)
	}
	policy.Now = func() time.Time { return time.Now().Add(time.Hour) }
	rep, err = n.Runtime.CollectImages(ctx, policy)
	if err != nil {
		t.Fatal(err)
	}
	// The busybox image came first, then v0 and v2; usage is still
	// above 80 but the images left are in use.
	want := []string{applytest.BusyboxRef, "gitorch.test/v0:1", "gitorch.test/v2:1"}
	if !slices.Equal(rep.Removed, want) || rep.UsedBefore != 97 || rep.UsedAfter != 82 || rep.Freed <= 0 {
		t.Fatalf("report %+v, want removed %v, usage 97 → 82", rep, want)
	}
	if names := imageNames(t, n); !slices.Equal(names, []string{"gitorch.test/v1:1", "gitorch.test/v3:1"}) {
		t.Fatalf("images left: %v", names)
	}
}

// Removal stops once usage is below the low threshold, and nothing is
// removed below the high one.
func TestCollectImagesStopsBelowLowThreshold(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	for i := range 3 {
		importVariant(t, n, fmt.Sprintf("gitorch.test/v%d:1", i))
	}
	later := func() time.Time { return time.Now().Add(time.Hour) }
	policy := apply.ImageGCPolicy{Now: later, Usage: func() (uint64, uint64, error) { return 84, 100, nil }}
	if rep, err := n.Runtime.CollectImages(ctx, policy); err != nil || len(rep.Removed) != 0 || rep.UsedAfter != 84 {
		t.Fatalf("collected below the default threshold of 85%%: %+v, %v", rep, err)
	}
	// 87 → 82 → 77: two of the four images go.
	policy.Usage = usageFalling(t, n, 87)
	rep, err := n.Runtime.CollectImages(ctx, policy)
	want := []string{applytest.BusyboxRef, "gitorch.test/v0:1"}
	if err != nil || !slices.Equal(rep.Removed, want) || rep.UsedAfter != 77 {
		t.Fatalf("report %+v, %v; want removed %v, usage 87 → 77", rep, err, want)
	}
}

// The order is by last use, which CollectImages records on the images
// containers use: an image a pod used until lately goes after images
// imported later but never used.
func TestCollectImagesLeastRecentlyUsedFirst(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	for i := range 3 {
		importVariant(t, n, fmt.Sprintf("gitorch.test/v%d:1", i))
	}
	pod := apply.PodSpec{Namespace: "default", Name: "user", Containers: []apply.ContainerSpec{busybox("c", "exec sleep 3600")}}
	pod.Containers[0].Image = "gitorch.test/v0:1"
	if _, err := n.Runtime.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	clock := time.Now().Add(time.Hour)
	policy := apply.ImageGCPolicy{
		MinAge: time.Minute,
		Now:    func() time.Time { return clock },
		Usage:  func() (uint64, uint64, error) { return 50, 100, nil },
	}
	// Below the threshold nothing goes, but v0's use is recorded.
	if rep, err := n.Runtime.CollectImages(ctx, policy); err != nil || len(rep.Removed) != 0 {
		t.Fatalf("collected below the threshold: %+v, %v", rep, err)
	}
	v0, err := n.CD.Client.ImageService().Get(n.CD.Context(ctx), "gitorch.test/v0:1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v0.Labels[apply.LabelLastUsed], clock.UTC().Format(time.RFC3339Nano); got != want {
		t.Fatalf("v0 last used %q, want %q", got, want)
	}
	if err := n.Runtime.StopPod(ctx, "default", "user", 0); err != nil {
		t.Fatal(err)
	}

	// An hour later, usage 97 % falls by 5 with every removal and every
	// image goes: v0, imported first but used last, goes last.
	clock = clock.Add(time.Hour)
	policy.Usage = usageFalling(t, n, 97)
	rep, err := n.Runtime.CollectImages(ctx, policy)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{applytest.BusyboxRef, "gitorch.test/v1:1", "gitorch.test/v2:1", "gitorch.test/v0:1"}
	if !slices.Equal(rep.Removed, want) || rep.UsedBefore != 97 || rep.UsedAfter != 77 {
		t.Fatalf("report %+v, want removed %v, usage 97 → 77", rep, want)
	}
	if names := imageNames(t, n); len(names) != 0 {
		t.Fatalf("images left: %v", names)
	}
	// Their content and snapshots are gone by the time CollectImages
	// returns.
	cctx := n.CD.Context(ctx)
	var blobs, snaps int
	if err := n.CD.Client.ContentStore().Walk(cctx, func(content.Info) error { blobs++; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := n.CD.Client.SnapshotService(n.CD.Snapshotter).Walk(cctx, func(context.Context, snapshots.Info) error { snaps++; return nil }); err != nil {
		t.Fatal(err)
	}
	if blobs != 0 || snaps != 0 {
		t.Fatalf("%d blobs and %d snapshots left", blobs, snaps)
	}
}
