package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/distribution/reference"
)

// DefaultNamespace is the containerd namespace gitorch keeps its images
// and containers in unless configured otherwise.
const DefaultNamespace = "gitorch"

// DefaultAddress is the containerd socket of a Debian install.
const DefaultAddress = "/run/containerd/containerd.sock"

// ImportImage reads an image archive (an OCI image layout or a docker save
// archive, as a tar stream) from r into namespace, names each image it
// holds after the reference in the archive, and unpacks them into
// snapshotter ("" for containerd's default) so that a container can start
// from them at once. It returns the names of the imported images.
//
// The archive must name its images: docker archives do (RepoTags), an OCI
// layout does through the org.opencontainers.image.ref.name annotation
// holding a full reference such as example.com/app:1.0. A bare tag ("1.0")
// names nothing and the import fails rather than create an unnamed image.
func ImportImage(ctx context.Context, c *client.Client, namespace, snapshotter string, r io.Reader) ([]string, error) {
	ctx = namespaces.WithNamespace(ctx, namespace)
	var bare []string
	imgs, err := c.Import(ctx, r, client.WithImageRefTranslator(func(name string) string {
		// OCI layouts often hold a bare tag ("latest") in ref.name;
		// taken as a reference it would silently become
		// docker.io/library/latest:latest.
		n, err := reference.ParseDockerRef(name)
		if err != nil || !strings.ContainsAny(name, "/:@") {
			bare = append(bare, name)
			return ""
		}
		return n.String()
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
	for _, im := range imgs {
		img := client.NewImage(c, im)
		if err := img.Unpack(ctx, snapshotter); err != nil {
			return names, fmt.Errorf("unpack %s: %w", im.Name, err)
		}
		names = append(names, im.Name)
	}
	return names, nil
}
