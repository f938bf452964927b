package gossip

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkPropagation measures how long a pod status change of one node
// takes to be known to every node of a 50-node in-process cluster, with
// the LAN timing users run and with the fast local profile.
//
//	go test ./pkg/gossip -run '^$' -bench Propagation -benchtime 40x
func BenchmarkPropagation(b *testing.B) {
	for _, prof := range []struct {
		name string
		t    Timing
	}{{"LAN", LANTiming()}, {"local", LocalTiming()}} {
		b.Run(prof.name, func(b *testing.B) {
			const size = 50
			nodes := startCluster(b, size, prof.t)
			eventually(b, 60*time.Second, allAlive(nodes))
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				src := nodes[i%size]
				name := src.cfg.NodeName
				phase := fmt.Sprintf("Running-%d", i)
				t0 := time.Now()
				src.SetLocalState(NodeState{Revision: strings.Repeat("a", 40),
					Pods: []PodStatus{{Namespace: "default", Name: "web-0", Phase: phase, Ready: true}}})
				deadline := t0.Add(60 * time.Second)
				for pending := slices.Clone(nodes); len(pending) > 0; {
					pending = slices.DeleteFunc(pending, func(n *testNode) bool {
						st := n.States()[name]
						return len(st.Pods) == 1 && st.Pods[0].Phase == phase
					})
					if time.Now().After(deadline) {
						b.Fatalf("change %d not known to %d nodes after a minute", i, len(pending))
					}
					time.Sleep(2 * time.Millisecond)
				}
				lat = append(lat, time.Since(t0))
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
