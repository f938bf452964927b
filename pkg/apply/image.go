package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
)

// DefaultNamespace is the containerd namespace gitorch keeps its images
// and containers in unless configured otherwise.
const DefaultNamespace = "gitorch"

// DefaultAddress is the containerd socket of a Debian install.
const DefaultAddress = "/run/containerd/containerd.sock"

// ImportImage reads an image archive (an OCI image layout or a docker save
// archive, as a tar stream) from r into namespace, names each image it
// holds after the reference in the archive, normalized as NormalizeImage
// does for pods (local/app:1 is docker.io/local/app:1, busybox is
// docker.io/library/busybox:latest), and unpacks them into snapshotter ("" for
// containerd's default) so that a container can start from them at once.
// It returns the normalized names of the imported images.
//
// The archive must name its images: docker archives do (RepoTags), an OCI
// layout does through the io.containerd.image.name annotation or the
// org.opencontainers.image.ref.name annotation holding a full reference
// such as example.com/app:1.0. A bare tag ("1.0") names nothing and the
// import fails rather than create an unnamed image.
func ImportImage(ctx context.Context, c *client.Client, namespace, snapshotter string, r io.Reader) ([]string, error) {
	ctx = namespaces.WithNamespace(ctx, namespace)
	var bare []string
	imgs, err := c.Import(ctx, r, client.WithImageRefTranslator(func(name string) string {
		// OCI layouts often hold a bare tag ("latest") in ref.name;
		// taken as a reference it would silently become
		// docker.io/library/latest:latest.
		n, err := NormalizeImage(name)
		if err != nil || !strings.ContainsAny(name, "/:@") {
			bare = append(bare, name)
			return ""
		}
		return n
	}))
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if len(imgs) == 0 {
		if len(bare) > 0 {
			return nil, fmt.Errorf("import: the archive names its images %q, not full references (such as example.com/app:1.0)", bare)
		}
		return nil, errors.New("import: the archive names no image (an OCI layout needs the org.opencontainers.image.ref.name annotation)")
	}
	var names []string
	seen := map[string]bool{}
	for _, im := range imgs {
		// containerd stores the io.containerd.image.name annotation as it
		// is written, where a pod looks for the normalized name.
		name, err := normalizeStored(ctx, c.ImageService(), im)
		if err != nil {
			return names, err
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		img, err := c.GetImage(ctx, name)
		if err != nil {
			return names, fmt.Errorf("import %s: %w", name, err)
		}
		if err := img.Unpack(ctx, snapshotter); err != nil {
			return names, fmt.Errorf("unpack %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}

// normalizeStored renames the imported image im to its normalized name,
// replacing an image of that name, and returns that name.
func normalizeStored(ctx context.Context, store images.Store, im images.Image) (string, error) {
	name, err := NormalizeImage(im.Name)
	if err != nil {
		_ = store.Delete(ctx, im.Name)
		return "", fmt.Errorf("import: the archive names an image %q: not a reference (such as example.com/app:1.0)", im.Name)
	}
	if name == im.Name {
		return name, nil
	}
	renamed := images.Image{Name: name, Labels: im.Labels, Target: im.Target}
	if _, err := store.Update(ctx, renamed, "target", "labels"); errdefs.IsNotFound(err) {
		_, err = store.Create(ctx, renamed)
	}
	if err != nil {
		return "", fmt.Errorf("import: name %s as %s: %w", im.Name, name, err)
	}
	if err := store.Delete(ctx, im.Name); err != nil && !errdefs.IsNotFound(err) {
		return "", fmt.Errorf("import: remove the unnormalized name %s: %w", im.Name, err)
	}
	return name, nil
}

// ImageInfo is an image of gitorch's containerd namespace.
type ImageInfo struct {
	// Name is the image's reference, as pods name it once normalized.
	Name string `json:"name"`
	// Digest is the digest of its manifest or index.
	Digest string `json:"digest"`
	// Size is the size of its content for this platform (compressed
	// layers, config, manifests), as containerd counts it.
	Size int64 `json:"size"`
	// UsedBy lists the containers made from it, running or not, as
	// NAMESPACE/POD/CONTAINER from their gitorch labels (a container
	// gitorch did not label by its containerd ID), sorted. An image is
	// used by a container made from another name of the same content too.
	UsedBy []string `json:"usedBy"`
}

// ListImages lists the images of namespace, sorted by name, with the
// containers that use them.
func ListImages(ctx context.Context, c *client.Client, namespace string) ([]ImageInfo, error) {
	ctx = namespaces.WithNamespace(ctx, namespace)
	ctrs, err := c.ContainerService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	all, err := c.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	byName := map[string]images.Image{}
	for _, img := range all {
		byName[img.Name] = img
	}
	users := map[digest.Digest][]string{}
	for _, ctr := range ctrs {
		img, ok := byName[ctr.Image]
		if !ok {
			continue
		}
		user := ctr.ID
		if pod := ctr.Labels[LabelPod]; pod != "" {
			user = ctr.Labels[LabelPodNamespace] + "/" + pod + "/" + ctr.Labels[LabelContainer]
		}
		users[img.Target.Digest] = append(users[img.Target.Digest], user)
	}
	out := make([]ImageInfo, 0, len(all))
	for _, img := range all {
		size, err := img.Size(ctx, c.ContentStore(), platforms.Default())
		if err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("size of %s: %w", img.Name, err)
		}
		used := slices.Compact(slices.Sorted(slices.Values(users[img.Target.Digest])))
		if used == nil {
			used = []string{}
		}
		out = append(out, ImageInfo{Name: img.Name, Digest: img.Target.Digest.String(), Size: size, UsedBy: used})
	}
	slices.SortFunc(out, func(a, b ImageInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
