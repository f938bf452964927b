package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers for in-process clusters on 127.0.0.1.

var testKey = []byte("0123456789abcdef0123456789abcdef")

// freePorts returns n ports free for both TCP and UDP on 127.0.0.1.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var keep []func()
	defer func() {
		for _, f := range keep {
			f()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			l.Close()
			continue
		}
		keep = append(keep, func() { l.Close(); u.Close() })
		ports = append(ports, port)
	}
	return ports
}

// logRecorder is a slog handler keeping records at info and above (all
// with GOSSIP_TEST_LOG=debug); GOSSIP_TEST_LOG set prints them.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || os.Getenv("GOSSIP_TEST_LOG") == "debug"
}
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		fmt.Fprintln(os.Stderr, b.String())
	}
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// find returns the first line containing every one of parts.
func (r *logRecorder) find(parts ...string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
next:
	for _, l := range r.lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		return l
	}
	return ""
}

type testNode struct {
	*Gossip
	cfg  Config
	logs *logRecorder
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

func nodeConfig(name string, port int, join ...string) Config {
	return Config{
		NodeName:      name,
		ClusterName:   "test",
		BindAddr:      "127.0.0.1",
		BindPort:      port,
		AdvertiseAddr: "127.0.0.1",
		Join:          join,
		Keys:          [][]byte{testKey},
		Timing:        LocalTiming(),
	}
}

// start creates and starts a node; it is shut down when the test ends.
func start(t testing.TB, cfg Config) *testNode {
	t.Helper()
	rec := &logRecorder{}
	cfg.Logger = slog.New(rec)
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown() })
	return &testNode{Gossip: g, cfg: cfg, logs: rec}
}

// eventually polls cond until it returns "" or the deadline passes; the
// last complaint is the failure message.
func eventually(t testing.TB, within time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memberStates maps each member's name to its state, as n sees them.
func memberStates(n *testNode) map[string]MemberState {
	out := map[string]MemberState{}
	for _, m := range n.Members() {
		out[m.Name] = m.State
	}
	return out
}

// allAlive says what is wrong if some node does not see exactly names,
// all alive.
func allAlive(nodes []*testNode) func() string {
	return func() string {
		for _, n := range nodes {
			ms := memberStates(n)
			alive := 0
			for _, st := range ms {
				if st == StateAlive {
					alive++
				}
			}
			if alive != len(nodes) || len(ms) != len(nodes) {
				return fmt.Sprintf("%s sees %d alive of %d members, want %d: %v", n.cfg.NodeName, alive, len(ms), len(nodes), ms)
			}
		}
		return ""
	}
}

// statesAgree says what is wrong if some node's view of some other node's
// state differs from that node's own.
func statesAgree(nodes []*testNode) func() string {
	return func() string {
		want := map[string]NodeState{}
		for _, n := range nodes {
			want[n.cfg.NodeName] = n.States()[n.cfg.NodeName]
		}
		for _, n := range nodes {
			got := n.States()
			for name, w := range want {
				if g := got[name]; !equalState(g, w) {
					return fmt.Sprintf("%s sees %s as %+v, want %+v", n.cfg.NodeName, name, g, w)
				}
			}
		}
		return ""
	}
}

func equalState(a, b NodeState) bool {
	if a.Node != b.Node || a.Revision != b.Revision || a.Refused != b.Refused || a.RefusedError != b.RefusedError || len(a.Pods) != len(b.Pods) {
		return false
	}
	for i := range a.Pods {
		if a.Pods[i] != b.Pods[i] {
			return false
		}
	}
	return true
}

// startCluster starts n nodes, each joining all the others and itself.
func startCluster(t testing.TB, n int, timing Timing) []*testNode {
	t.Helper()
	ports := freePorts(t, n)
	var join []string
	for _, p := range ports {
		join = append(join, addr(p))
	}
	nodes := make([]*testNode, n)
	for i := range n {
		cfg := nodeConfig(fmt.Sprintf("n%02d", i), ports[i], join...)
		cfg.Timing = timing
		nodes[i] = start(t, cfg)
	}
	return nodes
}
