package e2e_test

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkNodeDeath measures how long a user waits for the pods of a
// dead node: from the kill -9 of one agent of three (its link cut too)
// until containerd runs all 6 pods on the survivors (s-to-running), and
// until both survivors report them Running and ready (s-to-reported),
// with the default gossip profile (lan) and node-dead grace (3 s). One
// cluster per iteration; run it with -benchtime 1x -count N for N
// figures.
func BenchmarkNodeDeath(b *testing.B) {
	var started, reported time.Duration
	for i := 0; i < b.N; i++ {
		c, before, _ := startSpread(b, Options{})
		f := killAndWait(b, c, c.Node("n3"), before)
		b.Logf("n3 killed: its pods run on n1 and n2 after %v, reported Running and ready by both after %v",
			f.Started.Round(time.Millisecond), f.Reported.Round(time.Millisecond))
		started += f.Started
		reported += f.Reported
	}
	b.ReportMetric(started.Seconds()/float64(b.N), "s-to-running")
	b.ReportMetric(reported.Seconds()/float64(b.N), "s-to-reported")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkAgentRSS measures the agents' resident memory (VmRSS) in a
// cluster of three, idle, then running 50 busybox pods each.
func BenchmarkAgentRSS(b *testing.B) {
	for i := 0; i < b.N; i++ {
		c := NewCluster(b, Options{})
		c.Commit("a config map", map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n"})
		c.Start()
		c.AliveMembers(c.Members(), []string{"n1", "n2", "n3"}, 60*time.Second)
		time.Sleep(5 * time.Second) // past start-up
		idle := rss(b, c)
		c.Commit("150 pods", map[string]string{"many.yaml": deployment("many", 150)})
		start := time.Now()
		c.AgreeOn(c.Members(), "many-", 150, 10*time.Minute, func(p Placement) string {
			per := p.PerNode()
			for _, n := range []string{"n1", "n2", "n3"} {
				if per[n] != 50 {
					return fmt.Sprintf("not 50 pods on each node: %v", per)
				}
			}
			return ""
		})
		b.Logf("150 pods Running and ready, 50 on each node, %v after the commit", time.Since(start).Round(time.Second))
		time.Sleep(5 * time.Second)
		busy := rss(b, c)
		b.Logf("agent VmRSS, MiB: idle %v, with 50 pods each %v", mib(idle), mib(busy))
		b.ReportMetric(median(idle)/(1<<20), "MiB-idle")
		b.ReportMetric(median(busy)/(1<<20), "MiB-50pods")
		b.ReportMetric(0, "ns/op")
	}
}

func rss(b *testing.B, c *Cluster) []int64 {
	var out []int64
	for _, n := range c.Members() {
		v, err := VmRSS(n.PID())
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func mib(v []int64) []string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.1f", float64(x)/(1<<20)))
	}
	return s
}

func median(v []int64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return float64(s[len(s)/2])
}
