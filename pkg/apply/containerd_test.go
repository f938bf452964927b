package apply_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

// newNode makes a node for the test, with the busybox image.
func newNode(t testing.TB) *applytest.Node { return applytest.NewNode(t, applytest.NodeOptions{}) }

func busybox(name string, script string) apply.ContainerSpec {
	return apply.ContainerSpec{Name: name, Image: applytest.BusyboxRef, Command: []string{"sh", "-c", script}}
}

// waitContainer polls the pod's status until cond holds for the named
// container, failing the test after timeout.
func waitContainer(t *testing.T, rt apply.Runtime, namespace, pod, container string, timeout time.Duration, cond func(apply.ContainerStatus) bool) apply.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last apply.ContainerStatus
	for {
		pods, err := rt.ListPods(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods {
			if p.Namespace == namespace && p.Name == pod {
				if c, ok := p.Container(container); ok {
					last = c
					if cond(c) {
						return c
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s of %s/%s: condition not met within %v; last status %+v", container, namespace, pod, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exited(c apply.ContainerStatus) bool { return c.State == apply.StateExited }

func readLog(t *testing.T, c apply.ContainerStatus) string {
	t.Helper()
	b, err := os.ReadFile(c.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func findPod(t *testing.T, rt apply.Runtime, namespace, name string) (apply.PodStatus, bool) {
	t.Helper()
	pods, err := rt.ListPods(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if p.Namespace == namespace && p.Name == name {
			return p, true
		}
	}
	return apply.PodStatus{}, false
}

func TestPodContainersShareNetworkIPCAndUTS(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	pod := apply.PodSpec{
		Namespace: "default", Name: "web-5d8f-0", Revision: "abc123", TemplateHash: "5d8f",
		Containers: []apply.ContainerSpec{
			busybox("server", `echo "hello from $(hostname) ipc=$(readlink /proc/self/ns/ipc)" > /www/index.html && exec httpd -f -p 8080 -h /www`),
			busybox("client", `i=0; until wget -q -O /tmp/got http://127.0.0.1:8080/; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.1; done; cat /tmp/got; echo "client ipc=$(readlink /proc/self/ns/ipc)"`),
		},
	}
	st, err := n.Runtime.RunPod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Prefix.Contains(st.IP) {
		t.Fatalf("pod IP %v outside %s", st.IP, n.Prefix)
	}
	for _, c := range st.Containers {
		if c.Revision != "abc123" || c.TemplateHash != "5d8f" {
			t.Errorf("container %s labels: revision %q hash %q", c.Name, c.Revision, c.TemplateHash)
		}
	}

	client := waitContainer(t, n.Runtime, "default", "web-5d8f-0", "client", time.Minute, exited)
	out := readLog(t, client)
	if client.ExitCode != 0 {
		t.Fatalf("client exited %d; log:\n%s", client.ExitCode, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "hello from web-5d8f-0 ipc=") {
		t.Fatalf("client log:\n%s", out)
	}
	serverIPC := strings.TrimPrefix(lines[0], "hello from web-5d8f-0 ipc=")
	if clientIPC := strings.TrimPrefix(lines[1], "client ipc="); clientIPC != serverIPC {
		t.Errorf("containers in different IPC namespaces: %s vs %s", serverIPC, clientIPC)
	}

	// The pod's IP answers from the bridge side. The connection is made
	// on the thread inside the test's namespace (http.Client would dial
	// from another goroutine, outside it).
	body, err := applytest.HTTPGetInNetNS(n.NetNS, net.JoinHostPort(st.IP.String(), "8080"), "/", 5*time.Second, 10*time.Second)
	if err != nil {
		t.Fatalf("GET pod IP from the bridge side: %v", err)
	}
	if !strings.HasPrefix(string(body), "hello from web-5d8f-0") {
		t.Fatalf("body %q", body)
	}

	// Stopping the pod removes its containers, veth, IP and directory.
	if err := n.Runtime.StopPod(ctx, "default", "web-5d8f-0", time.Second); err != nil {
		t.Fatal(err)
	}
	if p, ok := findPod(t, n.Runtime, "default", "web-5d8f-0"); ok {
		t.Fatalf("pod still listed after StopPod: %+v", p)
	}
	ctrs, err := n.CD.Client.Containers(n.CD.Context(ctx))
	if err != nil || len(ctrs) != 0 {
		t.Fatalf("containers left in containerd: %d %v", len(ctrs), err)
	}
	if linkExists(t, n.NetNS, apply.HostVeth(pod.Key())) {
		t.Error("veth left after StopPod")
	}
	if _, ok := n.IPAM.Lookup(pod.Namespace + "_" + pod.Name); ok {
		t.Error("IP still allocated after StopPod")
	}
	if entries, _ := os.ReadDir(filepath.Join(n.DataDir, "pods")); len(entries) != 0 {
		t.Errorf("pod directories left: %v", entries)
	}
}

func TestRestartedRuntimeAdoptsRunningPods(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	pod := apply.PodSpec{Namespace: "default", Name: "sleeper", Containers: []apply.ContainerSpec{
		busybox("a", "exec sleep 3600"),
		busybox("b", "exec sleep 3600"),
	}}
	before, err := n.Runtime.RunPod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]uint32{}
	for _, c := range before.Containers {
		if c.State != apply.StateRunning || c.PID == 0 {
			t.Fatalf("container %s not running: %+v", c.Name, c)
		}
		pids[c.Name] = c.PID
	}

	// A new process would have a new client and runtime, and only the
	// data dir and containerd to go on.
	c2, err := client.New(n.CD.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	rt2, _ := n.NewRuntime(t, c2)
	p, ok := findPod(t, rt2, "default", "sleeper")
	if !ok {
		t.Fatal("restarted runtime does not see the pod")
	}
	if p.IP != before.IP {
		t.Errorf("IP after restart %v, before %v", p.IP, before.IP)
	}
	// RunPod on the adopted pod starts nothing.
	after, err := rt2.RunPod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range after.Containers {
		if c.State != apply.StateRunning || c.PID != pids[c.Name] || c.Attempt != 0 {
			t.Errorf("container %s after restart: %+v, want running with PID %d", c.Name, c, pids[c.Name])
		}
	}
	// busybox sleep as PID 1 ignores SIGTERM: the grace period runs out
	// and SIGKILL ends it.
	if err := rt2.StopPod(ctx, "default", "sleeper", 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, ok := findPod(t, n.Runtime, "default", "sleeper"); ok {
		t.Fatal("pod still listed after StopPod")
	}
}

func TestStopContainerGracefully(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	pod := apply.PodSpec{Namespace: "default", Name: "stopper", Containers: []apply.ContainerSpec{
		busybox("polite", `trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done`),
		busybox("stubborn", `exec sleep 3600`),
	}}
	if _, err := n.Runtime.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	waitContainer(t, n.Runtime, "default", "stopper", "polite", 30*time.Second, func(c apply.ContainerStatus) bool {
		b, _ := os.ReadFile(c.LogPath)
		return strings.Contains(string(b), "ready")
	})
	if err := n.Runtime.StopContainer(ctx, "default", "stopper", "polite", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	polite := waitContainer(t, n.Runtime, "default", "stopper", "polite", 10*time.Second, exited)
	if polite.ExitCode != 3 || !strings.Contains(readLog(t, polite), "got TERM") {
		t.Errorf("polite: exit %d, log %q; want 3 after SIGTERM", polite.ExitCode, readLog(t, polite))
	}
	if err := n.Runtime.StopContainer(ctx, "default", "stopper", "stubborn", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	stubborn := waitContainer(t, n.Runtime, "default", "stopper", "stubborn", 10*time.Second, exited)
	if stubborn.ExitCode != 137 {
		t.Errorf("stubborn: exit %d, want 137 (SIGKILL)", stubborn.ExitCode)
	}
	if stubborn.OOMKilled {
		t.Error("stubborn reported OOMKilled")
	}
	if err := n.Runtime.StopPod(ctx, "default", "stopper", 0); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryLimitOOMKilled(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	hog := busybox("hog", `x=$(head -c 268435456 /dev/zero | tr '\0' a); echo survived`)
	hog.Resources = apply.Resources{MemoryLimit: 32 << 20, CPULimitMilli: 500, CPURequestMilli: 100}
	pod := apply.PodSpec{Namespace: "default", Name: "hog", Containers: []apply.ContainerSpec{hog}}
	if _, err := n.Runtime.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	c := waitContainer(t, n.Runtime, "default", "hog", "hog", time.Minute, exited)
	if !c.OOMKilled || c.ExitCode != 137 {
		t.Fatalf("hog: OOMKilled=%v exit %d, log %q; want OOMKilled with 137", c.OOMKilled, c.ExitCode, readLog(t, c))
	}
	if err := n.Runtime.StopPod(ctx, "default", "hog", 0); err != nil {
		t.Fatal(err)
	}
}

func TestStartContainerReplacesExitedOne(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "file"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := apply.ContainerSpec{
		Name:       "job",
		Image:      applytest.BusyboxRef,
		Command:    []string{"sh", "-c"},
		Args:       []string{`echo "$GREETING in $(pwd): $(cat /data/file)"; (echo x > /data/new) 2>/dev/null || echo read-only; exit 7`},
		Env:        []string{"GREETING=hi"},
		WorkingDir: "/tmp",
		Mounts:     []apply.Mount{{Source: hostDir, Destination: "/data", ReadOnly: true}},
	}
	pod := apply.PodSpec{Namespace: "jobs", Name: "once", Containers: []apply.ContainerSpec{c}}
	if _, err := n.Runtime.RunPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	first := waitContainer(t, n.Runtime, "jobs", "once", "job", 30*time.Second, exited)
	if first.ExitCode != 7 || first.Attempt != 0 {
		t.Fatalf("first run: %+v", first)
	}
	if got, want := readLog(t, first), "hi in /tmp: from the host\nread-only\n"; got != want {
		t.Fatalf("log %q, want %q", got, want)
	}
	// RunPod leaves an exited container alone: restarting is the
	// caller's decision.
	st, err := n.Runtime.RunPod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := st.Container("job"); again.State != apply.StateExited || again.Attempt != 0 {
		t.Fatalf("RunPod restarted an exited container: %+v", again)
	}
	second, err := n.Runtime.StartContainer(ctx, pod, "job")
	if err != nil {
		t.Fatal(err)
	}
	if second.Attempt != 1 {
		t.Fatalf("second run attempt %d, want 1", second.Attempt)
	}
	second = waitContainer(t, n.Runtime, "jobs", "once", "job", 30*time.Second, exited)
	if second.Attempt != 1 || second.ExitCode != 7 || second.LogPath == first.LogPath {
		t.Fatalf("second run: %+v", second)
	}
	if err := n.Runtime.StopPod(ctx, "jobs", "once", 0); err != nil {
		t.Fatal(err)
	}
}

func TestRunPodWithoutImage(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	pod := apply.PodSpec{Namespace: "default", Name: "ghost", Containers: []apply.ContainerSpec{
		{Name: "c", Image: "gitorch.test/absent:1", PullPolicy: apply.PullNever},
	}}
	_, err := n.Runtime.RunPod(ctx, pod)
	if !errors.Is(err, apply.ErrImageNotPresent) {
		t.Fatalf("err = %v, want ErrImageNotPresent", err)
	}
	// The half-made pod is listed, so that it can be cleaned up.
	if _, ok := findPod(t, n.Runtime, "default", "ghost"); !ok {
		t.Fatal("pod with a missing image not listed")
	}
	if err := n.Runtime.StopPod(ctx, "default", "ghost", 0); err != nil {
		t.Fatal(err)
	}
}

// An agent that dies while it creates a container can leave the
// container's snapshot prepared without the container: the next create
// of the same container must not fail for ever on "snapshot already
// exists".
func TestStartContainerAfterAnUnfinishedCreate(t *testing.T) {
	n := newNode(t)
	ctx := n.CD.Context(context.Background())
	// What client.NewContainer has done when the process dies: a lease
	// (it expires in a day), and the snapshot prepared under it.
	lctx, _, err := n.CD.Client.WithLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sn := n.CD.Client.SnapshotService(n.CD.Snapshotter)
	if _, err := sn.Prepare(lctx, "default_left_main", ""); err != nil {
		t.Fatal(err)
	}
	pod := apply.PodSpec{Namespace: "default", Name: "left", Containers: []apply.ContainerSpec{busybox("main", "echo started; exec sleep 60")}}
	st, err := n.Runtime.RunPod(ctx, pod)
	if err != nil {
		t.Fatalf("RunPod after an unfinished create: %v", err)
	}
	if c, _ := st.Container("main"); c.State != apply.StateRunning {
		t.Fatalf("main: %+v", c)
	}
	if err := n.Runtime.StopPod(ctx, "default", "left", 0); err != nil {
		t.Fatal(err)
	}
}
