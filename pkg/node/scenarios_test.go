package node_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/plan"
)

// testLogger sends the agent's log to the test's, shown when it fails or
// with -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

const webApp = `apiVersion: v1
kind: ConfigMap
metadata:
  name: web-content
data:
  index.html: "hello from the configMap"
  greeting: "good day"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      initContainers:
      - name: prepare
        image: gitorch.test/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "echo prepared-by-init > /work/init.txt"]
        volumeMounts:
        - {name: work, mountPath: /work}
      containers:
      - name: server
        image: gitorch.test/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
        ports:
        - {name: http, containerPort: 8080}
        volumeMounts:
        - {name: content, mountPath: /www}
        readinessProbe:
          tcpSocket: {port: http}
          periodSeconds: 1
      - name: client
        image: gitorch.test/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "cat /work/init.txt; echo greeting=$GREETING pod=$POD_NAME; while true; do wget -q -O - http://127.0.0.1:8080/ && echo; sleep 1; done"]
        env:
        - name: GREETING
          valueFrom:
            configMapKeyRef: {name: web-content, key: greeting}
        - name: POD_NAME
          valueFrom:
            fieldRef: {fieldPath: metadata.name}
        volumeMounts:
        - {name: work, mountPath: /work}
      volumes:
      - name: content
        configMap: {name: web-content}
      - name: work
        emptyDir: {}
`

// findPod returns the name of the first pod of the node whose name starts
// with prefix.
func findPod(t *testing.T, a *agent, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, p := range a.Status().Pods {
			if strings.HasPrefix(p.Name, prefix) {
				return p.Name
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pod %s* within %v: %+v", prefix, timeout, a.Status().Pods)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The agent runs a Deployment from a commit: the init container runs
// first, the two containers of the pod talk over localhost, the
// environment and the configMap volume hold what the manifests say, the
// pod is reachable on its IP, and readiness follows the probe.
func TestAgentRunsACommittedDeployment(t *testing.T) {
	n := newTestNode(t)
	a := n.start(t, nil)
	sha := a.apply(t, n, "web", map[string]string{"web.yaml": webApp})
	name := findPod(t, a, "web-", 30*time.Second)
	p := a.waitPod(t, "default", name, time.Minute, "running and ready", runningReady)
	if p.Revision != sha || p.Workload != "Deployment/web" || p.Node != "n1" || p.IP == "" {
		t.Fatalf("status %+v", p)
	}
	if r, total := p.ReadyCount(); r != 2 || total != 2 {
		t.Fatalf("ready %d/%d", r, total)
	}
	if c := container(p, "prepare"); !c.Init || c.State != plan.StateTerminated || c.Reason != plan.ReasonCompleted {
		t.Fatalf("init container %+v", c)
	}
	log := n.waitLog(t, "default", name, "client", "hello from the configMap", 30*time.Second)
	for _, want := range []string{"prepared-by-init", "greeting=good day pod=" + name} {
		if !strings.Contains(log, want) {
			t.Errorf("client log lacks %q:\n%s", want, log)
		}
	}
	body, err := dialPod(t, n.NetNS, p.IP, 8080)
	if err != nil || !strings.Contains(body, "hello from the configMap") {
		t.Fatalf("GET the pod IP from the bridge: %q, %v", body, err)
	}

	// A new revision that only changes the configMap rewrites the file in
	// the running pod, restarting nothing.
	before := pids(p)
	a.apply(t, n, "new content", map[string]string{"web.yaml": strings.Replace(webApp, "hello from the configMap", "second edition", 1)})
	n.waitLog(t, "default", name, "client", "second edition", 30*time.Second)
	p, _ = a.Pod("default", name)
	for c, pid := range before {
		if c != "prepare" && pids(p)[c] != pid {
			t.Errorf("container %s restarted by a configMap change: pid %d → %d", c, pid, pids(p)[c])
		}
	}
}

// A container that keeps failing is restarted with growing back-off
// (1 s, 2 s, 4 s with the test's settings) and shows CrashLoopBackOff.
func TestAgentCrashLoopBackOff(t *testing.T) {
	n := newTestNode(t)
	a := n.start(t, nil)
	a.apply(t, n, "crash", map[string]string{"crash.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: crash
spec:
  containers:
  - name: app
    image: gitorch.test/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo failing; exit 3"]
`})
	a.waitPod(t, "default", "crash", time.Minute, "in CrashLoopBackOff", func(p plan.PodStatus) bool {
		return p.Reason == plan.ReasonCrashLoopBackOff
	})
	// Record the start time of each instance as the restarts happen.
	starts := map[int]time.Time{}
	deadline := time.Now().Add(time.Minute)
	for len(starts) < 4 && time.Now().Before(deadline) {
		if pod, err := n.Runtime.Pod(context.Background(), "default", "crash"); err == nil {
			if c, ok := pod.Container("app"); ok {
				if _, seen := starts[c.Attempt]; !seen {
					starts[c.Attempt] = c.CreatedAt
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var attempts []int
	for k := range starts {
		attempts = append(attempts, k)
	}
	if len(starts) < 4 {
		t.Fatalf("saw attempts %v within a minute, want 4 consecutive", attempts)
	}
	p := a.waitPod(t, "default", "crash", 30*time.Second, "restarted three times", func(p plan.PodStatus) bool {
		return container(p, "app").Restarts >= 3
	})
	c := container(p, "app")
	if c.Restarts < 3 || c.LastTermination == nil || c.LastTermination.ExitCode != 3 || c.LastTermination.Reason != plan.ReasonError {
		t.Fatalf("container status %+v (last termination %+v)", c, c.LastTermination)
	}
	// Each restart waited at least the back-off after the previous run
	// (which lasts a few milliseconds): 1 s, 2 s, 4 s.
	checkGrowingGaps(t, starts)
}

// checkGrowingGaps checks that consecutive instances were started at
// least the back-off apart, and that the back-off grew.
func checkGrowingGaps(t *testing.T, starts map[int]time.Time) {
	t.Helper()
	var gaps []time.Duration
	for attempt := 1; ; attempt++ {
		prev, ok1 := starts[attempt-1]
		next, ok2 := starts[attempt]
		if !ok1 || !ok2 {
			break
		}
		gaps = append(gaps, next.Sub(prev))
	}
	if len(gaps) < 3 {
		t.Fatalf("gaps between starts %v: want three", gaps)
	}
	min := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for i, g := range gaps[:3] {
		if g < min[i] {
			t.Errorf("restart %d came %v after the previous start, before its back-off of %v", i+1, g, min[i])
		}
	}
	t.Logf("gaps between starts: %v", gaps)
}

// A failing liveness probe kills the container, which is restarted; a
// readiness probe keeps the pod unready until it passes.
func TestAgentProbes(t *testing.T) {
	n := newTestNode(t)
	a := n.start(t, nil)
	a.apply(t, n, "probes", map[string]string{"probes.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: gitorch.test/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "touch /tmp/alive; trap 'exit 0' TERM; while true; do sleep 1; done"]
    livenessProbe:
      exec: {command: ["test", "-f", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      exec: {command: ["test", "-f", "/tmp/ready"]}
      periodSeconds: 1
`})
	p := a.waitPod(t, "default", "probed", time.Minute, "running", func(p plan.PodStatus) bool { return p.Phase == plan.PhaseRunning })
	if p.Ready {
		t.Fatal("ready before its readiness probe passed")
	}
	ctx := context.Background()
	if _, err := n.Runtime.Exec(ctx, "default", "probed", "app", []string{"touch", "/tmp/ready"}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p = a.waitPod(t, "default", "probed", 30*time.Second, "ready", runningReady)
	pid := container(p, "app").PID

	// The liveness probe fails once /tmp/alive is gone: the container is
	// killed and started again (a new instance, not ready until its own
	// readiness probe passes, which it cannot: /tmp is the new instance's).
	if _, err := n.Runtime.Exec(ctx, "default", "probed", "app", []string{"rm", "/tmp/alive"}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p = a.waitPod(t, "default", "probed", time.Minute, "restarted", func(p plan.PodStatus) bool {
		c := container(p, "app")
		return c.Restarts >= 1 && c.State == plan.StateRunning && c.PID != pid
	})
	if c := container(p, "app"); c.Ready || c.LastTermination == nil {
		t.Fatalf("after the liveness kill: %+v", c)
	}
}

// A container over its memory limit is killed and reported OOMKilled.
func TestAgentOOMKilled(t *testing.T) {
	n := newTestNode(t)
	a := n.start(t, nil)
	a.apply(t, n, "hog", map[string]string{"hog.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: gitorch.test/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo survived"]
    resources:
      limits: {memory: 32Mi}
`})
	p := a.waitPod(t, "default", "hog", time.Minute, "failed", func(p plan.PodStatus) bool { return p.Phase == plan.PhaseFailed })
	if c := container(p, "hog"); p.Reason != plan.ReasonOOMKilled || c.Reason != plan.ReasonOOMKilled || c.State != plan.StateTerminated {
		t.Fatalf("pod %s/%s, container %+v; want OOMKilled", p.Phase, p.Reason, c)
	}
}

const sleeper = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
spec:
  replicas: 2
  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: gitorch.test/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
`

func deployment(name string) string {
	return strings.ReplaceAll(sleeper, "%s", name)
}

func runningPods(a *agent) map[string]plan.PodStatus {
	out := map[string]plan.PodStatus{}
	for _, p := range a.Status().Pods {
		if p.Phase == plan.PhaseRunning {
			out[p.Name] = p
		}
	}
	return out
}

func waitRunning(t *testing.T, a *agent, want int) map[string]plan.PodStatus {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ps := runningPods(a)
		if len(ps) == want && len(a.Status().Pods) == want {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d running pods, have %+v", want, a.Status().Pods)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An invalid commit is refused with file:line errors and the pods of the
// last good revision keep running; a restarted agent adopts the running
// pods without restarting any; a commit removing a Deployment removes its
// containers, veths and addresses.
func TestAgentRefusesAdoptsAndRemoves(t *testing.T) {
	n := newTestNode(t)
	a := n.start(t, nil)
	good := a.apply(t, n, "two deployments", map[string]string{"a.yaml": deployment("alpha"), "b.yaml": deployment("beta")})
	before := waitRunning(t, a, 4)

	bad := n.commit(t, "typo", map[string]string{"a.yaml": deployment("alpha"), "b.yaml": strings.Replace(deployment("beta"), "containers:", "contianers:", 1)})
	a.Sync()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := a.WaitRevision(ctx, bad); err == nil {
		t.Fatal("the invalid revision was accepted")
	}
	st := a.Status()
	if st.Running == nil || st.Running.Commit != good || st.Refused == nil || st.Refused.Commit != bad {
		t.Fatalf("running %+v, refused %+v", st.Running, st.Refused)
	}
	if len(st.Refused.Errors) == 0 || !strings.HasPrefix(st.Refused.Errors[0], "b.yaml:") || !strings.Contains(strings.Join(st.Refused.Errors, "\n"), "contianers") {
		t.Fatalf("refusal errors %q", st.Refused.Errors)
	}
	samePIDs(t, before, waitRunning(t, a, 4))

	// Restart the agent: the new one adopts everything.
	a.stop()
	a = n.start(t, nil)
	if _, err := a.WaitRevision(ctx, good); err != nil {
		t.Fatalf("restarted agent: %v", err)
	}
	// Several passes of the new agent's loop (resync 1 s) restart nothing.
	for range 3 {
		time.Sleep(time.Second)
		samePIDs(t, before, waitRunning(t, a, 4))
	}

	// Remove beta: its pods, containers, veths and IPs go.
	var betaKeys []plan.Key
	for name := range before {
		if strings.HasPrefix(name, "beta-") {
			betaKeys = append(betaKeys, plan.Key{Namespace: "default", Name: name})
		}
	}
	a.apply(t, n, "remove beta", map[string]string{"a.yaml": deployment("alpha")})
	after := waitRunning(t, a, 2)
	for name := range after {
		if !strings.HasPrefix(name, "alpha-") {
			t.Errorf("pod %s still running", name)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, key := range betaKeys {
		dir := key.Namespace + "_" + key.Name // the pod's name in IPAM and its containers' IDs
		for linkExists(t, n.NetNS, apply.HostVeth(key)) || n.hasIP(dir) || n.hasContainers(t, dir) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: veth, address or containers left", key)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (n *testNode) hasIP(key string) bool {
	ipam, err := apply.OpenIPAM(n.ipamPath(), n.IPAM.Prefix())
	if err != nil {
		return true
	}
	_, ok := ipam.Lookup(key)
	return ok
}

func (n *testNode) ipamPath() string { return n.DataDir + "/ipam.json" }

func (n *testNode) hasContainers(t *testing.T, key string) bool {
	ctrs, err := n.CD.Client.Containers(n.CD.Context(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		if strings.HasPrefix(c.ID(), key+"_") {
			return true
		}
	}
	return false
}

// samePIDs checks that every pod of before runs with the same container
// PIDs in after.
func samePIDs(t *testing.T, before, after map[string]plan.PodStatus) {
	t.Helper()
	for name, p := range before {
		q, ok := after[name]
		if !ok {
			t.Errorf("pod %s gone", name)
			continue
		}
		for c, pid := range pids(p) {
			if got := pids(q)[c]; got != pid {
				t.Errorf("pod %s container %s: pid %d, was %d (restarted)", name, c, got, pid)
			}
		}
	}
}

// hostPath volumes are checked or made by their type: a FileOrCreate file
// is made and written through the container; a Socket that is a file
// keeps the pod from starting, with the reason in its status.
func TestAgentHostPathTypes(t *testing.T) {
	n := newTestNode(t)
	dir := t.TempDir()
	a := n.start(t, nil)
	a.apply(t, n, "hostpaths", map[string]string{"pods.yaml": strings.NewReplacer("DIR", dir).Replace(`apiVersion: v1
kind: Pod
metadata:
  name: writer
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: gitorch.test/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo written-by-the-pod > /data/out"]
    volumeMounts:
    - {name: out, mountPath: /data/out}
  volumes:
  - name: out
    hostPath: {path: DIR/out.txt, type: FileOrCreate}
---
apiVersion: v1
kind: Pod
metadata:
  name: wrongtype
spec:
  containers:
  - name: app
    image: gitorch.test/busybox:latest
    imagePullPolicy: IfNotPresent
    volumeMounts:
    - {name: sock, mountPath: /run/app.sock}
  volumes:
  - name: sock
    hostPath: {path: DIR/out.txt, type: Socket}
`)})
	a.waitPod(t, "default", "writer", time.Minute, "succeeded", func(p plan.PodStatus) bool { return p.Phase == plan.PhaseSucceeded })
	if got := readFile(t, dir+"/out.txt"); got != "written-by-the-pod\n" {
		t.Fatalf("host file holds %q", got)
	}
	p := a.waitPod(t, "default", "wrongtype", time.Minute, "refused to start", func(p plan.PodStatus) bool {
		// Until the writer made the file, the error is that it is missing.
		return p.Reason == plan.ReasonCreateContainerErr && strings.Contains(p.Message, "is not a Socket")
	})
	if p.Phase != plan.PhasePending {
		t.Fatalf("status %s/%s: %s", p.Phase, p.Reason, p.Message)
	}
}

// An image that cannot be pulled shows ImagePullBackOff with the pull's
// error and the time of the next try; a pod removed from the manifests runs
// its preStop hook before it stops.
func TestAgentPullBackOffAndPreStop(t *testing.T) {
	n := newTestNode(t)
	dir := t.TempDir()
	a := n.start(t, nil)
	stopper := strings.NewReplacer("DIR", dir).Replace(`apiVersion: v1
kind: Pod
metadata:
  name: stopper
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: gitorch.test/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap 'echo got-term >> /host/out; exit 0' TERM; while true; do sleep 1; done"]
    lifecycle:
      preStop:
        exec: {command: ["sh", "-c", "echo pre-stop >> /host/out"]}
    volumeMounts:
    - {name: host, mountPath: /host/out}
  volumes:
  - name: host
    hostPath: {path: DIR/out, type: FileOrCreate}
`)
	// Nothing listens on 127.0.0.1:1: every pull fails at once.
	unpullable := `apiVersion: v1
kind: Pod
metadata:
  name: unpullable
spec:
  containers:
  - name: app
    image: 127.0.0.1:1/nothing:1
`
	a.apply(t, n, "two pods", map[string]string{"stopper.yaml": stopper, "unpullable.yaml": unpullable})
	// ErrImagePull shows until the pod is looked at again, which may be
	// too short for this poll to see (TestImagePullFailureShowsErrImagePullThenBackOff
	// pins the sequence); the back-off lasts.
	a.waitPod(t, "default", "unpullable", time.Minute, "in ImagePullBackOff", func(p plan.PodStatus) bool {
		return p.Reason == plan.ReasonImagePullBackOff
	})
	p, _ := a.Pod("default", "unpullable")
	if c := container(p, "app"); c.State != plan.StateWaiting || !strings.Contains(c.Message, "127.0.0.1:1") || c.NextStart.IsZero() {
		t.Fatalf("container %+v", c)
	}
	a.waitPod(t, "default", "stopper", time.Minute, "running", func(p plan.PodStatus) bool { return p.Phase == plan.PhaseRunning })

	a.apply(t, n, "remove stopper", map[string]string{"unpullable.yaml": unpullable})
	deadline := time.Now().Add(time.Minute)
	for {
		if _, ok := a.Pod("default", "stopper"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pod stopper not removed within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := readFile(t, dir+"/out"); got != "pre-stop\ngot-term\n" {
		t.Fatalf("the pod wrote %q; want the preStop hook's line, then the SIGTERM handler's", got)
	}
}
