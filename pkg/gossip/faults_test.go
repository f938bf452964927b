package gossip

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// faultTransport wraps a node's transport to cut it off (a paused process:
// nothing in, nothing out), to cut it from some peers (UDP both ways, and
// its dials), or to lose a share of its packets.
type faultTransport struct {
	memberlist.Transport
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once

	paused atomic.Bool
	loss   atomic.Uint32 // packets lost per thousand, each way

	mu  sync.Mutex
	cut map[string]bool // peer addresses, HOST:PORT
}

var errPaused = errors.New("fault injection: peer unreachable")

func newFaultTransport(inner memberlist.Transport) *faultTransport {
	f := &faultTransport{
		Transport: inner,
		packets:   make(chan *memberlist.Packet),
		streams:   make(chan net.Conn),
		done:      make(chan struct{}),
	}
	go func() {
		for {
			select {
			case <-f.done:
				return
			case p := <-inner.PacketCh():
				if f.drop() || f.isCut(p.From.String()) {
					continue
				}
				select {
				case f.packets <- p:
				case <-f.done:
					return
				}
			case c := <-inner.StreamCh():
				if f.paused.Load() {
					c.Close()
					continue
				}
				select {
				case f.streams <- c:
				case <-f.done:
					c.Close()
					return
				}
			}
		}
	}()
	return f
}

func (f *faultTransport) drop() bool {
	if f.paused.Load() {
		return true
	}
	l := f.loss.Load()
	return l > 0 && rand.Uint32N(1000) < l
}

// cutFrom stops all traffic with the peer at addr (or, on false, lets it
// through again).
func (f *faultTransport) cutFrom(addr string, cut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut == nil {
		f.cut = map[string]bool{}
	}
	f.cut[addr] = cut
}

func (f *faultTransport) isCut(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[addr]
}

func (f *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if f.drop() || f.isCut(addr) {
		return time.Now(), nil // lost on the way
	}
	return f.Transport.WriteTo(b, addr)
}

func (f *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if f.paused.Load() || f.isCut(addr) {
		return nil, errPaused
	}
	return f.Transport.DialTimeout(addr, timeout)
}

func (f *faultTransport) PacketCh() <-chan *memberlist.Packet { return f.packets }
func (f *faultTransport) StreamCh() <-chan net.Conn           { return f.streams }

// Shutdown shuts the inner transport down, then stops forwarding: the
// inner transport's listeners hand over what they read before they stop,
// and block until it is taken (memberlist keeps reading until its
// transport is down).
func (f *faultTransport) Shutdown() error {
	err := f.Transport.Shutdown()
	f.once.Do(func() { close(f.done) })
	return err
}

// withFaults makes cfg's node use a faultTransport, returned.
func withFaults(cfg *Config) func() *faultTransport {
	var mu sync.Mutex
	var ft *faultTransport
	cfg.wrapTransport = func(t memberlist.Transport) memberlist.Transport {
		mu.Lock()
		defer mu.Unlock()
		ft = newFaultTransport(t)
		return ft
	}
	return func() *faultTransport {
		mu.Lock()
		defer mu.Unlock()
		return ft
	}
}

// A member back from the dead gets, at once, the states that changed while
// it was away (and gives its own), rather than at the next push/pull: a
// node deciding where a StatefulSet pod may start must not act on what a
// returning peer said before it left.
func TestReturningMemberGetsStatesAtOnce(t *testing.T) {
	timing := LocalTiming()
	timing.PushPullInterval = time.Hour // only the exchange on return can carry it
	nodes, faults, ports := faultyCluster(t, 3, timing)
	cut := faults[2]()
	cut.paused.Store(true)
	eventually(t, 20*time.Second, func() string {
		if st := memberStates(nodes[0])["n2"]; st != StateDead {
			return "n0 sees n2 " + string(st)
		}
		return ""
	})
	// While n2 is away, n0's pods change; n2's change too.
	nodes[0].SetLocalState(NodeState{Revision: strings.Repeat("a", 40), Pods: []PodStatus{pod("db-0", "Running", true)}})
	nodes[2].SetLocalState(NodeState{Revision: strings.Repeat("a", 40), Pods: []PodStatus{pod("db-1", "Running", true)}})
	time.Sleep(3 * timing.GossipInterval * time.Duration(timing.RetransmitMult))
	cut.paused.Store(false)
	// n2 rejoins through n1 alone (its joiner or an operator would):
	// n0 hears from gossip that n2 is back, and must exchange states
	// with it at once.
	if _, err := nodes[2].ml.Join([]string{addr(ports[1])}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, allAlive(nodes))
	eventually(t, 10*time.Second, statesAgree(nodes))
}

// faultyCluster starts n nodes with timing, each naming all in its join
// list and each on a faultTransport (returned by faults[i]()), and waits
// until they are all alive.
func faultyCluster(t *testing.T, n int, timing Timing) (nodes []*testNode, faults []func() *faultTransport, ports []int) {
	t.Helper()
	ports = freePorts(t, n)
	var join []string
	for _, p := range ports {
		join = append(join, addr(p))
	}
	for i, p := range ports {
		cfg := nodeConfig(fmt.Sprintf("n%d", i), p, join...)
		cfg.Timing = timing
		faults = append(faults, withFaults(&cfg))
		nodes = append(nodes, start(t, cfg))
	}
	eventually(t, 10*time.Second, allAlive(nodes))
	return nodes, faults, ports
}
