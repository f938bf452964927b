package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

// TestImagesRun builds both images, imports them into a containerd of the
// test's own and runs the guestbook in one pod — a master, a replica
// following it and the frontend, on the pod's loopback — then sets an
// entry through the frontend from the node's side of the pod network,
// reads it back through the replica, and runs the backend's readiness
// check in both backend containers.
func TestImagesRun(t *testing.T) {
	testenv.RequireRoot(t)
	out := t.TempDir()
	if err := run(out, "gitorch.local", "test"); err != nil {
		t.Fatal(err)
	}
	n := applytest.NewNode(t, applytest.NodeOptions{NoImage: true})
	ctx := context.Background()
	for _, p := range programs {
		f, err := os.Open(filepath.Join(out, "guestbook-"+p.name+".tar"))
		if err != nil {
			t.Fatal(err)
		}
		names, err := apply.ImportImage(ctx, n.CD.Client, n.CD.Namespace, n.CD.Snapshotter, f)
		f.Close()
		if want := "gitorch.local/guestbook-" + p.name + ":test"; err != nil || len(names) != 1 || names[0] != want {
			t.Fatalf("import: %v, %v; want %s", names, err, want)
		}
	}
	backend := "gitorch.local/guestbook-backend:test"
	pod := apply.PodSpec{
		Namespace: "default", Name: "guestbook-0", Revision: "r1", TemplateHash: "h",
		Containers: []apply.ContainerSpec{
			{Name: "master", Image: backend},
			{Name: "replica", Image: backend, Args: []string{"-addr", ":6380", "-replica-of", "127.0.0.1:6379"}},
			{Name: "frontend", Image: "gitorch.local/guestbook-frontend:test", Args: []string{"-master", "127.0.0.1:6379", "-replica", "127.0.0.1:6380"}},
		},
	}
	st, err := n.Runtime.RunPod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Runtime.StopPod(ctx, "default", "guestbook-0", time.Second); err != nil {
			t.Error(err)
		}
	})
	addr := net.JoinHostPort(st.IP.String(), "80")

	set, err := poll(func() (map[string]string, error) {
		return getJSON(n.NetNS, addr, "/guestbook.php?cmd=set&key=messages&value=hello")
	}, func(m map[string]string) bool { return m["message"] == "Updated" })
	if err != nil {
		t.Fatalf("set: %v %v\n%s", set, err, logs(t, n, "frontend"))
	}
	got, err := poll(func() (map[string]string, error) {
		return getJSON(n.NetNS, addr, "/guestbook.php?cmd=get&key=messages")
	}, func(m map[string]string) bool { return m["data"] == "hello" })
	if err != nil {
		t.Fatalf("get: %v %v\n%s", got, err, logs(t, n, "replica"))
	}

	for _, c := range []struct{ name, addr string }{{"master", ":6379"}, {"replica", ":6380"}} {
		res, err := n.Runtime.Exec(ctx, "default", "guestbook-0", c.name, []string{"/backend", "-check", "-addr", c.addr}, 10*time.Second)
		if err != nil || res.ExitCode != 0 {
			t.Errorf("check of %s: exit %d, %v: %s", c.name, res.ExitCode, err, res.Output)
		}
	}
}

// poll calls get until ok holds of what it returns, for at most 30 s.
func poll(get func() (map[string]string, error), ok func(map[string]string) bool) (map[string]string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := get()
		if err == nil && ok(m) {
			return m, nil
		}
		if time.Now().After(deadline) {
			return m, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getJSON GETs path of addr from inside the network namespace nsPath
// and decodes the JSON reply.
func getJSON(nsPath, addr, path string) (map[string]string, error) {
	body, err := applytest.HTTPGetInNetNS(nsPath, addr, path, 5*time.Second, 10*time.Second)
	var m map[string]string
	if jerr := json.Unmarshal(body, &m); jerr != nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("GET %s: %w", path, jerr)
	}
	return m, nil
}

func logs(t *testing.T, n *applytest.Node, container string) string {
	p, err := n.Runtime.Pod(context.Background(), "default", "guestbook-0")
	if err != nil {
		return err.Error()
	}
	c, ok := p.Container(container)
	if !ok {
		return "no container " + container
	}
	b, _ := os.ReadFile(c.LogPath)
	return strings.TrimSpace(string(b))
}
