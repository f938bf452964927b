package apply

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// PullPolicy says when to pull an image, as imagePullPolicy does.
type PullPolicy string

// The pull policies. The zero value is IfNotPresent.
const (
	PullAlways       PullPolicy = "Always"
	PullIfNotPresent PullPolicy = "IfNotPresent"
	PullNever        PullPolicy = "Never"
)

// Errors of EnsureImage, for the pod's status reason.
var (
	// ErrImagePull: the pull failed (Kubernetes reason ErrImagePull;
	// retried with back-off, ImagePullBackOff, by the caller).
	ErrImagePull = errors.New("ErrImagePull")
	// ErrImageNeverPull: the policy is Never and the image is absent.
	ErrImageNeverPull = errors.New("ErrImageNeverPull")
)

// Credentials for a registry.
type Credentials struct {
	Username string
	Password string
}

// Registries configures pulls.
type Registries struct {
	// Auths maps a registry host (host or host:port; "docker.io" for
	// Docker Hub) to its credentials.
	Auths map[string]Credentials
	// PlainHTTP lists registry hosts reached over plain HTTP rather
	// than HTTPS (local registries). localhost and 127.0.0.1 are never
	// assumed: list them too.
	PlainHTTP []string
}

// LoadDockerConfig reads the "auths" of a docker config.json file: per
// registry, either "auth" (base64 of user:password) or "username" and
// "password". Keys may be URLs (https://index.docker.io/v1/ is Docker
// Hub); they are reduced to their host.
func LoadDockerConfig(path string) (map[string]Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]Credentials{}
	for key, a := range cfg.Auths {
		c := Credentials{Username: a.Username, Password: a.Password}
		if a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("%s: auths[%q].auth: %w", path, key, err)
			}
			u, p, ok := strings.Cut(string(dec), ":")
			if !ok {
				return nil, fmt.Errorf("%s: auths[%q].auth is not user:password", path, key)
			}
			c = Credentials{Username: u, Password: p}
		}
		out[registryHost(key)] = c
	}
	return out, nil
}

// registryHost reduces a docker config key to a host.
func registryHost(key string) string {
	h := key
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return h
}

func (r Registries) resolverHosts() docker.RegistryHosts {
	creds := func(host string) (string, string, error) {
		if c, ok := r.Auths[registryHost(host)]; ok {
			return c.Username, c.Password, nil
		}
		return "", "", nil
	}
	plain := func(host string) (bool, error) { return slices.Contains(r.PlainHTTP, host), nil }
	return docker.ConfigureDefaultRegistries(
		docker.WithPlainHTTP(plain),
		docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(creds))),
	)
}

// EnsureImage makes image (a full reference, see NormalizeImage) present
// and unpacked in namespace according to policy, pulling it with the
// credentials and plain-HTTP hosts of reg.
func EnsureImage(ctx context.Context, c *client.Client, namespace, snapshotter, image string, policy PullPolicy, reg Registries) (client.Image, error) {
	ctx = namespaces.WithNamespace(ctx, namespace)
	if policy == "" {
		policy = PullIfNotPresent
	}
	img, err := c.GetImage(ctx, image)
	switch {
	case err == nil && policy != PullAlways:
		if ok, err := img.IsUnpacked(ctx, snapshotter); err != nil {
			return nil, err
		} else if !ok {
			if err := img.Unpack(ctx, snapshotter); err != nil {
				return nil, fmt.Errorf("unpack %s: %w", image, err)
			}
		}
		return img, nil
	case err != nil && !errdefs.IsNotFound(err):
		return nil, err
	case err != nil && policy == PullNever:
		return nil, fmt.Errorf("%w: %s is not present and imagePullPolicy is Never (import it with 'gitorch image import'): %w", ErrImageNeverPull, image, ErrImageNotPresent)
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: reg.resolverHosts()})
	opts := []client.RemoteOpt{client.WithResolver(resolver), client.WithPullUnpack}
	if snapshotter != "" {
		opts = append(opts, client.WithPullSnapshotter(snapshotter))
	}
	img, err = c.Pull(ctx, image, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: pull %s: %w", ErrImagePull, image, err)
	}
	return img, nil
}
