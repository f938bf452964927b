package node_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
)

// These tests run agents on real memberlist over 127.0.0.1 (encrypted,
// the fast timing profile), each with the in-memory runtime: the cluster's
// logic end to end in seconds, without root.

func freePort(t *testing.T) int {
	t.Helper()
	// memberlist binds TCP and UDP on the same port: find one free for both.
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type gossipNode struct {
	name string
	rt   *applytest.FakeRuntime
	g    *gossip.Gossip
	ag   *node.Agent
	stop func()
}

// startGossipCluster starts agents named names, joined through the first,
// sharing src.
func startGossipCluster(t *testing.T, src *memSource, key []byte, names ...string) map[string]*gossipNode {
	t.Helper()
	ports := map[string]int{}
	for _, n := range names {
		ports[n] = freePort(t)
	}
	out := map[string]*gossipNode{}
	for i, name := range names {
		n := &gossipNode{name: name, rt: applytest.NewFakeRuntime(nil)}
		var agent atomic.Pointer[node.Agent]
		meta := gossip.Meta{CPUMilli: 4000, MemoryBytes: 8 << 30, PodCIDR: netipPrefix(fmt.Sprintf("10.88.%d.0/24", i))}
		g, err := gossip.New(gossip.Config{
			NodeName: name, BindAddr: "127.0.0.1", BindPort: ports[name], AdvertiseAddr: "127.0.0.1",
			Join: []string{fmt.Sprintf("127.0.0.1:%d", ports[names[0]])}, Keys: [][]byte{key},
			// memberlist may still log from a goroutine ending after the
			// test: its logs go nowhere.
			Meta: meta, Timing: gossip.LocalTiming(), Logger: slog.New(slog.DiscardHandler),
			OnChange: func() {
				if a := agent.Load(); a != nil {
					a.ClusterChanged()
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ag, err := node.New(node.Config{
			Node:         plan.Node{Name: name, Allocatable: plan.Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}},
			Source:       src,
			Runtime:      n.rt,
			DataDir:      t.TempDir(),
			PollInterval: time.Hour,
			Resync:       time.Second,
			Logger:       testLogger(t),
			Cluster:      g,
			Meta:         meta,
			Membership:   plan.MembershipPolicy{DeadGrace: 500 * time.Millisecond, RejoinSettle: 2 * time.Second},
			Handoff:      plan.HandoffPolicy{Fence: time.Second},
		})
		if err != nil {
			t.Fatal(err)
		}
		agent.Store(ag)
		ctx, cancel := context.WithCancel(context.Background())
		if err := g.Start(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- ag.Run(ctx) }()
		var once sync.Once
		n.g, n.ag = g, ag
		n.stop = func() {
			once.Do(func() {
				cancel()
				<-done
				g.Shutdown()
			})
		}
		t.Cleanup(n.stop)
		out[name] = n
	}
	return out
}

func running(nodes map[string]*gossipNode) map[string]int {
	out := map[string]int{}
	for name, n := range nodes {
		pods, _ := n.rt.ListPods(context.Background())
		for _, p := range pods {
			if len(p.Containers) > 0 && p.Containers[0].State == "running" {
				out[name]++
			}
		}
	}
	return out
}

func TestGossipClusterSpreadsAgreesAndHeals(t *testing.T) {
	key, _ := gossip.GenerateKey()
	src := newMemSource()
	src.commit(web(6, "busybox:1.36"))
	nodes := startGossipCluster(t, src, decodeKey(t, key), "n1", "n2", "n3")
	waitForLong(t, 30*time.Second, "6 pods on 3 nodes", func() bool {
		r := running(nodes)
		return r["n1"]+r["n2"]+r["n3"] == 6 && r["n1"] > 0 && r["n2"] > 0 && r["n3"] > 0
	})
	waitForLong(t, 30*time.Second, "every node lists the same 6 pods with the same nodes", func() bool {
		var want string
		for _, n := range nodes {
			c := n.ag.Cluster()
			got := ""
			for _, p := range c.Pods {
				got += p.Name + "@" + p.Node + " "
			}
			if len(c.Pods) != 6 || (want != "" && got != want) {
				return false
			}
			want = got
		}
		return true
	})
	// n3 dies (its agent and gossip stop; its containers are gone with
	// the machine): its pods come back on n1 and n2.
	nodes["n3"].stop()
	delete(nodes, "n3")
	start := time.Now()
	waitForLong(t, 30*time.Second, "n3's pods on n1 and n2", func() bool {
		r := running(nodes)
		return r["n1"]+r["n2"] == 6
	})
	t.Logf("pods of the dead node running on the others after %v (local timing, grace 500ms)", time.Since(start).Round(10*time.Millisecond))
	for _, m := range nodes["n1"].ag.Cluster().Members {
		if m.Name == "n3" && m.Status != "dead" {
			t.Fatalf("n3 is %s, want dead", m.Status)
		}
	}
}

func TestGossipClusterRefusesABadRevisionEverywhere(t *testing.T) {
	key, _ := gossip.GenerateKey()
	src := newMemSource()
	good := src.commit(web(3, "busybox:1.36"))
	nodes := startGossipCluster(t, src, decodeKey(t, key), "n1", "n2", "n3")
	waitForLong(t, 30*time.Second, "3 pods, every node on the good revision", func() bool {
		for _, n := range nodes {
			if r := n.ag.Status().Running; r == nil || r.Commit != good {
				return false
			}
		}
		r := running(nodes)
		return r["n1"]+r["n2"]+r["n3"] == 3
	})
	bad := src.commit(map[string]string{"web.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: two}\n"})
	// Only n1 hears of it (its webhook); the others learn from gossip
	// that it refused it, and refuse it themselves when they fetch.
	defer func() {
		if t.Failed() {
			for _, m := range nodes["n2"].ag.Cluster().Members {
				t.Logf("%s: run %.8s refused %.8s %q", m.Name, m.Revision, m.Refused, m.RefusedError)
			}
		}
	}()
	nodes["n1"].ag.Sync()
	waitForLong(t, 10*time.Second, "every node refused the bad revision, as seen from n2", func() bool {
		c := nodes["n2"].ag.Cluster()
		refused := 0
		for _, m := range c.Members {
			if m.Refused == bad && m.Revision == good && m.RefusedError != "" {
				refused++
			}
		}
		return refused == 3
	})
	if r := running(nodes); r["n1"]+r["n2"]+r["n3"] != 3 {
		t.Fatalf("pods after the refusal: %v", r)
	}
}

func TestGossipClusterPeerRevisionIsFetchedAtOnce(t *testing.T) {
	key, _ := gossip.GenerateKey()
	src := newMemSource()
	src.commit(web(2, "busybox:1.36"))
	nodes := startGossipCluster(t, src, decodeKey(t, key), "n1", "n2")
	waitForLong(t, 30*time.Second, "2 pods", func() bool { r := running(nodes); return r["n1"]+r["n2"] == 2 })
	next := src.commit(web(4, "busybox:1.36"))
	// Only n1 is told; n2 polls every hour, yet follows within seconds.
	nodes["n1"].ag.Sync()
	waitForLong(t, 30*time.Second, "n2 runs the new revision", func() bool {
		r := nodes["n2"].ag.Status().Running
		return r != nil && r.Commit == next
	})
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func decodeKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitForLong polls cond (real time) until it holds, for at most d.
func waitForLong(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
