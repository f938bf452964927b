package apply_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

// BenchmarkPodStart measures RunPod of a one-container pod whose image is
// present: namespaces, veth, IP, container and task, until the task runs.
// Compare with BenchmarkCtrRun, a bare `ctr run -d` of the same image on
// the same containerd.
func BenchmarkPodStart(b *testing.B) {
	benchPodStart(b, true)
}

// BenchmarkPodStartNoNetwork is BenchmarkPodStart with loopback only.
func BenchmarkPodStartNoNetwork(b *testing.B) {
	benchPodStart(b, false)
}

func benchPodStart(b *testing.B, network bool) {
	n := newNode(b)
	rt := n.Runtime
	if !network {
		var err error
		rt, err = apply.NewContainerd(n.CD.RuntimeConfig(b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench-%d", i)
		pod := apply.PodSpec{Namespace: "default", Name: name, Containers: []apply.ContainerSpec{busybox("c", "exec sleep 3600")}}
		st, err := rt.RunPod(ctx, pod)
		if err != nil {
			b.Fatal(err)
		}
		if c, _ := st.Container("c"); c.State != apply.StateRunning {
			b.Fatalf("not running: %+v", c)
		}
		b.StopTimer()
		if err := rt.StopPod(ctx, "default", name, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkCtrRun measures `ctr run -d` of the busybox image: the same
// work as a pod start without gitorch's namespaces and network, plus the
// start of the ctr process itself.
func BenchmarkCtrRun(b *testing.B) {
	n := newNode(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		id := fmt.Sprintf("ctr-%d", i)
		cmd := n.CD.CtrRun(b, applytest.BusyboxRef, id, "sleep", "3600")
		b.StartTimer()
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("ctr run: %v\n%s", err, out)
		}
		b.StopTimer()
		n.CD.RemoveContainer(b, id)
		b.StartTimer()
	}
}

// BenchmarkFiftyPods starts 50 one-container pods on one node, 8 at a
// time, and reports the time until all run and the p50/p99 of the single
// pods' start latencies.
func BenchmarkFiftyPods(b *testing.B) {
	const pods, parallel = 50, 8
	n := newNode(b)
	ctx := context.Background()
	var lat []time.Duration
	var total time.Duration
	for i := 0; i < b.N; i++ {
		var mu sync.Mutex
		var firstErr error
		sem := make(chan struct{}, parallel)
		var wg sync.WaitGroup
		start := time.Now()
		for p := 0; p < pods; p++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				t0 := time.Now()
				_, err := n.Runtime.RunPod(ctx, apply.PodSpec{Namespace: "default", Name: fmt.Sprintf("fifty-%d-%d", i, p),
					Containers: []apply.ContainerSpec{busybox("c", "exec sleep 3600")}})
				d := time.Since(t0)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				lat = append(lat, d)
			}()
		}
		wg.Wait()
		total += time.Since(start)
		if firstErr != nil {
			b.Fatal(firstErr)
		}
		b.StopTimer()
		all, err := n.Runtime.ListPods(ctx)
		if err != nil {
			b.Fatal(err)
		}
		running := 0
		for _, p := range all {
			if c, ok := p.Container("c"); ok && c.State == apply.StateRunning {
				running++
			}
		}
		if running != pods {
			b.Fatalf("%d of %d pods running", running, pods)
		}
		for _, p := range all {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := n.Runtime.StopPod(ctx, p.Namespace, p.Name, 0); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		b.StartTimer()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/all-50-running")
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms/pod")
	b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms/pod")
}
