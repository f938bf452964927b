package gossip

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkPropagation measures how long a pod status change of one node
// takes to be known to every node of a 50-node in-process cluster, with
// the LAN timing users run and with the fast local profile. Each node
// notes when its view changed to the new status from its OnChange
// callback, so the figure is not the cost of polling 50 nodes.
//
//	go test ./pkg/gossip -run '^$' -bench Propagation -benchtime 20x
func BenchmarkPropagation(b *testing.B) {
	for _, prof := range []struct {
		name string
		t    Timing
	}{{"LAN", LANTiming()}, {"local", LocalTiming()}} {
		b.Run(prof.name, func(b *testing.B) {
			const size = 50
			w := &waitAll{size: size}
			nodes := make([]*testNode, size)
			ports := freePorts(b, size)
			var join []string
			for _, p := range ports {
				join = append(join, addr(p))
			}
			for i := range size {
				cfg := nodeConfig(fmt.Sprintf("n%02d", i), ports[i], join...)
				cfg.Timing = prof.t
				cfg.OnChange = func() { w.check(nodes[i]) }
				nodes[i] = start(b, cfg)
			}
			eventually(b, 60*time.Second, allAlive(nodes))
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				src := nodes[i%size]
				phase := fmt.Sprintf("Running-%d", i)
				done := w.expect(src.cfg.NodeName, phase)
				t0 := time.Now()
				src.SetLocalState(NodeState{Revision: strings.Repeat("a", 40),
					Pods: []PodStatus{{Namespace: "default", Name: "web-0", Phase: phase, Ready: true}}})
				select {
				case last := <-done:
					lat = append(lat, last.Sub(t0))
				case <-time.After(60 * time.Second):
					b.Fatalf("change %d not known to every node after a minute", i)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(float64(prof.t.GossipInterval.Milliseconds()), "gossip-interval-ms")
			b.ReportMetric(float64(prof.t.ProbeInterval.Milliseconds()), "probe-interval-ms")
			b.ReportMetric(float64(prof.t.PushPullInterval.Milliseconds()), "pushpull-interval-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// waitAll notes when each node first sees src's pod in phase, and sends
// the last of those times once every node has.
type waitAll struct {
	size int
	mu   sync.Mutex
	src  string
	want string
	seen map[string]bool
	done chan time.Time
}

func (w *waitAll) expect(src, phase string) <-chan time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.src, w.want, w.seen, w.done = src, phase, map[string]bool{}, make(chan time.Time, 1)
	return w.done
}

func (w *waitAll) check(n *testNode) {
	if n == nil {
		return
	}
	w.mu.Lock()
	src, want, seen := w.src, w.want, w.seen[n.cfg.NodeName]
	w.mu.Unlock()
	if want == "" || seen {
		return
	}
	st := n.States()[src]
	if len(st.Pods) != 1 || st.Pods[0].Phase != want {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.want != want || w.seen[n.cfg.NodeName] {
		return
	}
	w.seen[n.cfg.NodeName] = true
	if len(w.seen) == w.size {
		w.done <- now
	}
}

// BenchmarkStateSize reports the encoded size of the full state of 10,000
// pods over 100 nodes (what one push/pull carries; it must stay under
// 1 MB) and of one delta.
//
//	go test ./pkg/gossip -run '^$' -bench StateSize
func BenchmarkStateSize(b *testing.B) {
	rev := strings.Repeat("3f2a9c1e7b", 4)
	started := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	r := newTestStore("self", 1)
	for n := range 100 {
		origin := newTestStore(fmt.Sprintf("node-%03d", n), uint64(time.Now().UnixNano()))
		var pods []PodStatus
		for p := range 100 {
			w := (n*100 + p) % 250 // 250 workloads of 40 replicas
			pods = append(pods, PodStatus{
				Namespace: []string{"default", "shop", "monitoring"}[w%3],
				Name:      fmt.Sprintf("workload-%03d-7c9d8f6b5-%d", w, p), Phase: "Running", Ready: true,
				IP: fmt.Sprintf("10.%d.%d.%d", 100+n/50, n%50, p+2), Revision: rev, TemplateHash: "7c9d8f6b5",
				ReadyContainers: 2, Containers: 2, Workload: fmt.Sprintf("Deployment/workload-%03d", w),
				// Started over the last month, each at its own second.
				StartedAt: started.Add(-time.Duration(n*100+p) * 263 * time.Second),
			})
		}
		origin.setLocal(NodeState{Revision: rev, Pods: pods})
		r.mergeSnapshot(origin.snapshotOf(origin.self))
	}
	var sns []*snapshot
	for name := range r.nodes {
		sns = append(sns, r.snapshotOf(name))
	}
	var full []byte
	for range b.N {
		full = encodeSnapshots(sns)
	}
	p := PodStatus{Namespace: "shop", Name: "workload-042-7c9d8f6b5-17", Phase: "Running", Ready: true,
		IP: "10.100.3.19", Revision: rev, TemplateHash: "7c9d8f6b5", Restarts: 1,
		ReadyContainers: 1, Containers: 2, StartedAt: started, Workload: "Deployment/workload-042"}
	d := encodeDelta(&delta{origin: "node-042", v: uint64(time.Now().UnixNano()), prev: 1, pod: podEntry{key: podKey{p.Namespace, p.Name}, v: 1, pod: p}})
	small := newTestStore("node-001", uint64(time.Now().UnixNano()))
	small.setLocal(NodeState{Revision: rev, Pods: []PodStatus{p, p, p}[:1]})
	if len(full) >= 1<<20 {
		b.Errorf("full state of 10,000 pods is %d bytes, over 1 MB", len(full))
	}
	b.ReportMetric(float64(len(full)), "full-state-bytes")
	b.ReportMetric(float64(len(full))/10000, "bytes/pod")
	b.ReportMetric(float64(len(d)), "delta-bytes")
	b.ReportMetric(float64(len(encodeSnapshots([]*snapshot{small.snapshotOf("node-001")}))), "one-pod-node-snapshot-bytes")
}
