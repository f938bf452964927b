package e2e_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

// statefulSet is a StatefulSet of busybox pods that sleep; sleep ignores
// SIGTERM, so a stop takes the whole grace period.
func statefulSet(name string, replicas, grace int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  clusterIP: None
  selector: {app: %[1]s}
  ports:
  - {port: 80}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: %[1]s
spec:
  serviceName: %[1]s
  replicas: %[2]d
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      terminationGracePeriodSeconds: %[3]d
      containers:
      - name: main
        image: %[4]s
        imagePullPolicy: IfNotPresent
        command: ["sleep", "86400"]
        resources:
          requests: {cpu: 10m, memory: 8Mi}
`, name, replicas, grace, applytest.BusyboxRef)
}

// copyWatch samples, every 200 ms, which nodes' containerd run each pod
// named prefix*, and keeps every sample where a pod ran on two nodes.
type copyWatch struct {
	mu      sync.Mutex
	last    map[string][]string
	doubles []string
	samples int
	errs    int
	phase   string
	once    sync.Once
	stop    chan struct{}
	done    chan struct{}
}

func watchCopies(c *Cluster, prefix string) *copyWatch {
	w := &copyWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			ctrs, err := c.Containers()
			w.mu.Lock()
			if err != nil {
				w.errs++
			} else {
				w.samples++
				w.last = RunningPlacement(ctrs, prefix)
				for pod, nodes := range w.last {
					if len(nodes) > 1 {
						w.doubles = append(w.doubles, fmt.Sprintf("%s (%s) %s on %v", time.Now().Format("15:04:05.000"), w.phase, pod, nodes))
					}
				}
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Phase names what the test does, for the samples that follow.
func (w *copyWatch) Phase(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.phase = p
}

// Now is the last sample: pod → nodes running it.
func (w *copyWatch) Now() map[string][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// Stop ends the sampling and returns the samples with two copies, and
// how many samples were taken.
func (w *copyWatch) Stop() ([]string, int, int) {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.doubles, w.samples, w.errs
}

// (f) A StatefulSet pod never runs on two nodes at once: not when its
// node is cut off from the others while its agent keeps running (the
// cut-off node, without quorum, stops it; the others start it after the
// fence), and not when the link comes back and the pod moves home.
func TestStatefulSetPodNeverRunsTwice(t *testing.T) {
	const grace = 2
	// The fence must cover how much later the cut-off node declares its
	// last peer dead than the others declare it dead: memberlist's
	// Lifeguard slows the probes of a node whose own probes fail, and
	// 5 s was seen here (docs/cluster.md). 8 s is short of the default,
	// 15 s, to keep the test quick.
	c := NewCluster(t, Options{Args: []string{"--fence-timeout", "8s", "--rejoin-settle", "5s"}})
	// OrderedReady, the default: the agents join while the first revision
	// is placed, so a node may hold db-1 or db-2 for its predecessor and
	// then see placement give it to a node that joined; it drops it from
	// its reports and the new node starts it.
	c.Commit("db", map[string]string{"db.yaml": statefulSet("db", 3, grace)})
	w := watchCopies(c, "db-")
	defer w.Stop()
	w.Phase("start")
	c.Start()
	// Spread: one ordinal on each node.
	home := c.AgreeOn(c.Members(), "db-", 3, 90*time.Second, func(p Placement) string {
		if len(p.PerNode()) != 3 {
			return fmt.Sprintf("not one pod per node: %s", p)
		}
		return ""
	})
	t.Logf("placed: %s", home)
	victim := c.Node(home["db-0"])
	var survivors []*Node
	for _, n := range c.Members() {
		if n != victim {
			survivors = append(survivors, n)
		}
	}

	cut := time.Now()
	w.Phase(victim.Name + " cut off")
	if err := victim.Host.Cut(); err != nil {
		t.Fatal(err)
	}
	// The cut-off node loses quorum and stops db-0; the survivors start
	// it after the fence.
	Eventually(t, 90*time.Second, "db-0 running on a survivor, and not on "+victim.Name, func() (bool, string) {
		now := w.Now()
		nodes := now["db-0"]
		if len(nodes) != 1 || nodes[0] == victim.Name {
			return false, fmt.Sprintf("containerd runs db-0 on %v", nodes)
		}
		for _, pod := range []string{"db-1", "db-2"} {
			if got := now[pod]; len(got) != 1 || got[0] != home[pod] {
				return false, fmt.Sprintf("containerd runs %s on %v, not on %s alone", pod, got, home[pod])
			}
		}
		return true, ""
	})
	t.Logf("db-0 runs on %v %v after %s was cut off", w.Now()["db-0"], time.Since(cut).Round(time.Millisecond), victim.Name)
	if !victim.Running() {
		t.Fatalf("the agent of %s exited while cut off:\n%s", victim.Name, tail(victim.Log(), 20))
	}
	st, err := victim.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Quorum {
		t.Errorf("%s, cut off, says it has quorum", victim.Name)
	}
	for _, n := range survivors {
		Eventually(t, 30*time.Second, n.Name+" reports db-0 Running and ready on a survivor", func() (bool, string) {
			st, err := n.Status()
			if err != nil {
				return false, err.Error()
			}
			p := ReadyPods(st, "db-")
			if onSurvivor(p["db-0"], victim.Name) == "" {
				return false, fmt.Sprintf("%s reports %s", n.Name, AllPods(st, "db-"))
			}
			return true, ""
		})
	}

	// Back on the LAN, the node settles and db-0 comes home, stopped on
	// the survivor before it starts again.
	restored := time.Now()
	w.Phase(victim.Name + " back")
	if err := victim.Host.Restore(); err != nil {
		t.Fatal(err)
	}
	c.AliveMembers(c.Members(), []string{"n1", "n2", "n3"}, 90*time.Second)
	c.AgreeOn(c.Members(), "db-", 3, 90*time.Second, func(p Placement) string {
		if p["db-0"] != victim.Name {
			return fmt.Sprintf("db-0 not back on %s: %s", victim.Name, p)
		}
		return ""
	})
	Eventually(t, 30*time.Second, "containerd runs each ordinal on its home node", func() (bool, string) {
		now := w.Now()
		for pod, node := range home {
			if !slices.Equal(now[pod], []string{node}) {
				return false, fmt.Sprintf("%s on %v", pod, now[pod])
			}
		}
		return true, ""
	})
	t.Logf("db-0 back on %s %v after the link was restored", victim.Name, time.Since(restored).Round(time.Millisecond))
	doubles, samples, errs := w.Stop()
	t.Logf("%d samples of containerd every 200 ms (%d failed)", samples, errs)
	if len(doubles) > 0 {
		t.Errorf("a StatefulSet pod ran on two nodes at once, in %d samples:\n%s", len(doubles), strings.Join(doubles, "\n"))
	}
	if samples < 50 || errs > samples/10 {
		t.Errorf("%d samples, %d failed: the watch saw too little", samples, errs)
	}
}
