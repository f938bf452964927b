package gossip

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func newTestStore(self string, start uint64) *store {
	return newStore(self, start, func() time.Time { return time.Unix(0, 0) })
}

// exchange moves a's view of node to b by a snapshot.
func exchange(a, b *store, node string) {
	b.mergeSnapshot(a.snapshotOf(node))
}

func podsOf(s *store, node string) string {
	ns, _ := s.stateOf(node)
	var names []string
	for _, p := range ns.Pods {
		names = append(names, fmt.Sprintf("%s:%s", p.Name, p.Phase))
	}
	return strings.Join(names, ",")
}

func TestStoreDeltasInAnyOrder(t *testing.T) {
	origin := newTestStore("x", 100)
	var deltas []*delta
	set := func(pods ...PodStatus) {
		for _, c := range origin.setLocal(NodeState{Pods: pods}) {
			it, ok := origin.own().pods[c.key]
			d := &delta{origin: "x", v: origin.cur, pod: podEntry{key: c.key, v: origin.cur, del: !ok, pod: it.pod}}
			deltas = append(deltas, d)
		}
	}
	set(pod("a", "Pending", false))
	set(pod("a", "Running", true), pod("b", "Pending", false))
	set(pod("b", "Running", true)) // a deleted
	want := podsOf(origin, "x")
	if want != "b:Running" {
		t.Fatalf("origin has %s", want)
	}
	// Every order of delivery, including duplicates, ends the same.
	for _, order := range [][]int{{0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, {2, 0, 4, 1, 3}, {3, 0, 0, 4, 2, 1, 3}} {
		r := newTestStore("r", 1)
		for _, i := range order {
			r.applyDelta(deltas[i])
		}
		if got := podsOf(r, "x"); got != want {
			t.Errorf("order %v: %s, want %s", order, got, want)
		}
	}
}

func TestStoreSnapshotDeletesAndOldMessagesLose(t *testing.T) {
	origin := newTestStore("x", 100)
	r := newTestStore("r", 1)
	origin.setLocal(NodeState{Pods: []PodStatus{pod("a", "Running", true), pod("b", "Running", true)}})
	old := origin.snapshotOf("x")
	exchange(origin, r, "x")
	origin.setLocal(NodeState{Pods: []PodStatus{pod("b", "Failed", false)}})
	exchange(origin, r, "x")
	if got := podsOf(r, "x"); got != "b:Failed" {
		t.Fatalf("after deletion: %s", got)
	}
	// An old snapshot, or an old delta, changes nothing.
	if taken, changed, _ := r.mergeSnapshot(old); taken || changed {
		t.Errorf("old snapshot taken=%v changed=%v", taken, changed)
	}
	stale := &delta{origin: "x", v: 101, pod: podEntry{key: podKey{"default", "a"}, v: 101, pod: pod("a", "Running", true)}}
	if taken, _, _ := r.applyDelta(stale); taken {
		t.Error("old delta of a deleted pod taken")
	}
	if got := podsOf(r, "x"); got != "b:Failed" {
		t.Fatalf("after old messages: %s", got)
	}
	// Relayed through a third store, the same.
	third := newTestStore("t", 1)
	exchange(r, third, "x")
	if got := podsOf(third, "x"); got != "b:Failed" {
		t.Fatalf("relayed: %s", got)
	}
}

func TestStoreRestartedNode(t *testing.T) {
	first := newTestStore("x", 100)
	r := newTestStore("r", 1)
	first.setLocal(NodeState{Revision: "old", Pods: []PodStatus{pod("a", "Running", true)}})
	exchange(first, r, "x")
	// The restarted node starts later on the clock, with nothing.
	second := newTestStore("x", 200)
	exchange(second, r, "x")
	if got := podsOf(r, "x"); got != "" {
		t.Fatalf("restarted node's old pods still seen: %s", got)
	}
	second.setLocal(NodeState{Revision: "new", Pods: []PodStatus{pod("c", "Pending", false)}})
	exchange(second, r, "x")
	if got, _ := r.stateOf("x"); got.Revision != "new" || podsOf(r, "x") != "c:Pending" {
		t.Fatalf("restarted node's state: %+v", got)
	}

	// Restarted with a clock behind the first run: it hears of itself at
	// a higher version and must jump past it.
	third := newTestStore("x", 50)
	if _, _, refute := third.mergeSnapshot(r.snapshotOf("x")); refute <= 50 {
		t.Fatalf("no refutation of a newer own state (refute %d)", refute)
	} else {
		third.restamp(refute)
	}
	third.setLocal(NodeState{Revision: "third"})
	exchange(third, r, "x")
	if got, _ := r.stateOf("x"); got.Revision != "third" || len(got.Pods) != 0 {
		t.Fatalf("after refutation: %+v", got)
	}
}

func TestStoreLinkedDeltaCompletes(t *testing.T) {
	origin := newTestStore("x", 100)
	r := newTestStore("r", 1)
	origin.setLocal(NodeState{Pods: []PodStatus{pod("a", "Running", true)}})
	exchange(origin, r, "x")
	origin.setLocal(NodeState{})
	d := &delta{origin: "x", v: origin.cur, prev: origin.cur - 1, pod: podEntry{key: podKey{"default", "a"}, v: origin.cur, del: true}}
	r.applyDelta(d)
	if v := r.nodes["x"]; v.complete != origin.cur || len(v.pods) != 0 {
		t.Fatalf("complete %d (want %d), %d entries kept", v.complete, origin.cur, len(v.pods))
	}
}

func TestNormalize(t *testing.T) {
	long := strings.Repeat("é", 300)
	ns, warns := normalize(NodeState{RefusedError: long, Pods: []PodStatus{
		{Name: "a", LastError: long, Restarts: -1}, {Name: "a", Phase: "Running"}}})
	if len(ns.RefusedError) > maxErrorLen || !strings.HasPrefix(long, ns.RefusedError) {
		t.Errorf("RefusedError of %d bytes", len(ns.RefusedError))
	}
	if len(ns.Pods) != 1 || ns.Pods[0].Phase != "Running" || len(warns) != 1 {
		t.Errorf("duplicates: %+v %v", ns.Pods, warns)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	s := newTestStore("x", 1<<60)
	p := pod("web-1", "Running", true)
	p.LastError, p.Reason, p.Restarts = "exit 1", "CrashLoopBackOff", 7
	p.ReadyContainers, p.Containers, p.Workload = 1, 2, "Deployment/web"
	p.StartedAt = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	old := pod("web-0", "Running", true)
	old.StartedAt, old.Workload = time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC), "StatefulSet/web"
	s.setLocal(NodeState{Revision: strings.Repeat("0123456789", 4), Refused: "branch-x", RefusedError: "bad.yaml:1:1: no", Pods: []PodStatus{p, pod("web-2", "Pending", false)}})
	s.setLocal(NodeState{Revision: strings.Repeat("0123456789", 4), SyncRequested: 300, Pods: []PodStatus{p, old}})
	sn := s.snapshotOf("x")
	if sn.hdr.syncReq != 300 {
		t.Fatalf("sync requests %d, want 300", sn.hdr.syncReq)
	}
	got, err := decodeSnapshots(encodeSnapshots([]*snapshot{sn}))
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], sn) {
		t.Fatalf("snapshot round trip: %v\n got %+v\nwant %+v", err, got, sn)
	}
	d := &delta{origin: "x", v: 9, prev: 8, pod: podEntry{key: podKey{"ns", "web-1"}, v: 9, pod: p}}
	d.pod.pod.Namespace = "ns"
	gd, err := decodeDelta(encodeDelta(d))
	if err != nil || !reflect.DeepEqual(gd, d) {
		t.Fatalf("delta round trip: %v\n got %+v\nwant %+v", err, gd, d)
	}
	if gp := gd.pod.pod; gp.ReadyContainers != 1 || gp.Containers != 2 || gp.Workload != "Deployment/web" || !gp.StartedAt.Equal(p.StartedAt) {
		t.Fatalf("delta lost the new fields: %+v", gp)
	}
}

// What SetLocalState keeps is what peers decode: times to the second in
// UTC, counts in range.
func TestNormalizeMatchesTheWire(t *testing.T) {
	local := time.Date(2025, 3, 14, 16, 9, 26, 535897932, time.FixedZone("CET", 3600))
	ns, _ := normalize(NodeState{Pods: []PodStatus{
		{Name: "a", StartedAt: local, ReadyContainers: -1, Containers: 1 << 20, Workload: strings.Repeat("w", 400)},
		{Name: "b", StartedAt: time.Unix(0, 0)},
	}})
	a, b := ns.Pods[0], ns.Pods[1]
	if want := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC); a.StartedAt != want {
		t.Errorf("StartedAt %v, want %v", a.StartedAt, want)
	}
	if a.ReadyContainers != 0 || a.Containers != maxContainers || len(a.Workload) != maxWorkloadLen {
		t.Errorf("bounds: %d/%d, workload of %d bytes", a.ReadyContainers, a.Containers, len(a.Workload))
	}
	if !b.StartedAt.IsZero() {
		t.Errorf("the epoch, which the wire cannot tell from unset, kept as %v", b.StartedAt)
	}
	for _, p := range ns.Pods {
		d := &delta{origin: "x", v: 2, pod: podEntry{key: podKey{p.Namespace, p.Name}, v: 2, pod: p}}
		got, err := decodeDelta(encodeDelta(d))
		if err != nil || got.pod.pod != p {
			t.Errorf("%s: normalized %+v decodes as %+v (%v)", p.Name, p, got.pod.pod, err)
		}
	}
}

func TestMetaRoundTripWithFlags(t *testing.T) {
	for _, m := range []Meta{
		{APIAddr: "10.0.0.1:7480", Labels: map[string]string{"zone": "a"}, CPUMilli: 2000, MemoryBytes: 4 << 30},
		{APIAddr: "10.0.0.1:7480", Unschedulable: true},
	} {
		b, err := encodeMeta(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMeta(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Unschedulable != m.Unschedulable || got.APIAddr != m.APIAddr || got.CPUMilli != m.CPUMilli {
			t.Fatalf("round trip of %+v gave %+v", m, got)
		}
		// Metadata of a node that sends no flags still decodes.
		if got, err := decodeMeta(b[:len(b)-1]); err != nil || got.Unschedulable {
			t.Fatalf("without flags: %+v, %v", got, err)
		}
	}
}
