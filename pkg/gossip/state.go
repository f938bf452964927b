package gossip

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// PodStatus is what a node reports about one of its pods.
type PodStatus struct {
	Namespace, Name string
	Phase           string // Pending, Running, Succeeded, Failed, ...
	Ready           bool
	IP              string
	Restarts        int
	Revision        string // the commit the pod was made from
	TemplateHash    string
	LastError       string // truncated to 256 bytes
	Reason          string // a short machine-readable reason for Phase
	// ReadyContainers of Containers are ready (kubectl's READY, "1/2").
	// Both are at most 65535.
	ReadyContainers, Containers int
	// StartedAt is when the pod started (kubectl's AGE), to the second, in
	// UTC; the zero time when it has not.
	StartedAt time.Time
	// Workload is the object the pod belongs to, as "Kind/name"
	// ("Deployment/web"); truncated to 320 bytes.
	Workload string
}

// NodeState is what a node reports about itself: the revision it runs, the
// revision it refused (if any) and its pods.
type NodeState struct {
	Node         string
	Revision     string
	Refused      string // a revision this node refused
	RefusedError string // the first error, truncated to 256 bytes
	// SyncRequested counts the fetches asked of this node from outside
	// (webhooks, 'gitorch sync'): when it changes, peers fetch too.
	SyncRequested uint64
	Pods          []PodStatus
}

// Versioning. Each node stamps its own state with a version: a counter that
// starts at the wall clock in nanoseconds when the process starts (so a
// restarted node, whose state and counter were lost, still counts above
// everything its previous run sent) and grows by one per change. Every
// entry (the header: revisions; and each pod) carries the version at which
// it last changed; a removed pod becomes a tombstone with the version of
// its removal. A receiver keeps, per node, the entries and "complete": the
// version up to which its view has every change. An entry is taken when it
// is newer than the one held (or, if none is held, newer than complete:
// anything older that is absent was deleted). A full snapshot at version V
// (push/pull, or a small node's broadcast) deletes held entries it lacks
// whose version is at most V, then raises complete to V; tombstones at or
// below complete are dropped. Old messages therefore never overwrite newer
// ones, deletions propagate, and everyone converges on the origin's state.
// Should a node hear of its own state at a version above its counter (its
// clock went backwards across a restart), it jumps past it and re-stamps
// its state, as memberlist refutes a stale incarnation.

type podKey struct{ ns, name string }

func (k podKey) String() string { return k.ns + "/" + k.name }

type header struct {
	revision, refused, refusedErr string
	syncReq                       uint64
}

type item struct {
	v   uint64
	del bool
	pod PodStatus
}

type view struct {
	complete uint64
	hv       uint64
	hdr      header
	pods     map[podKey]item
	seen     time.Time
}

type store struct {
	self    string
	cur     uint64 // own version
	nodes   map[string]*view
	entries int
	now     func() time.Time
}

func newStore(self string, start uint64, now func() time.Time) *store {
	s := &store{self: self, cur: start, nodes: map[string]*view{}, now: now}
	s.nodes[self] = &view{complete: start, hv: start, pods: map[podKey]item{}, seen: now()}
	return s
}

func (s *store) own() *view { return s.nodes[s.self] }

// change is one entry of the local state that changed.
type change struct {
	header bool
	key    podKey
}

// setLocal replaces the node's own state and returns what changed.
func (s *store) setLocal(ns NodeState) []change {
	o := s.own()
	h := header{ns.Revision, ns.Refused, ns.RefusedError, ns.SyncRequested}
	next := s.cur + 1
	var ch []change
	if h != o.hdr {
		o.hdr, o.hv = h, next
		ch = append(ch, change{header: true})
	}
	seen := make(map[podKey]bool, len(ns.Pods))
	for _, p := range ns.Pods {
		k := podKey{p.Namespace, p.Name}
		seen[k] = true
		if cur, ok := o.pods[k]; ok && cur.pod == p {
			continue
		}
		if _, ok := o.pods[k]; !ok {
			s.entries++
		}
		o.pods[k] = item{v: next, pod: p}
		ch = append(ch, change{key: k})
	}
	for k := range o.pods {
		if !seen[k] {
			delete(o.pods, k)
			s.entries--
			ch = append(ch, change{key: k})
		}
	}
	if len(ch) > 0 {
		s.cur = next
		o.complete = next
		o.seen = s.now()
	}
	return ch
}

// restamp moves the own version past v and stamps every entry with it.
func (s *store) restamp(v uint64) {
	s.cur = max(s.cur, v) + 1
	o := s.own()
	o.complete, o.hv = s.cur, s.cur
	for k, it := range o.pods {
		it.v = s.cur
		o.pods[k] = it
	}
}

func (s *store) viewFor(node string) *view {
	v := s.nodes[node]
	if v == nil {
		if len(s.nodes) >= maxNodes {
			return nil
		}
		v = &view{pods: map[podKey]item{}}
		s.nodes[node] = v
	}
	return v
}

// takePod applies one pod entry; it reports whether it was taken and
// whether the visible state changed.
func (s *store) takePod(v *view, e podEntry) (taken, changed bool) {
	cur, ok := v.pods[e.key]
	if ok && e.v <= cur.v || !ok && e.v <= v.complete {
		return false, false
	}
	if e.del && e.v <= v.complete {
		// Already implied by complete.
		if ok {
			delete(v.pods, e.key)
			s.entries--
		}
		return true, ok && !cur.del
	}
	if !ok {
		if s.entries >= maxTotalEntries || len(v.pods) >= maxPodsPerNode {
			return false, false
		}
		s.entries++
	}
	v.pods[e.key] = item{v: e.v, del: e.del, pod: e.pod}
	was := ok && !cur.del
	return true, was != !e.del || !e.del && cur.pod != e.pod
}

// advance raises v's complete version to c, dropping tombstones it implies.
func (s *store) advance(v *view, c uint64) {
	if c <= v.complete {
		return
	}
	v.complete = c
	for k, it := range v.pods {
		if it.del && it.v <= c {
			delete(v.pods, k)
			s.entries--
		}
	}
}

// mergeSnapshot applies a node's full state. refute is non-zero when the
// snapshot is of this node itself and newer than its own version.
func (s *store) mergeSnapshot(sn *snapshot) (taken, changed bool, refute uint64) {
	if sn.node == s.self {
		if m := sn.maxVersion(); m > s.cur {
			return false, false, m
		}
		return false, false, 0
	}
	v := s.viewFor(sn.node)
	if v == nil {
		return false, false, 0
	}
	if sn.hv > v.hv {
		taken = true
		changed = changed || sn.hdr != v.hdr
		v.hdr, v.hv = sn.hdr, sn.hv
	}
	in := make(map[podKey]bool, len(sn.pods))
	for _, e := range sn.pods {
		in[e.key] = true
		t, c := s.takePod(v, e)
		taken, changed = taken || t, changed || c
	}
	if sn.complete > v.complete {
		taken = true
		for k, it := range v.pods {
			if !in[k] && it.v <= sn.complete {
				delete(v.pods, k)
				s.entries--
				changed = changed || !it.del
			}
		}
		s.advance(v, sn.complete)
	}
	if taken {
		v.seen = s.now()
	}
	return taken, changed, 0
}

// applyDelta applies one entry of a node's state.
func (s *store) applyDelta(d *delta) (taken, changed bool, refute uint64) {
	if d.origin == s.self {
		if d.v > s.cur {
			return false, false, d.v
		}
		return false, false, 0
	}
	v := s.viewFor(d.origin)
	if v == nil {
		return false, false, 0
	}
	if d.isHeader {
		if d.v > v.hv {
			taken, changed = true, d.hdr != v.hdr
			v.hdr, v.hv = d.hdr, d.v
		}
	} else {
		taken, changed = s.takePod(v, d.pod)
	}
	// A delta that is the only change after the version we are complete
	// at makes us complete at its version.
	if d.prev != 0 && d.prev == v.complete && d.v == d.prev+1 {
		s.advance(v, d.v)
	}
	if taken {
		v.seen = s.now()
	}
	return taken, changed, 0
}

// snapshotOf returns the state of node as held here, for sending.
func (s *store) snapshotOf(node string) *snapshot {
	v := s.nodes[node]
	if v == nil {
		return nil
	}
	sn := &snapshot{node: node, complete: v.complete, hv: v.hv, hdr: v.hdr, pods: make([]podEntry, 0, len(v.pods))}
	for k, it := range v.pods {
		sn.pods = append(sn.pods, podEntry{key: k, v: it.v, del: it.del, pod: it.pod})
	}
	slices.SortFunc(sn.pods, func(a, b podEntry) int {
		return cmp.Or(cmp.Compare(a.key.ns, b.key.ns), cmp.Compare(a.key.name, b.key.name))
	})
	return sn
}

// stateOf returns node's state as the API shows it.
func (s *store) stateOf(node string) (NodeState, bool) {
	v := s.nodes[node]
	if v == nil {
		return NodeState{}, false
	}
	ns := NodeState{Node: node, Revision: v.hdr.revision, Refused: v.hdr.refused, RefusedError: v.hdr.refusedErr, SyncRequested: v.hdr.syncReq}
	for _, it := range v.pods {
		if !it.del {
			ns.Pods = append(ns.Pods, it.pod)
		}
	}
	slices.SortFunc(ns.Pods, func(a, b PodStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return ns, true
}

// forget drops node's state.
func (s *store) forget(node string) {
	if node == s.self {
		return
	}
	if v := s.nodes[node]; v != nil {
		s.entries -= len(v.pods)
		delete(s.nodes, node)
	}
}

// normalize bounds a local state to what the wire format carries.
func normalize(ns NodeState) (NodeState, []string) {
	var warn []string
	out := NodeState{
		Revision:      truncate(ns.Revision, maxShortLen),
		Refused:       truncate(ns.Refused, maxShortLen),
		RefusedError:  truncate(ns.RefusedError, maxErrorLen),
		SyncRequested: ns.SyncRequested,
	}
	byKey := make(map[podKey]int, len(ns.Pods))
	for _, p := range ns.Pods {
		p.Namespace = truncate(p.Namespace, maxNameLen)
		p.Name = truncate(p.Name, maxNameLen)
		p.Phase = truncate(p.Phase, maxShortLen)
		p.IP = truncate(p.IP, maxShortLen)
		p.Revision = truncate(p.Revision, maxShortLen)
		p.TemplateHash = truncate(p.TemplateHash, maxShortLen)
		p.LastError = truncate(p.LastError, maxErrorLen)
		p.Reason = truncate(p.Reason, maxShortLen)
		p.Restarts = max(p.Restarts, 0)
		p.ReadyContainers = min(max(p.ReadyContainers, 0), maxContainers)
		p.Containers = min(max(p.Containers, 0), maxContainers)
		p.StartedAt = wireTime(p.StartedAt)
		p.Workload = truncate(p.Workload, maxWorkloadLen)
		k := podKey{p.Namespace, p.Name}
		if i, ok := byKey[k]; ok {
			warn = append(warn, fmt.Sprintf("pod %s listed twice; the last one is kept", k))
			out.Pods[i] = p
			continue
		}
		if len(out.Pods) >= maxPodsPerNode {
			warn = append(warn, fmt.Sprintf("%d pods, only the first %d are gossiped", len(ns.Pods), maxPodsPerNode))
			break
		}
		byKey[k] = len(out.Pods)
		out.Pods = append(out.Pods, p)
	}
	return out, warn
}

// truncate cuts s to at most n bytes at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Messages.

const (
	msgDelta    = 1
	msgSnapshot = 2
	msgLeave    = 3
)

const (
	kindHeader = 0
	kindPod    = 1
	kindPodDel = 2
)

type podEntry struct {
	key podKey
	v   uint64
	del bool
	pod PodStatus
}

type snapshot struct {
	node     string
	complete uint64
	hv       uint64
	hdr      header
	pods     []podEntry
}

func (sn *snapshot) maxVersion() uint64 {
	m := max(sn.complete, sn.hv)
	for _, e := range sn.pods {
		m = max(m, e.v)
	}
	return m
}

type delta struct {
	origin   string
	v, prev  uint64
	isHeader bool
	hdr      header
	pod      podEntry
}

func (w *writer) podFields(p PodStatus) {
	w.s(p.Phase)
	if p.Ready {
		w.byte(1)
	} else {
		w.byte(0)
	}
	w.s(p.IP)
	w.uvarint(uint64(p.Restarts))
	w.rev(p.Revision)
	w.s(p.TemplateHash)
	w.s(p.LastError)
	w.s(p.Reason)
	w.uvarint(uint64(p.ReadyContainers))
	w.uvarint(uint64(p.Containers))
	w.time(p.StartedAt)
	w.s(p.Workload)
}

func (r *reader) podFields(ns, name string) PodStatus {
	p := PodStatus{Namespace: ns, Name: name}
	p.Phase = r.s(maxShortLen)
	switch r.byte() {
	case 0:
	case 1:
		p.Ready = true
	default:
		r.fail(errors.New("bad ready flag"))
	}
	p.IP = r.s(maxShortLen)
	restarts := r.uvarint()
	if restarts > 1<<31 {
		r.fail(errors.New("restarts out of range"))
	}
	p.Restarts = int(restarts)
	p.Revision = r.rev()
	p.TemplateHash = r.s(maxShortLen)
	p.LastError = r.s(maxErrorLen)
	p.Reason = r.s(maxShortLen)
	ready, total := r.uvarint(), r.uvarint()
	if ready > maxContainers || total > maxContainers {
		r.fail(errors.New("container count out of range"))
	}
	p.ReadyContainers, p.Containers = int(ready), int(total)
	p.StartedAt = r.time()
	p.Workload = r.s(maxWorkloadLen)
	return p
}

func (w *writer) header(h header) {
	w.rev(h.revision)
	w.rev(h.refused)
	w.s(h.refusedErr)
	w.uvarint(h.syncReq)
}

func (r *reader) header() header {
	var h header
	h.revision = r.rev()
	h.refused = r.rev()
	h.refusedErr = r.s(maxErrorLen)
	h.syncReq = r.uvarint()
	return h
}

func encodeDelta(d *delta) []byte {
	w := writer{b: make([]byte, 0, 96)}
	w.byte(msgDelta)
	w.raw(d.origin)
	w.uvarint(d.v)
	w.uvarint(d.prev)
	switch {
	case d.isHeader:
		w.byte(kindHeader)
		w.header(d.hdr)
	case d.pod.del:
		w.byte(kindPodDel)
		w.raw(d.pod.key.ns)
		w.raw(d.pod.key.name)
	default:
		w.byte(kindPod)
		w.raw(d.pod.key.ns)
		w.raw(d.pod.key.name)
		w.podFields(d.pod.pod)
	}
	return w.b
}

func decodeDelta(b []byte) (*delta, error) {
	r := reader{b: b}
	if t := r.byte(); r.err == nil && t != msgDelta {
		return nil, fmt.Errorf("not a delta (type %d)", t)
	}
	d := &delta{origin: r.raw(maxNameLen)}
	d.v = r.uvarint()
	d.prev = r.uvarint()
	switch kind := r.byte(); kind {
	case kindHeader:
		d.isHeader = true
		d.hdr = r.header()
	case kindPod, kindPodDel:
		k := podKey{r.raw(maxNameLen), r.raw(maxNameLen)}
		d.pod = podEntry{key: k, v: d.v, del: kind == kindPodDel}
		if kind == kindPod {
			d.pod.pod = r.podFields(k.ns, k.name)
		}
	default:
		r.fail(fmt.Errorf("unknown entry kind %d", kind))
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("decode delta: %w", err)
	}
	if d.origin == "" || d.v == 0 {
		return nil, errors.New("decode delta: no origin or version")
	}
	return d, nil
}

// encodeSnapshots encodes the state of several nodes in one message, with
// one table of the strings they share.
func encodeSnapshots(sns []*snapshot) []byte {
	body := writer{tbl: map[string]uint64{}}
	body.uvarint(uint64(len(sns)))
	for _, sn := range sns {
		body.s(sn.node)
		body.uvarint(sn.complete)
		body.varint(int64(sn.hv - sn.complete))
		body.header(sn.hdr)
		body.uvarint(uint64(len(sn.pods)))
		for _, e := range sn.pods {
			body.varint(int64(e.v - sn.complete))
			body.s(e.key.ns)
			body.s(e.key.name)
			if e.del {
				body.byte(1)
				continue
			}
			body.byte(0)
			body.podFields(e.pod)
		}
	}
	n := 1 + 10 + len(body.b)
	for _, s := range body.str {
		n += 2 + len(s)
	}
	w := writer{b: make([]byte, 0, n)}
	w.byte(msgSnapshot)
	w.uvarint(uint64(len(body.str)))
	for _, s := range body.str {
		w.raw(s)
	}
	w.b = append(w.b, body.b...)
	return w.b
}

func decodeSnapshots(b []byte) ([]*snapshot, error) {
	r := reader{b: b}
	if t := r.byte(); r.err == nil && t != msgSnapshot {
		return nil, fmt.Errorf("not a snapshot (type %d)", t)
	}
	nstr := r.count(len(b), 1)
	tbl := make([]string, 0, nstr)
	for range nstr {
		tbl = append(tbl, r.raw(maxStringLen))
	}
	r.tbl = tbl
	nnodes := r.count(maxNodes, 4)
	sns := make([]*snapshot, 0, nnodes)
	for range nnodes {
		if r.err != nil {
			break
		}
		sn := &snapshot{node: r.s(maxNameLen)}
		sn.complete = r.uvarint()
		sn.hv = sn.complete + uint64(r.varint())
		sn.hdr = r.header()
		npods := r.count(maxPodsPerNode, 4)
		sn.pods = make([]podEntry, 0, npods)
		for range npods {
			e := podEntry{v: sn.complete + uint64(r.varint())}
			e.key = podKey{r.s(maxNameLen), r.s(maxNameLen)}
			switch r.byte() {
			case 0:
				e.pod = r.podFields(e.key.ns, e.key.name)
			case 1:
				e.del = true
			default:
				r.fail(errors.New("bad pod flag"))
			}
			if r.err != nil {
				break
			}
			sn.pods = append(sn.pods, e)
		}
		if sn.node == "" {
			r.fail(errors.New("snapshot without a node name"))
		}
		sns = append(sns, sn)
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	return sns, nil
}

// A leave message says that origin, whose state was at version v, leaves.
func encodeLeave(origin string, v uint64) []byte {
	w := writer{}
	w.byte(msgLeave)
	w.raw(origin)
	w.uvarint(v)
	return w.b
}

func decodeLeave(b []byte) (string, uint64, error) {
	r := reader{b: b}
	if t := r.byte(); r.err == nil && t != msgLeave {
		return "", 0, fmt.Errorf("not a leave message (type %d)", t)
	}
	origin := r.raw(maxNameLen)
	v := r.uvarint()
	if err := r.done(); err != nil {
		return "", 0, fmt.Errorf("decode leave: %w", err)
	}
	if origin == "" {
		return "", 0, errors.New("decode leave: no origin")
	}
	return origin, v, nil
}
