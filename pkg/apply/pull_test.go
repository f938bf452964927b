package apply_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

// TestPullFromRegistryWithAuth pushes the busybox image to a local
// registry with htpasswd auth and pulls it through containerd with
// credentials from a docker config.json, then runs a pod from it.
func TestPullFromRegistryWithAuth(t *testing.T) {
	reg := applytest.StartRegistry(t, "gitorch", "pull-secret")
	n := newNode(t)
	img, err := applytest.BusyboxImage(applytest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/team/busybox:1.0"
	pushRef, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(pushRef, img, remote.WithAuth(&authn.Basic{Username: reg.User, Password: reg.Password})); err != nil {
		t.Fatalf("push: %v", err)
	}

	cfgPath := filepath.Join(t.TempDir(), "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`{"auths":{"http://%s":{"auth":%q}}}`, reg.Host, auth)), 0o600); err != nil {
		t.Fatal(err)
	}
	auths, err := apply.LoadDockerConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Wrong password: the pull fails as ErrImagePull.
	bad := apply.Registries{Auths: map[string]apply.Credentials{reg.Host: {Username: reg.User, Password: "wrong"}}, PlainHTTP: []string{reg.Host}}
	if _, err := apply.EnsureImage(ctx, n.CD.Client, n.CD.Namespace, n.CD.Snapshotter, ref, apply.PullIfNotPresent, bad); !errors.Is(err, apply.ErrImagePull) {
		t.Fatalf("pull with a wrong password: err = %v, want ErrImagePull", err)
	}
	// Never: absent stays absent.
	if _, err := apply.EnsureImage(ctx, n.CD.Client, n.CD.Namespace, n.CD.Snapshotter, ref, apply.PullNever, bad); !errors.Is(err, apply.ErrImageNeverPull) {
		t.Fatalf("policy Never: err = %v, want ErrImageNeverPull", err)
	}

	good := apply.Registries{Auths: auths, PlainHTTP: []string{reg.Host}}
	cfg := n.CD.RuntimeConfig(t.TempDir())
	cfg.Registries = good
	rt, err := apply.NewContainerd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pod := apply.PodSpec{Namespace: "default", Name: "pulled", Containers: []apply.ContainerSpec{{
		Name: "c", Image: ref, PullPolicy: apply.PullAlways, Command: []string{"echo", "pulled and running"},
	}}}
	if _, err := rt.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	c := waitContainer(t, rt, "default", "pulled", "c", 30*time.Second, exited)
	if c.ExitCode != 0 || readLog(t, c) != "pulled and running\n" {
		t.Fatalf("exit %d, log %q", c.ExitCode, readLog(t, c))
	}
	if err := rt.StopPod(ctx, "default", "pulled", 0); err != nil {
		t.Fatal(err)
	}
	// Present now: Never and IfNotPresent need no registry at all.
	for _, p := range []apply.PullPolicy{apply.PullNever, apply.PullIfNotPresent} {
		if _, err := apply.EnsureImage(ctx, n.CD.Client, n.CD.Namespace, n.CD.Snapshotter, ref, p, apply.Registries{}); err != nil {
			t.Errorf("policy %s with the image present: %v", p, err)
		}
	}
}

func TestLoadDockerConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	cfg := `{"auths":{
		"https://index.docker.io/v1/":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("hub:pw:with:colons")) + `"},
		"registry.example.com:5000":{"username":"u","password":"p"}}}`
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := apply.LoadDockerConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c := got["docker.io"]; c.Username != "hub" || c.Password != "pw:with:colons" {
		t.Errorf("docker.io = %+v", c)
	}
	if c := got["registry.example.com:5000"]; c.Username != "u" || c.Password != "p" {
		t.Errorf("registry.example.com:5000 = %+v", c)
	}
}
