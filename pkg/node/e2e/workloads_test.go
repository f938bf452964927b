package e2e_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/status"
)

// brokenImage is an image that is not in containerd and cannot be
// pulled: nothing listens on port 1 of the node's loopback.
const brokenImage = "127.0.0.1:1/gitorch/missing:2"

// web is a Deployment of 3 busybox httpd pods, each answering its own
// name on :8080/name, ready once it does, with a progress deadline of
// 15 s, maxSurge 1 and maxUnavailable 1.
func web(image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  progressDeadlineSeconds: 15
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: %s
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/name && exec httpd -f -p 8080 -h /www"]
        readinessProbe:
          httpGet: {path: /name, port: 8080}
          periodSeconds: 1
        resources:
          requests: {cpu: 10m, memory: 8Mi}
`, image)
}

// piJob is a Job of 5 completions, 2 at a time, whose pods sleep 3 s
// and exit 0.
var piJob = fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  completions: 5
  parallelism: 2
  backoffLimit: 6
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: %s
        imagePullPolicy: IfNotPresent
        command: ["sleep", "3"]
        resources:
          requests: {cpu: 10m, memory: 8Mi}
`, applytest.BusyboxRef)

// helloCronJob runs every minute a pod that sleeps 5 s (long enough for
// a sampler every 500 ms to see it run) and keeps 10 runs listed.
var helloCronJob = fmt.Sprintf(`apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "*/1 * * * *"
  successfulJobsHistoryLimit: 10
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: %s
            imagePullPolicy: IfNotPresent
            command: ["sleep", "5"]
            resources:
              requests: {cpu: 10m, memory: 8Mi}
`, applytest.BusyboxRef)

// Workload controllers over three real agents, on one cluster: a
// Deployment's rollout to a broken image stops at its progress deadline,
// Degraded, its old pods serving; `gitorch rollout undo --push` commits
// and pushes the old template over HTTP and the cluster rolls back; a
// Job of 5 completions runs exactly 5 pods across a kill -9 of an agent,
// and not again after a restart of every agent; and a CronJob of every
// minute, running meanwhile, runs once per minute.
func TestWorkloadsOnThreeNodes(t *testing.T) {
	c := NewCluster(t, Options{})
	c.Commit("web and hello", map[string]string{"web.yaml": web(applytest.BusyboxRef), "hello.yaml": helloCronJob})
	c.Start()
	c.AgreeOn(c.Members(), "web-", 3, 90*time.Second, nil)
	runsOnce(t, c, "web-", 3)
	// containerd is sampled from now on, whatever the agents do: which
	// Job and CronJob pods ran, where.
	w := watchPods(t, c, "pi-", "hello-")

	var oldHash string
	var oldPIDs map[string]uint32
	var brokenCommit string
	ok := t.Run("BrokenImageStopsAtTheDeadline", func(t *testing.T) {
		oldHash, oldPIDs, brokenCommit = brokenRollout(t, c)
	})
	ok = ok && t.Run("UndoRollsBack", func(t *testing.T) { undoRollsBack(t, c, oldHash, oldPIDs, brokenCommit) })
	ok = ok && t.Run("JobCompletesFiveAcrossRestarts", func(t *testing.T) { jobAcrossRestarts(t, c, w) })
	t.Run("CronJobRunsOncePerMinute", func(t *testing.T) { cronOncePerMinute(t, c, w) })
}

// runsOnce waits until containerd runs each of the want pods named
// prefix* once, and the nodes report each once as their own: pods that
// moved while the agents learnt of each other ran on two nodes for a
// while.
func runsOnce(t *testing.T, c *Cluster, prefix string, want int) {
	t.Helper()
	Eventually(t, 30*time.Second, "each "+prefix+"* pod runs once and is reported once", func() (bool, string) {
		ctrs, err := c.Containers()
		if err != nil {
			return false, err.Error()
		}
		placed := RunningPlacement(ctrs, prefix)
		for pod, nodes := range placed {
			if len(nodes) != 1 {
				return false, pod + " runs on " + strings.Join(nodes, ", ")
			}
		}
		reported := 0
		for _, n := range c.Members() {
			st, err := n.Status()
			if err != nil {
				return false, err.Error()
			}
			for _, p := range st.Pods {
				if p.Node == n.Name && strings.HasPrefix(p.Name, prefix) {
					reported++
				}
			}
		}
		return len(placed) == want && reported == want, fmt.Sprintf("%d pods run, %d reported", len(placed), reported)
	})
}

// workload is the status of workload kind/name in st.
func workload(st status.Cluster, kind, name string) (plan.WorkloadStatus, bool) {
	for _, w := range st.Workloads {
		if w.Kind == kind && w.Name == name {
			return w, true
		}
	}
	return plan.WorkloadStatus{}, false
}

// brokenRollout commits web with an image that cannot be pulled, and
// samples, every 500 ms, one node's report in turn, containerd and an
// HTTP GET of every old pod from its node's namespace: until every node
// reports web Degraded, and 5 s after, at least 2 old pods (replicas −
// maxUnavailable) are Running and ready and answer, no new pod is ready,
// and no old pod's container is replaced. It returns the old template's
// hash, the PIDs of the old pods that kept running and the broken commit.
func brokenRollout(t *testing.T, c *Cluster) (string, map[string]uint32, string) {
	st, err := c.Members()[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	oldHash := ""
	for _, p := range st.Pods {
		if strings.HasPrefix(p.Name, "web-") {
			oldHash = p.TemplateHash
		}
	}
	oldPrefix := "web-" + oldHash + "-"
	commit := c.Commit("web: a broken image", map[string]string{"web.yaml": web(brokenImage)})
	start := time.Now()
	degraded := map[string]time.Duration{}
	var held time.Time
	pids := map[string]uint32{}
	reasons := map[string]bool{}
	samples, minOld := 0, 3
	for i := 0; ; i++ {
		if time.Since(start) > 90*time.Second {
			t.Fatalf("not Degraded on every node within 90s of the commit: %v (%d samples)", degraded, samples)
		}
		n := c.Members()[i%len(c.Members())]
		st, err := n.Status()
		if err != nil {
			t.Fatal(err)
		}
		ctrs, err := c.Containers()
		if err != nil {
			t.Fatal(err)
		}
		samples++
		ran := RunningPlacement(ctrs, oldPrefix)
		old := 0
		var detail []string
		for _, p := range st.Pods {
			if !strings.HasPrefix(p.Name, "web-") {
				continue
			}
			detail = append(detail, fmt.Sprintf("%s on %s: %s ready=%v %s", p.Name, p.Node, p.Phase, p.Ready, p.Reason))
			if p.TemplateHash != oldHash {
				if p.Ready {
					t.Fatalf("%v in, %s reports the new pod %s ready: %s", time.Since(start).Round(time.Millisecond), n.Name, p.Name, strings.Join(detail, "; "))
				}
				if p.Reason != "" {
					reasons[p.Reason] = true
				}
				continue
			}
			if p.Phase != plan.PhaseRunning || !p.Ready {
				continue
			}
			old++
			nodes := ran[p.Name]
			if len(nodes) != 1 || nodes[0] != p.Node {
				t.Fatalf("%v in, %s reports %s ready on %s, containerd runs it on %v", time.Since(start).Round(time.Millisecond), n.Name, p.Name, p.Node, nodes)
			}
			body, err := applytest.HTTPGetInNetNS(c.Node(p.Node).Host.NetNS, p.IP+":8080", "/name", 2*time.Second, 5*time.Second)
			if err != nil {
				t.Fatalf("%v in, GET %s:8080/name (%s) from %s: %v", time.Since(start).Round(time.Millisecond), p.IP, p.Name, p.Node, err)
			}
			if got := strings.TrimSpace(string(body)); got != p.Name {
				t.Fatalf("GET %s:8080/name answers %q, want %s", p.IP, got, p.Name)
			}
		}
		minOld = min(minOld, old)
		if old < 2 {
			t.Fatalf("sample %d, %v in: %s reports %d old pods ready, fewer than replicas − maxUnavailable = 2: %s",
				samples, time.Since(start).Round(time.Millisecond), n.Name, old, strings.Join(detail, "; "))
		}
		// Once the rollout is held, the old pods that are left keep their
		// containers.
		for _, x := range ctrs {
			if x.PID == 0 || !strings.HasPrefix(x.Pod, oldPrefix) {
				continue
			}
			if !held.IsZero() {
				if pid, ok := pids[x.Pod]; !ok || pid != x.PID {
					t.Fatalf("%s: task %d on %s, after the rollout was Degraded (PIDs then %v)", x.Pod, x.PID, x.Node, pids)
				}
			}
		}
		if w, ok := workload(st, "Deployment", "web"); ok && w.Health == plan.HealthDegraded {
			if _, seen := degraded[n.Name]; !seen {
				took := time.Since(start)
				t.Logf("%s reports web Degraded %v after the commit: %s", n.Name, took.Round(time.Millisecond), w.Message)
				if took < 15*time.Second {
					t.Fatalf("%s reports web Degraded %v after the commit, before its progressDeadlineSeconds (15 s)", n.Name, took)
				}
				degraded[n.Name] = took
			}
		} else if !held.IsZero() {
			t.Fatalf("%s reports web %+v after every node reported it Degraded", n.Name, w)
		}
		if held.IsZero() && len(degraded) == len(c.Members()) {
			held = time.Now()
			for _, x := range ctrs {
				if x.PID != 0 && strings.HasPrefix(x.Pod, oldPrefix) {
					pids[x.Pod] = x.PID
				}
			}
		}
		if !held.IsZero() && time.Since(held) > 5*time.Second {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d samples: at least %d old pods ready and answering; the new pods' reasons: %v", samples, minOld, slices.Sorted(maps.Keys(reasons)))
	if !reasons[plan.ReasonErrImagePull] && !reasons[plan.ReasonImagePullBackOff] {
		t.Errorf("the new pods' reasons were %v, want %s or %s", slices.Sorted(maps.Keys(reasons)), plan.ReasonErrImagePull, plan.ReasonImagePullBackOff)
	}
	out, err := c.Nodes[0].CLI("rollout", "status", "deployment/web", "--timeout", "15s", "--server", c.Nodes[1].URL(), "--api-token-file", c.TokenFile)
	if err == nil || !strings.Contains(err.Error(), `deployment "web" is Degraded`) {
		t.Fatalf("rollout status of a Degraded Deployment: %v\n%s", err, out)
	}
	if !strings.Contains(err.Error(), ": exit status 1: ") {
		t.Fatalf("rollout status of a Degraded Deployment: %v, want exit status 1", err)
	}
	return oldHash, pids, commit
}

// serveRepo serves the cluster's repository with git http-backend on
// 127.0.0.1, pushes allowed: a push to its checked-out branch updates the
// work tree too (receive.denyCurrentBranch updateInstead), so that the
// agents, which follow the repository's directory, and Cluster.Commit
// see it. It returns the repository's URL.
func serveRepo(t *testing.T, c *Cluster) string {
	c.git("-C", c.Repo, "config", "http.receivepack", "true")
	c.git("-C", c.Repo, "config", "receive.denyCurrentBranch", "updateInstead")
	home := t.TempDir()
	backend := &cgi.Handler{
		Path: filepath.Join(c.git("--exec-path"), "git-http-backend"),
		// git http-backend refuses anonymous pushes.
		Env:    []string{"GIT_PROJECT_ROOT=" + filepath.Dir(c.Repo), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + home, "REMOTE_USER=e2e"},
		Stderr: io.Discard,
	}
	srv := httptest.NewServer(backend)
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(c.Repo)
}

// undoRollsBack clones the repository over HTTP, runs `gitorch rollout
// undo deployment/web --push` in the clone, and checks the revert commit
// (on the broken one, in the repository the agents follow) and that the
// cluster rolls back: every node runs it, web is Healthy with the old
// template, its 3 pods are the old names, the broken pods are gone, and
// the old pods that kept serving were not restarted.
func undoRollsBack(t *testing.T, c *Cluster, oldHash string, oldPIDs map[string]uint32, brokenCommit string) {
	url := serveRepo(t, c)
	clone := filepath.Join(t.TempDir(), "clone")
	c.git("clone", "-q", url, clone)
	c.git("-C", clone, "config", "user.email", "ops@gitorch.test")
	c.git("-C", clone, "config", "user.name", "ops")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, "rollout", "undo", "deployment/web", clone, "--push")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("gitorch rollout undo deployment/web --push: %v\n%s", err, out)
	}
	t.Logf("gitorch rollout undo deployment/web --push:\n%s", out)
	start := time.Now()
	head := c.git("-C", c.Repo, "rev-parse", "HEAD")
	if !strings.Contains(out, "committed "+head[:12]) || !strings.Contains(out, "\npushed\n") {
		t.Fatalf("the repository's HEAD is %s; undo printed:\n%s", head, out)
	}
	if parent := c.git("-C", c.Repo, "rev-parse", "HEAD^"); parent != brokenCommit {
		t.Fatalf("the undo commit's parent is %s, want the broken commit %s", parent, brokenCommit)
	}
	if dirty := c.git("-C", c.Repo, "status", "--porcelain"); dirty != "" {
		t.Fatalf("the pushed commit left the repository's work tree behind:\n%s", dirty)
	}
	if b, err := os.ReadFile(filepath.Join(c.Repo, "web.yaml")); err != nil || !strings.Contains(string(b), "image: "+applytest.BusyboxRef) {
		t.Fatalf("web.yaml after the undo (%v):\n%s", err, b)
	}
	oldPrefix := "web-" + oldHash + "-"
	want := []string{oldPrefix + "0", oldPrefix + "1", oldPrefix + "2"}
	Eventually(t, 90*time.Second, "every node runs the undo and web is Healthy with its old template", func() (bool, string) {
		for _, n := range c.Members() {
			st, err := n.Status()
			if err != nil {
				return false, err.Error()
			}
			if st.Running == nil || st.Running.Commit != head {
				return false, fmt.Sprintf("%s runs %+v", n.Name, st.Running)
			}
			w, ok := workload(st, "Deployment", "web")
			if !ok || w.Health != plan.HealthHealthy || w.TemplateHash != oldHash || w.Available != 3 || w.Old != 0 {
				return false, fmt.Sprintf("%s reports web %+v", n.Name, w)
			}
			ready := ReadyPods(st, "web-")
			if got := slices.Sorted(maps.Keys(ready)); !slices.Equal(got, want) {
				return false, fmt.Sprintf("%s reports ready %s (all: %s)", n.Name, ready, AllPods(st, "web-"))
			}
		}
		ctrs, err := c.Containers()
		if err != nil {
			return false, err.Error()
		}
		ran := RunningPlacement(ctrs, "web-")
		if got := slices.Sorted(maps.Keys(ran)); !slices.Equal(got, want) {
			return false, fmt.Sprintf("containerd runs %v", ran)
		}
		return true, ""
	})
	t.Logf("rolled back %v after the push", time.Since(start).Round(time.Millisecond))
	ctrs, err := c.Containers()
	if err != nil {
		t.Fatal(err)
	}
	now := PIDs(ctrs)
	for _, x := range ctrs {
		if pid, ok := oldPIDs[x.Pod]; ok && x.PID != 0 && now[x.Node+"/"+x.ID] != pid {
			t.Errorf("%s was restarted by the undo: task %d, was %d", x.Pod, x.PID, pid)
		}
	}
	if out, err := c.Nodes[2].CLI("rollout", "status", "deployment/web", "--timeout", "15s", "--server", c.Nodes[0].URL(), "--api-token-file", c.TokenFile); err != nil || !strings.Contains(out, `deployment "web" successfully rolled out`) {
		t.Fatalf("rollout status after the undo: %v\n%s", err, out)
	}
}

// podWatch samples containerd every 500 ms from its start until the test
// ends: for each pod named with one of its prefixes, the nodes where a
// task of it ran, and when it was first seen.
type podWatch struct {
	start time.Time
	mu    sync.Mutex
	ran   map[string]map[string]bool
	first map[string]time.Time
	errs  []string
}

func watchPods(t *testing.T, c *Cluster, prefixes ...string) *podWatch {
	w := &podWatch{start: time.Now(), ran: map[string]map[string]bool{}, first: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			ctrs, err := c.Containers()
			w.mu.Lock()
			if err != nil && len(w.errs) < 10 {
				w.errs = append(w.errs, err.Error())
			}
			for _, x := range ctrs {
				if x.PID == 0 || !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(x.Pod, p) }) {
					continue
				}
				if w.ran[x.Pod] == nil {
					w.ran[x.Pod] = map[string]bool{}
					w.first[x.Pod] = time.Now()
				}
				w.ran[x.Pod][x.Node] = true
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// Ran is, for each pod named prefix* that ran, the nodes it ran on.
func (w *podWatch) Ran(prefix string) map[string][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]string{}
	for pod, nodes := range w.ran {
		if strings.HasPrefix(pod, prefix) {
			out[pod] = slices.Sorted(maps.Keys(nodes))
		}
	}
	return out
}

// Errors are the first errors the sampler met.
func (w *podWatch) Errors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.errs)
}

// job is Job name as st reports it.
func job(st status.Cluster, name string) (plan.JobStatus, bool) {
	for _, j := range st.Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return plan.JobStatus{}, false
}

// jobAcrossRestarts commits the pi Job; once one of its pods succeeded,
// kills -9 the agent of a node that runs one, starts it again once that
// pod exited, and checks that exactly 5 pods ran and succeeded and every
// node reports pi Complete; then restarts every agent and checks that no
// pod of pi runs again.
func jobAcrossRestarts(t *testing.T, c *Cluster, w *podWatch) {
	c.Commit("pi", map[string]string{"pi.yaml": piJob})
	start := time.Now()
	var victim *Node
	var pod string
	Eventually(t, 90*time.Second, "a pod of pi succeeded and another runs", func() (bool, string) {
		st, err := c.Members()[0].Status()
		if err != nil {
			return false, err.Error()
		}
		j, ok := job(st, "pi")
		if !ok || j.Succeeded == 0 {
			return false, fmt.Sprintf("pi: %+v", j)
		}
		ctrs, err := c.Containers()
		if err != nil {
			return false, err.Error()
		}
		for p, nodes := range RunningPlacement(ctrs, "pi-") {
			victim, pod = c.Node(nodes[0]), p
			return true, ""
		}
		return false, fmt.Sprintf("pi: %+v, no pod of it runs", j)
	})
	t.Logf("%v after the commit, %s runs %s: kill -9 its agent", time.Since(start).Round(time.Millisecond), victim.Name, pod)
	victim.Kill()
	Eventually(t, 10*time.Second, pod+" exits while its agent is down", func() (bool, string) {
		ctrs, err := c.Containers()
		if err != nil {
			return false, err.Error()
		}
		r := RunningPlacement(ctrs, pod)
		return len(r[pod]) == 0, fmt.Sprintf("runs on %v", r[pod])
	})
	victim.Start()
	complete := func(what string) {
		t.Helper()
		Eventually(t, 120*time.Second, what, func() (bool, string) {
			for _, n := range c.Members() {
				st, err := n.Status()
				if err != nil {
					return false, err.Error()
				}
				j, ok := job(st, "pi")
				if !ok || j.Condition != plan.JobComplete || j.Succeeded != 5 || j.Failed != 0 || len(j.Active) != 0 {
					return false, fmt.Sprintf("%s reports pi %+v", n.Name, j)
				}
				wl, ok := workload(st, "Job", "pi")
				if !ok || wl.Health != plan.HealthHealthy {
					return false, fmt.Sprintf("%s reports job/pi %+v", n.Name, wl)
				}
				succeeded := 0
				for _, p := range st.Pods {
					if p.Workload == "Job/pi" && p.Phase == plan.PhaseSucceeded {
						succeeded++
					}
				}
				if succeeded != 5 {
					return false, fmt.Sprintf("%s lists %d pods of pi Succeeded: %s", n.Name, succeeded, AllPods(st, "pi-"))
				}
			}
			return true, ""
		})
	}
	complete("every node reports pi Complete, 5 succeeded")
	t.Logf("pi complete %v after the commit", time.Since(start).Round(time.Millisecond))
	ran := w.Ran("pi-")
	if len(ran) != 5 {
		t.Fatalf("%d pods of pi ran, want 5: %v (sampler errors: %v)", len(ran), ran, w.Errors())
	}
	t.Logf("the pods of pi ran on: %v", ran)
	for pod, nodes := range ran {
		if len(nodes) != 1 {
			t.Errorf("%s ran on %v, want one node", pod, nodes)
		}
	}
	if out, err := c.Nodes[1].CLI("rollout", "status", "job/pi", "--timeout", "15s", "--server", c.Nodes[1].URL(), "--api-token-file", c.TokenFile); err != nil || !strings.Contains(out, `job "pi" completed`) {
		t.Fatalf("rollout status job/pi: %v\n%s", err, out)
	}

	// Every agent restarted: the records kept in their data dirs and
	// heard from each other keep pi complete.
	for _, n := range c.Members() {
		n.Stop()
	}
	for _, n := range c.Members() {
		n.Start()
	}
	c.AliveMembers(c.Members(), []string{"n1", "n2", "n3"}, 60*time.Second)
	c.AgreeOn(c.Members(), "web-", 3, 60*time.Second, nil)
	complete("every node reports pi Complete after every agent restarted")
	// Each node has placed its pods since it restarted (it reports web's
	// pods); a few seconds more for a pod of pi to show, if one started.
	settle := time.Now()
	for time.Since(settle) < 5*time.Second {
		if again := w.Ran("pi-"); len(again) != 5 {
			t.Fatalf("pi ran again after the restarts: %v", again)
		}
		time.Sleep(500 * time.Millisecond)
	}
	ctrs, err := c.Containers()
	if err != nil {
		t.Fatal(err)
	}
	if r := RunningPlacement(ctrs, "pi-"); len(r) != 0 {
		t.Fatalf("pods of pi run after the restarts: %v", r)
	}
}

// cronOncePerMinute checks the hello CronJob's runs of every minute that
// began after the sampler started and ended at least 45 s ago (waiting
// until there are 2 such minutes): each ran exactly one pod, on one
// node, and every node lists the run Complete.
func cronOncePerMinute(t *testing.T, c *Cluster, w *podWatch) {
	first := w.start.Truncate(time.Minute).Add(time.Minute)
	minutes := func() []time.Time {
		var out []time.Time
		for m := first; !m.Add(45 * time.Second).After(time.Now()); m = m.Add(time.Minute) {
			out = append(out, m)
		}
		return out
	}
	Eventually(t, 150*time.Second, "two minutes of hello's runs to check", func() (bool, string) {
		ms := minutes()
		return len(ms) >= 2, fmt.Sprintf("%d minutes so far", len(ms))
	})
	ms := minutes()
	ran := w.Ran("hello-")
	t.Logf("the runs of hello ran (sampled since %s): %v", w.start.Format(time.TimeOnly), ran)
	var runs []string
	for _, m := range ms {
		run := "hello-" + strconv.FormatInt(m.Unix()/60, 10)
		runs = append(runs, run)
		var pods []string
		for pod, nodes := range ran {
			if strings.HasPrefix(pod, run+"-") {
				pods = append(pods, pod)
				if len(nodes) != 1 {
					t.Errorf("run %s (%s): %s ran on %v", run, m.Format(time.TimeOnly), pod, nodes)
				}
			}
		}
		if len(pods) != 1 {
			t.Errorf("run %s (%s) ran %d pods, want 1: %v", run, m.Format(time.TimeOnly), len(pods), pods)
		}
	}
	Eventually(t, 30*time.Second, "every node lists the runs "+strings.Join(runs, ", ")+" Complete", func() (bool, string) {
		for _, n := range c.Members() {
			st, err := n.Status()
			if err != nil {
				return false, err.Error()
			}
			var cj *plan.CronJobStatus
			for i := range st.CronJobs {
				if st.CronJobs[i].Name == "hello" {
					cj = &st.CronJobs[i]
				}
			}
			if cj == nil {
				return false, n.Name + " lists no CronJob hello"
			}
			for _, run := range runs {
				i := slices.IndexFunc(cj.Runs, func(j plan.JobStatus) bool { return j.Name == run })
				if i < 0 {
					return false, fmt.Sprintf("%s lists the runs %+v, not %s", n.Name, cj.Runs, run)
				}
				if j := cj.Runs[i]; j.Condition != plan.JobComplete || j.Succeeded != 1 || j.Failed != 0 {
					return false, fmt.Sprintf("%s lists %s %+v", n.Name, run, j)
				}
			}
		}
		return true, ""
	})
}
