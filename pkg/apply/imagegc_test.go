package apply_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

// importVariant imports the busybox image with an extra random layer,
// named ref, so that it is an image of its own.
func importVariant(t *testing.T, n *node, ref string) {
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
	if _, err := apply.ImportImage(context.Background(), n.cd.Client, n.cd.Namespace, n.cd.Snapshotter, &buf); err != nil {
		t.Fatal(err)
	}
}

// Above the high threshold, unused images are removed oldest first until
// usage is below the low one; an image a container uses, and one younger
// than MinAge, stay.
func TestCollectImages(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	for i := range 4 {
		importVariant(t, n, fmt.Sprintf("gitorch.test/v%d:1", i))
	}
	// A pod of v1 keeps v1.
	pod := apply.PodSpec{Namespace: "default", Name: "user", Containers: []apply.ContainerSpec{busybox("c", "exec sleep 3600")}}
	pod.Containers[0].Image = "gitorch.test/v1:1"
	if _, err := n.rt.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}

	// Usage falls by 5 points with every removal: 92 → 87 → 82 → 77.
	var used atomic.Int64
	used.Store(92)
	usage := func() (uint64, uint64, error) { return uint64(used.Load()), 100, nil }
	store := n.cd.Client.ImageService()
	before, _ := store.List(n.cd.Context(ctx))
	counted := len(before)
	policy := apply.ImageGCPolicy{
		HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: time.Minute,
		Usage: func() (uint64, uint64, error) {
			imgs, _ := store.List(n.cd.Context(ctx))
			used.Add(int64(5 * (len(imgs) - counted)))
			counted = len(imgs)
			return usage()
		},
	}

	// Nothing is old enough yet.
	rep, err := n.rt.CollectImages(ctx, policy)
	if err != nil || len(rep.Removed) != 0 {
		t.Fatalf("young images removed: %+v, %v", rep, err)
	}
	policy.Now = func() time.Time { return time.Now().Add(time.Hour) }
	rep, err = n.rt.CollectImages(ctx, policy)
	if err != nil {
		t.Fatal(err)
	}
	// The busybox image came first, then v0, v2 (v1 is in use); usage
	// is below 80 after three removals, so v3 stays.
	want := []string{applytest.BusyboxRef, "gitorch.test/v0:1", "gitorch.test/v2:1"}
	if !slices.Equal(rep.Removed, want) || rep.UsedBefore != 92 || rep.UsedAfter != 77 || rep.Freed <= 0 {
		t.Fatalf("report %+v, want removed %v, usage 92 → 77", rep, want)
	}
	left, _ := store.List(n.cd.Context(ctx))
	var names []string
	for _, img := range left {
		names = append(names, img.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"gitorch.test/v1:1", "gitorch.test/v3:1"}) {
		t.Fatalf("images left: %v", names)
	}
	// Below the high threshold nothing happens.
	used.Store(50)
	if rep, err := n.rt.CollectImages(ctx, policy); err != nil || len(rep.Removed) != 0 {
		t.Fatalf("collected below the threshold: %+v, %v", rep, err)
	}
}
