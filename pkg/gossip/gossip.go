package gossip

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemberState is a member's state as this node sees it.
type MemberState string

// The states of a member. Suspect is not dead: a suspect node may refute
// and come back alive. Left is a node that said goodbye (Leave); dead one
// that stopped answering.
const (
	StateAlive   MemberState = "alive"
	StateSuspect MemberState = "suspect"
	StateDead    MemberState = "dead"
	StateLeft    MemberState = "left"
)

// Member is one node of the cluster as seen from here.
type Member struct {
	Name  string
	Addr  netip.AddrPort // gossip address
	State MemberState
	Meta  Meta
	// Since is when this node saw State begin (to within a probe interval
	// for suspect, which memberlist does not announce).
	Since time.Time
	Self  bool
}

// Gossip is this node's membership of the cluster. Its methods are safe
// for concurrent use.
type Gossip struct {
	cfg Config
	log *slog.Logger

	meta      atomic.Pointer[[]byte] // encoded, for memberlist
	metaMu    sync.Mutex             // serialises SetMeta
	numActive atomic.Int32           // alive and suspect members, for the queue

	mu      sync.Mutex // guards members, store, repair, suspected, pinging
	members map[string]*Member
	store   *store
	// suspected holds, for each member shown suspect, when this node's
	// probes of it last failed; pinging the suspects being pinged.
	suspected map[string]time.Time
	pinging   map[string]bool
	repair    map[string]time.Time // dead members heard from, and when last repaired
	leaving   map[string]uint64    // members that announced they leave, at which version
	left      bool                 // this node called Leave
	// published is set by the first SetLocalState: until then this
	// node's state is sent to no one, so that peers keep what its
	// previous run told them (a restarted daemon has not yet found what
	// runs) rather than an empty state.
	published bool

	queue *queue
	// localMu serialises changes of this node's state with their
	// broadcast, so that a newer state is never queued before an older
	// one (which would then replace it).
	localMu sync.Mutex
	// direct holds this node's own state messages not yet sent straight
	// to every member; directCh wakes the sender.
	directMu sync.Mutex
	direct   map[string]*broadcast
	directCh chan struct{}
	ml       *memberlist.Memberlist
	changeCh chan struct{}
	syncQ    chan string // members to exchange full states with
	maxBcast int

	suspicionMaxMult int // memberlist's SuspicionMaxTimeoutMult

	warnMu   sync.Mutex
	lastWarn map[string]time.Time

	started  atomic.Bool
	stopOnce sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New checks cfg and prepares a node; Start makes it take part.
func New(cfg Config) (*Gossip, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Join = slices.Clone(cfg.Join)
	meta, _ := encodeMeta(cfg.Meta)
	g := &Gossip{
		cfg:       cfg,
		log:       cfg.Logger,
		members:   map[string]*Member{},
		store:     newStore(cfg.NodeName, uint64(time.Now().UnixNano()), time.Now),
		repair:    map[string]time.Time{},
		suspected: map[string]time.Time{},
		pinging:   map[string]bool{},
		leaving:   map[string]uint64{},
		changeCh:  make(chan struct{}, 1),
		syncQ:     make(chan string, 256),
		lastWarn:  map[string]time.Time{},
		// What is left of a UDP packet (1400 bytes) after memberlist's
		// label, encryption and compound headers, with a margin.
		maxBcast: 1400 - 128 - len(cfg.ClusterName),
	}
	g.meta.Store(&meta)
	g.direct = map[string]*broadcast{}
	g.directCh = make(chan struct{}, 1)
	g.queue = newQueue(cfg.Timing.RetransmitMult, func() int { return int(g.numActive.Load()) })
	return g, nil
}

// Start creates the memberlist (binding the gossip port) and, when
// cfg.Join is not empty, joins in the background: attempts are retried with
// a growing delay (up to Timing.JoinBackoffMax) for as long as no other
// member is alive, so that nodes may start in any order and a node that
// lost every peer tries again. The context bounds the background work;
// Shutdown stops it too.
func (g *Gossip) Start(ctx context.Context) error {
	if !g.started.CompareAndSwap(false, true) {
		return errors.New("gossip: already started")
	}
	c := g.cfg
	t := c.Timing
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.NodeName
	mc.Label = c.ClusterName
	mc.BindAddr, mc.BindPort = c.BindAddr, c.BindPort
	mc.AdvertiseAddr, mc.AdvertisePort = c.AdvertiseAddr, c.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort
	}
	mc.ProbeInterval, mc.ProbeTimeout = t.ProbeInterval, t.ProbeTimeout
	mc.SuspicionMult = t.SuspicionMult
	g.suspicionMaxMult = mc.SuspicionMaxTimeoutMult
	mc.GossipInterval, mc.GossipNodes = t.GossipInterval, t.GossipNodes
	mc.RetransmitMult = t.RetransmitMult
	mc.PushPullInterval = t.PushPullInterval
	mc.GossipToTheDeadTime = t.GossipToTheDead
	mc.TCPTimeout = t.TCPTimeout
	if len(c.Keys) > 0 {
		kr, err := memberlist.NewKeyring(c.Keys, c.Keys[0])
		if err != nil {
			return fmt.Errorf("gossip: keyring: %w", err)
		}
		mc.Keyring = kr
	}
	mc.Delegate = (*delegate)(g)
	mc.Events = (*events)(g)
	mc.Ping = (*pingDelegate)(g)
	mc.Alive = (*aliveCheck)(g)
	mc.Merge = (*mergeCheck)(g)
	mc.Logger = log.New(&logWriter{g: g}, "", 0)
	if c.wrapTransport != nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{c.BindAddr}, BindPort: c.BindPort, Logger: mc.Logger})
		if err != nil {
			return fmt.Errorf("gossip: start on %s:%d: %w", c.BindAddr, c.BindPort, err)
		}
		mc.Transport = c.wrapTransport(nt)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("gossip: start on %s:%d: %w", c.BindAddr, c.BindPort, err)
	}
	g.ml = ml
	ctx, g.cancel = context.WithCancel(ctx)
	g.run(ctx, g.notifier)
	g.run(ctx, g.poller)
	g.run(ctx, g.syncer)
	g.run(ctx, g.sender)
	if len(c.Join) > 0 {
		g.run(ctx, g.joiner)
	}
	g.log.Info("gossip started", "node", c.NodeName, "cluster", c.ClusterName,
		"addr", ml.LocalNode().Address(), "encrypted", len(c.Keys) > 0, "join", c.Join)
	return nil
}

func (g *Gossip) run(ctx context.Context, f func(context.Context)) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f(ctx)
	}()
}

// Members returns every known member, this node included, sorted by name.
// Dead and left members are kept for Timing.Retain after their state began
// (an hour with LANTiming), then dropped along with their state.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		mm := *m
		mm.Meta.Labels = cloneLabels(m.Meta.Labels)
		out = append(out, mm)
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func cloneLabels(l map[string]string) map[string]string {
	if l == nil {
		return nil
	}
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

// SetMeta replaces this node's metadata and announces it. It returns an
// error wrapping ErrMetaTooLarge when the encoding exceeds MetaMaxSize, and
// an error when the pod CIDR overlaps an alive member's.
func (g *Gossip) SetMeta(m Meta) error {
	b, err := encodeMeta(m)
	if err != nil {
		return err
	}
	if m.PodCIDR.IsValid() {
		g.mu.Lock()
		other, otherCIDR := g.overlapping(g.cfg.NodeName, m.PodCIDR)
		g.mu.Unlock()
		if other != "" {
			return fmt.Errorf("gossip: pod CIDR %s of node %q overlaps %s of node %q", m.PodCIDR, g.cfg.NodeName, otherCIDR, other)
		}
	}
	g.metaMu.Lock()
	defer g.metaMu.Unlock()
	g.meta.Store(&b)
	if g.ml == nil {
		g.cfg.Meta = m
		return nil
	}
	// UpdateNode waits for the broadcast to go out; a timeout only means no
	// peer took it yet, and push/pull will carry it.
	if err := g.ml.UpdateNode(g.cfg.Timing.ProbeInterval * 5); err != nil {
		g.log.Debug("gossip: metadata update not yet sent", "err", err)
	}
	return nil
}

// SetLocalState replaces this node's state. Changes are broadcast: the
// whole state when it fits in one packet, else one message per changed pod.
// Until the first call this node sends no state of its own, so that a
// restarted node's peers keep what its previous run told them until it
// knows what it runs, instead of an empty state.
// Fields longer than the wire format carries are truncated (errors to 256
// bytes); at most 5000 pods are gossiped.
func (g *Gossip) SetLocalState(s NodeState) {
	s, warns := normalize(s)
	for _, w := range warns {
		g.warn("state:"+w, "gossip: local state: "+w)
	}
	g.localMu.Lock()
	g.mu.Lock()
	ch := g.store.setLocal(s)
	first := !g.published
	g.published = true
	g.mu.Unlock()
	switch {
	case first:
		// The whole state, even when it is the empty one it started
		// with: peers may hold this node's previous run's.
		g.broadcastOwn(true)
	case len(ch) > 0:
		g.broadcastChanges(ch)
	}
	g.localMu.Unlock()
	if first || len(ch) > 0 {
		g.changed()
	}
}

// States returns the latest state of every member as known here, keyed by
// node name, this node's included once SetLocalState was called. A member
// that never sent one has none.
func (g *Gossip) States() map[string]NodeState {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]NodeState, len(g.members))
	for name := range g.members {
		if name == g.cfg.NodeName && !g.published {
			continue
		}
		if ns, ok := g.store.stateOf(name); ok {
			out[name] = ns
		}
	}
	return out
}

// Leave tells the cluster this node is leaving and waits up to timeout for
// the message to go out; peers then show it as left. Call Shutdown after.
//
// memberlist tells its peers' delegates of a departure without saying
// whether the node left or failed, so the node first broadcasts that it is
// leaving on the state channel, and waits (up to half of timeout) for that
// message to have gone out.
func (g *Gossip) Leave(timeout time.Duration) error {
	if g.ml == nil {
		return errors.New("gossip: not started")
	}
	deadline := time.Now().Add(timeout)
	g.mu.Lock()
	g.left = true
	v := g.store.cur
	g.mu.Unlock()
	done := make(chan struct{})
	g.announce(&broadcast{name: g.cfg.NodeName + "\x00leave", msg: encodeLeave(g.cfg.NodeName, v), done: done})
	if g.othersActive() > 0 {
		select {
		case <-done:
		case <-time.After(timeout / 2):
		}
	}
	if err := g.ml.Leave(max(time.Until(deadline), 0)); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops gossiping without telling anyone: peers will find this
// node suspect, then dead. It is safe to call more than once.
func (g *Gossip) Shutdown() error {
	var err error
	g.stopOnce.Do(func() {
		if g.cancel != nil {
			g.cancel()
		}
		if g.ml != nil {
			err = g.ml.Shutdown()
		}
		g.wg.Wait()
	})
	return err
}

// changed schedules a call of OnChange.
func (g *Gossip) changed() {
	select {
	case g.changeCh <- struct{}{}:
	default:
	}
}

func (g *Gossip) notifier(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.changeCh:
			if g.cfg.OnChange != nil {
				g.cfg.OnChange()
			}
		}
	}
}

// othersActive counts the alive and suspect members other than this node.
func (g *Gossip) othersActive() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, m := range g.members {
		if !m.Self && (m.State == StateAlive || m.State == StateSuspect) {
			n++
		}
	}
	return n
}

func (g *Gossip) joiner(ctx context.Context) {
	t := g.cfg.Timing
	backoff := t.ProbeInterval
	var lastErr string
	for {
		wait := t.PushPullInterval
		if g.othersActive() == 0 {
			// Every peer named is contacted: stopping at the first answer
			// lets a cluster started all at once split into groups that
			// never merge.
			n, err := g.ml.Join(g.cfg.Join)
			switch {
			case g.othersActive() > 0:
				g.log.Info("gossip: joined", "node", g.cfg.NodeName, "contacted", n, "members", g.ml.NumMembers())
				backoff, lastErr = t.ProbeInterval, ""
			default:
				msg := "no other node answered"
				if err != nil {
					msg = err.Error()
					if strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset") {
						// A peer that drops the stream at once did not take
						// this node's label or key.
						msg += " (the peers closed the connection: do they have another cluster name (--cluster-name), or another gossip key?)"
					}
				}
				if msg != lastErr {
					g.log.Info("gossip: join failed, retrying", "node", g.cfg.NodeName, "join", g.cfg.Join, "err", msg)
					lastErr = msg
				}
				// Jitter spreads the attempts of nodes started together.
				wait = backoff/2 + rand.N(backoff/2+1)
				backoff = min(2*backoff, t.JoinBackoffMax)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// poller ends suspicions that no longer hold, forgets members past
// Timing.Retain, and repairs stale deaths (see repairDead).
func (g *Gossip) poller(ctx context.Context) {
	t := time.NewTicker(g.cfg.Timing.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.pingSuspects()
		g.expireSuspects()
		g.prune()
		g.repairDead()
	}
}

// Suspicion. memberlist neither announces that it suspects a member nor
// that the member refuted (it only reports deaths and rejoins), so this
// node shows a member suspect from the moment its own probes of it failed
// until one of:
//   - memberlist reports the member dead, left or alive again (an event);
//   - the member answers a direct ping, or one of memberlist's probes;
//   - no death came within the longest suspicion memberlist can hold
//     (suspicionBound): memberlist would have declared it dead by then, so
//     the member refuted.
//
// The last rule matters under load and partial loss: a member reachable
// only through other nodes' indirect probes never answers a direct ping,
// and an earlier version showed it suspect for as long as that lasted,
// though memberlist held it alive.

// pingSuspects pings, each in a goroutine of its own, the members shown
// suspect that are not being pinged already.
func (g *Gossip) pingSuspects() {
	type target struct {
		name string
		addr netip.AddrPort
	}
	var ts []target
	g.mu.Lock()
	for _, m := range g.members {
		if m.State == StateSuspect && !g.pinging[m.Name] {
			g.pinging[m.Name] = true
			ts = append(ts, target{m.Name, m.Addr})
		}
	}
	g.mu.Unlock()
	for _, t := range ts {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			_, err := g.ml.Ping(t.name, net.UDPAddrFromAddrPort(t.addr))
			g.mu.Lock()
			delete(g.pinging, t.name)
			g.mu.Unlock()
			if err == nil {
				g.clearSuspect(t.name)
			}
		}()
	}
}

// expireSuspects ends the suspicions that memberlist must have resolved.
func (g *Gossip) expireSuspects() {
	now := time.Now()
	var ended []string
	g.mu.Lock()
	bound := g.suspicionBound()
	for name, at := range g.suspected {
		m := g.members[name]
		if m == nil || m.State != StateSuspect {
			delete(g.suspected, name)
			continue
		}
		if now.Sub(at) > bound {
			ended = append(ended, name)
		}
	}
	g.mu.Unlock()
	for _, name := range ended {
		g.log.Debug("gossip: suspicion ended without a death: the member refuted", "node", g.cfg.NodeName, "member", name)
		g.clearSuspect(name)
	}
}

// suspicionBound is the longest memberlist keeps a member suspect before
// declaring it dead (its suspicion timeout: SuspicionMult × max(1,
// log10 N) × ProbeInterval, times SuspicionMaxTimeoutMult when it expects
// confirmations from other nodes), with N the number of members known
// here, which is at least memberlist's, and a margin of two probe
// intervals for timers delayed by load. Called with g.mu held.
func (g *Gossip) suspicionBound() time.Duration {
	t := g.cfg.Timing
	n := max(len(g.members), 1)
	scale := max(1, math.Log10(float64(n)))
	d := time.Duration(float64(t.SuspicionMult) * scale * float64(t.ProbeInterval))
	// memberlist expects SuspicionMult-2 confirmations, and none when
	// fewer other nodes exist; without any it waits the minimum only.
	if k := t.SuspicionMult - 2; k >= 1 && n-2 >= k {
		d *= time.Duration(g.suspicionMaxMult)
	}
	return d + 2*t.ProbeInterval
}

// markSuspect records that this node's probes of name failed.
func (g *Gossip) markSuspect(name string) {
	now := time.Now()
	g.mu.Lock()
	m := g.members[name]
	ok := m != nil && m.State == StateAlive && !m.Self
	if ok {
		m.State, m.Since = StateSuspect, now
	}
	if m != nil && m.State == StateSuspect {
		g.suspected[name] = now
	}
	g.mu.Unlock()
	if ok {
		g.changed()
	}
}

// clearSuspect shows name alive again if it is shown suspect.
func (g *Gossip) clearSuspect(name string) {
	g.mu.Lock()
	m := g.members[name]
	ok := m != nil && m.State == StateSuspect
	if ok {
		m.State, m.Since = StateAlive, time.Now()
	}
	delete(g.suspected, name)
	g.mu.Unlock()
	if ok {
		g.changed()
	}
}

func (g *Gossip) prune() {
	now := time.Now()
	retain := g.cfg.Timing.Retain
	g.mu.Lock()
	for name, m := range g.members {
		if (m.State == StateDead || m.State == StateLeft) && now.Sub(m.Since) > retain && !m.Self {
			delete(g.members, name)
			delete(g.repair, name)
			g.store.forget(name)
		}
	}
	for name, v := range g.store.nodes {
		if g.members[name] == nil && now.Sub(v.seen) > retain {
			g.store.forget(name)
		}
	}
	g.mu.Unlock()
}

// repairDead handles the mass-restart trap of memberlist (issue #311): a
// node restarted with a fresh incarnation number is ignored by peers that
// hold it dead at a higher incarnation until the dead message reaches it,
// which may be never. Here a member we hold dead or left, but whose state
// messages still arrive with new versions, is alive: a push/pull with it
// shows it our view, it refutes with a higher incarnation, and everyone
// takes it back.
func (g *Gossip) repairDead() {
	now := time.Now()
	every := 5 * g.cfg.Timing.ProbeInterval
	var addrs []string
	g.mu.Lock()
	for name, last := range g.repair {
		m := g.members[name]
		if m == nil || m.State == StateAlive || m.State == StateSuspect {
			delete(g.repair, name)
			continue
		}
		if now.Sub(last) < every {
			continue
		}
		g.repair[name] = now
		addrs = append(addrs, m.Addr.String())
	}
	g.mu.Unlock()
	for _, a := range addrs {
		g.log.Debug("gossip: member held dead still sends state, syncing with it", "addr", a)
		if _, err := g.ml.Join([]string{a}); err != nil {
			g.log.Debug("gossip: repair sync failed", "addr", a, "err", err)
		}
	}
}

// heardFrom notes that node sent new state; called with g.mu held.
func (g *Gossip) heardFrom(node string) {
	if m := g.members[node]; m != nil && (m.State == StateDead || m.State == StateLeft) {
		if _, ok := g.repair[node]; !ok {
			g.repair[node] = time.Time{}
		}
	}
}

// overlapping returns an alive or suspect member other than name whose pod
// CIDR overlaps p; called with g.mu held.
func (g *Gossip) overlapping(name string, p netip.Prefix) (string, netip.Prefix) {
	var names []string
	for n, m := range g.members {
		if n != name && (m.State == StateAlive || m.State == StateSuspect) &&
			m.Meta.PodCIDR.IsValid() && m.Meta.PodCIDR.Overlaps(p) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "", netip.Prefix{}
	}
	slices.Sort(names)
	return names[0], g.members[names[0]].Meta.PodCIDR
}

// Broadcasting.

type broadcast struct {
	name string
	msg  []byte
	done chan struct{} // closed by Finished, if not nil
	once sync.Once
}

// Finished is called when b was sent its last time, or replaced.
func (b *broadcast) Finished() {
	if b.done != nil {
		b.once.Do(func() { close(b.done) })
	}
}

func snapshotName(node string) string { return node + "\x00*" }

func deltaName(d *delta) string {
	if d.isHeader {
		return d.origin + "\x00h"
	}
	return d.origin + "\x00p" + d.pod.key.ns + "/" + d.pod.key.name
}

// announce sends one of this node's own state messages: straight to every
// alive and suspect member (by the sender, one packet each), and by
// gossip, piggybacked on memberlist's messages, whence every node that
// finds it new relays it. The direct send is what bounds the delay: gossip
// alone, each message sent a few times by each node that took it, leaves a
// share of the nodes without it (about e^-RetransmitMult of them; tens of
// changes in a thousand in an 8-node test) until the next push/pull. The
// relays make up for a lost packet.
func (g *Gossip) announce(b *broadcast) {
	g.queue.add(b)
	g.sendDirect(b)
}

// sendDirect has the sender send b straight to every member.
func (g *Gossip) sendDirect(b *broadcast) {
	g.directMu.Lock()
	g.direct[b.name] = &broadcast{name: b.name, msg: b.msg}
	g.directMu.Unlock()
	select {
	case g.directCh <- struct{}{}:
	default:
	}
}

// sender sends the messages announce left, as they come: changes made
// while it sends are coalesced (a newer message replaces an older one of
// the same name), so a node whose state changes faster than it can send
// sends only its latest.
func (g *Gossip) sender(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.directCh:
		}
		g.directMu.Lock()
		pending := g.direct
		g.direct = map[string]*broadcast{}
		g.directMu.Unlock()
		var to []memberlist.Address
		g.mu.Lock()
		for _, m := range g.members {
			if !m.Self && (m.State == StateAlive || m.State == StateSuspect) {
				to = append(to, memberlist.Address{Addr: m.Addr.String(), Name: m.Name})
			}
		}
		g.mu.Unlock()
		for _, b := range pending {
			for _, a := range to {
				if ctx.Err() != nil {
					return
				}
				if err := g.ml.SendToAddress(a, b.msg); err != nil {
					g.log.Debug("gossip: direct state send failed", "to", a.Name, "err", err)
				}
			}
		}
	}
}

// broadcastOwn announces this node's whole state: in one message when it
// fits in a packet, else every entry of it, by gossip only (at start, when
// no member is known yet, or after a refutation; a direct send of every
// pod to every member would be a flood, and push/pull carries it too).
// Called with g.localMu held.
func (g *Gossip) broadcastOwn(all bool) {
	g.mu.Lock()
	sn := g.store.snapshotOf(g.cfg.NodeName)
	g.mu.Unlock()
	msg := encodeSnapshots([]*snapshot{sn})
	if len(msg) <= g.maxBcast {
		g.announce(&broadcast{name: snapshotName(sn.node), msg: msg})
		return
	}
	if !all {
		return
	}
	g.queueDelta(&delta{origin: sn.node, v: sn.hv, isHeader: true, hdr: sn.hdr}, false)
	for _, e := range sn.pods {
		g.queueDelta(&delta{origin: sn.node, v: e.v, pod: e}, false)
	}
}

// queueDelta queues d for gossip, and for a direct send if direct is set.
func (g *Gossip) queueDelta(d *delta, direct bool) {
	msg := encodeDelta(d)
	if len(msg) > g.maxBcast {
		return // push/pull carries it
	}
	b := &broadcast{name: deltaName(d), msg: msg}
	g.queue.add(b)
	if direct {
		g.sendDirect(b)
	}
}

// broadcastChanges announces the changes ch of this node's state; called
// with g.localMu held.
func (g *Gossip) broadcastChanges(ch []change) {
	g.mu.Lock()
	sn := g.store.snapshotOf(g.cfg.NodeName)
	cur := g.store.cur
	var ds []*delta
	own := g.store.own()
	var prev uint64
	if len(ch) == 1 {
		prev = cur - 1
	}
	for _, c := range ch {
		d := &delta{origin: g.cfg.NodeName, v: cur, prev: prev}
		switch it, ok := own.pods[c.key]; {
		case c.header:
			d.isHeader, d.hdr = true, own.hdr
		case ok:
			d.pod = podEntry{key: c.key, v: cur, pod: it.pod}
		default:
			d.pod = podEntry{key: c.key, v: cur, del: true}
		}
		ds = append(ds, d)
	}
	g.mu.Unlock()
	if msg := encodeSnapshots([]*snapshot{sn}); len(msg) <= g.maxBcast {
		g.announce(&broadcast{name: snapshotName(sn.node), msg: msg})
		return
	}
	for _, d := range ds {
		g.queueDelta(d, true)
	}
}

// refute moves this node's version past v, heard from a peer about this
// node's previous run, and announces the state again.
func (g *Gossip) refute(v uint64) {
	g.localMu.Lock()
	defer g.localMu.Unlock()
	g.mu.Lock()
	g.store.restamp(v)
	published := g.published
	g.mu.Unlock()
	if !published {
		return // SetLocalState will announce it
	}
	g.log.Info("gossip: peers hold a newer state of this node (from an earlier run); re-announcing", "node", g.cfg.NodeName)
	g.broadcastOwn(true)
}

// receive applies a state message from a peer, and relays it if it was
// news.
func (g *Gossip) receive(msg []byte, relay bool) {
	if len(msg) == 0 {
		return
	}
	var taken, changed bool
	var refute uint64
	var name string
	switch msg[0] {
	case msgDelta:
		d, err := decodeDelta(msg)
		if err != nil {
			g.log.Debug("gossip: dropping bad message", "err", err)
			return
		}
		g.mu.Lock()
		taken, changed, refute = g.store.applyDelta(d)
		if taken {
			g.heardFrom(d.origin)
		}
		g.mu.Unlock()
		name = deltaName(d)
	case msgSnapshot:
		sns, err := decodeSnapshots(msg)
		if err != nil {
			g.log.Debug("gossip: dropping bad message", "err", err)
			return
		}
		g.mu.Lock()
		for _, sn := range sns {
			t, c, r := g.store.mergeSnapshot(sn)
			taken, changed, refute = taken || t, changed || c, max(refute, r)
			if t {
				g.heardFrom(sn.node)
			}
		}
		g.mu.Unlock()
		if len(sns) == 1 {
			name = snapshotName(sns[0].node)
		} else {
			relay = false
		}
	case msgLeave:
		origin, v, err := decodeLeave(msg)
		if err != nil {
			g.log.Debug("gossip: dropping bad message", "err", err)
			return
		}
		g.mu.Lock()
		taken = g.noteLeaving(origin, v)
		g.mu.Unlock()
		changed = taken
		name = origin + "\x00leave"
	default:
		return
	}
	if taken && relay {
		g.queue.add(&broadcast{name: name, msg: bytes.Clone(msg)})
	}
	if refute != 0 {
		g.refute(refute)
	}
	if changed {
		g.changed()
	}
}

// noteLeaving records that origin announced, at version v, that it leaves;
// called with g.mu held. An announcement older than the node's latest state
// is from an earlier run and ignored.
func (g *Gossip) noteLeaving(origin string, v uint64) bool {
	if origin == g.cfg.NodeName {
		return false
	}
	if old, ok := g.leaving[origin]; ok && old >= v {
		return false
	}
	if sv := g.store.nodes[origin]; sv != nil && max(sv.complete, sv.hv) > v {
		return false
	}
	if len(g.leaving) >= maxNodes {
		return false
	}
	g.leaving[origin] = v
	if m := g.members[origin]; m != nil && m.State == StateDead {
		m.State = StateLeft
	}
	return true
}

// memberlist delegates. They are called by memberlist, some with its node
// lock held, so they never call back into memberlist.

type delegate Gossip

func (d *delegate) NodeMeta(limit int) []byte {
	b := *(*Gossip)(d).meta.Load()
	if len(b) > limit {
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg(b []byte) { (*Gossip)(d).receive(b, true) }

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.get(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte {
	g := (*Gossip)(d)
	g.mu.Lock()
	sns := make([]*snapshot, 0, len(g.store.nodes))
	for name := range g.store.nodes {
		if name == g.cfg.NodeName && !g.published {
			continue
		}
		sns = append(sns, g.store.snapshotOf(name))
	}
	g.mu.Unlock()
	return encodeSnapshots(sns)
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	(*Gossip)(d).receive(buf, false)
}

type events Gossip

func (e *events) update(n *memberlist.Node, st MemberState) {
	g := (*Gossip)(e)
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		g.log.Debug("gossip: member with undecodable metadata", "node", n.Name, "err", err)
	}
	addr, _ := netip.AddrFromSlice(n.Addr)
	g.mu.Lock()
	m := g.members[n.Name]
	if m == nil {
		m = &Member{Name: n.Name, Self: n.Name == g.cfg.NodeName}
		g.members[n.Name] = m
	}
	back := !m.Self && st == StateAlive && (m.State == "" || m.State == StateDead || m.State == StateLeft)
	if m.State != st {
		m.State, m.Since = st, time.Now()
	}
	// memberlist's word ends a suspicion of this node's own.
	delete(g.suspected, n.Name)
	m.Addr = netip.AddrPortFrom(addr.Unmap(), n.Port)
	m.Meta = meta
	active := 0
	for _, m := range g.members {
		if m.State == StateAlive || m.State == StateSuspect {
			active++
		}
	}
	g.numActive.Store(int32(active))
	syncAddr := m.Addr.String()
	g.mu.Unlock()
	if back {
		// A member that is new, or back from the dead, missed what was
		// broadcast before this node knew it (and this node what it
		// broadcast meanwhile): exchange full states with it now rather
		// than at the next push/pull, up to a minute away.
		select {
		case g.syncQ <- syncAddr:
		default:
		}
	}
	g.changed()
}

// syncer exchanges full states (memberlist's push/pull, through Join)
// with the members update queued, one at a time.
func (g *Gossip) syncer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case addr := <-g.syncQ:
			if _, err := g.ml.Join([]string{addr}); err != nil {
				g.log.Debug("gossip: state exchange with a new member failed", "addr", addr, "err", err)
			}
		}
	}
}

func (e *events) NotifyJoin(n *memberlist.Node) {
	g := (*Gossip)(e)
	g.mu.Lock()
	delete(g.leaving, n.Name)
	g.mu.Unlock()
	e.update(n, StateAlive)
}

func (e *events) NotifyUpdate(n *memberlist.Node) { e.update(n, StateAlive) }

// NotifyLeave: memberlist does not fill in Node.State, so whether the node
// left or failed comes from its leave announcement.
func (e *events) NotifyLeave(n *memberlist.Node) {
	g := (*Gossip)(e)
	g.mu.Lock()
	_, announced := g.leaving[n.Name]
	st := StateDead
	if announced || n.Name == g.cfg.NodeName && g.left {
		st = StateLeft
	}
	g.mu.Unlock()
	e.update(n, st)
}

// pingDelegate hears of memberlist's successful probes: the member
// answered, so it is not suspect.
type pingDelegate Gossip

func (p *pingDelegate) AckPayload() []byte { return nil }

func (p *pingDelegate) NotifyPingComplete(n *memberlist.Node, _ time.Duration, _ []byte) {
	(*Gossip)(p).clearSuspect(n.Name)
}

// aliveCheck refuses a node whose pod CIDR overlaps an alive member's.
type aliveCheck Gossip

func (a *aliveCheck) NotifyAlive(n *memberlist.Node) error {
	g := (*Gossip)(a)
	if n.Name == g.cfg.NodeName {
		return nil
	}
	return g.checkPeer(n.Name, n.Meta, n.Address())
}

func (g *Gossip) checkPeer(name string, rawMeta []byte, addr string) error {
	meta, err := decodeMeta(rawMeta)
	if err != nil {
		g.warn("meta:"+name, "gossip: refused peer: undecodable metadata", "node", name, "peer", addr, "err", err)
		return fmt.Errorf("undecodable metadata: %w", err)
	}
	if !meta.PodCIDR.IsValid() {
		return nil
	}
	g.mu.Lock()
	other, otherCIDR := g.overlapping(name, meta.PodCIDR)
	g.mu.Unlock()
	if other == "" {
		return nil
	}
	err = fmt.Errorf("pod CIDR %s of node %q overlaps %s of node %q", meta.PodCIDR, name, otherCIDR, other)
	g.warn("cidr:"+name+":"+other, "gossip: refused peer: "+err.Error(),
		"node", name, "peer", addr, "cidr", meta.PodCIDR.String(), "other", other, "otherCIDR", otherCIDR.String())
	return err
}

// mergeCheck refuses to merge with a cluster that has a node whose pod CIDR
// overlaps one of ours (a join in either direction).
type mergeCheck Gossip

func (mc *mergeCheck) NotifyMerge(peers []*memberlist.Node) error {
	g := (*Gossip)(mc)
	for _, n := range peers {
		if n.Name == g.cfg.NodeName || n.State != memberlist.StateAlive {
			continue
		}
		if err := g.checkPeer(n.Name, n.Meta, n.Address()); err != nil {
			return err
		}
	}
	return nil
}

// warn logs a warning at most once per key every 30 seconds: refused peers
// retry, and every attempt would log.
func (g *Gossip) warn(key, msg string, args ...any) {
	now := time.Now()
	g.warnMu.Lock()
	last, ok := g.lastWarn[key]
	if ok && now.Sub(last) < 30*time.Second {
		g.warnMu.Unlock()
		return
	}
	if len(g.lastWarn) > 1024 {
		clear(g.lastWarn)
	}
	g.lastWarn[key] = now
	g.warnMu.Unlock()
	g.log.Warn(msg, args...)
}

// logWriter turns memberlist's log lines into slog records: refused peers
// (another cluster's label, a wrong or missing key) are warnings, the rest
// debug.
type logWriter struct{ g *Gossip }

var refusals = []struct{ match, reason string }{
	{"unacceptable label", "another cluster name (label)"},
	{"no installed keys could decrypt", "wrong encryption key"},
	{"encryption is configured but remote state is not encrypted", "peer does not encrypt"},
	{"remote state is encrypted and encryption is not configured", "peer encrypts, this node does not"},
	{"decrypt packet failed", "wrong encryption key or unencrypted peer"},
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := ""
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			level, line = line[1:i], strings.TrimSpace(line[i+1:])
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	lower := strings.ToLower(line)
	peer := ""
	if i := strings.LastIndex(line, "from="); i >= 0 {
		peer = strings.TrimSpace(line[i+len("from="):])
	}
	if rest, ok := strings.CutPrefix(line, "Suspect "); ok {
		if name, ok := strings.CutSuffix(rest, " has failed, no acks received"); ok {
			w.g.markSuspect(name)
		}
	}
	for _, r := range refusals {
		if strings.Contains(lower, r.match) {
			host := peer
			if h, _, err := net.SplitHostPort(peer); err == nil {
				host = h
			}
			w.g.warn("refusal:"+r.reason+":"+host, "gossip: refused peer: "+r.reason,
				"node", w.g.cfg.NodeName, "peer", peer, "detail", line)
			return len(p), nil
		}
	}
	w.g.log.Debug("memberlist: "+line, "level", level, "node", w.g.cfg.NodeName)
	return len(p), nil
}
