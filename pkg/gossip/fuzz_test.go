package gossip

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The decoders of what peers send must never panic, and what they accept
// must encode back to something that decodes the same.

func FuzzDecodeMeta(f *testing.F) {
	b, _ := encodeMeta(Meta{APIAddr: "10.0.0.1:8080", PodCIDR: netip.MustParsePrefix("10.1.0.0/24"),
		Labels: map[string]string{"zone": "a"}, CPUMilli: 4000, MemoryBytes: 8 << 30, Revision: strings.Repeat("a", 40)})
	f.Add(b)
	b, _ = encodeMeta(Meta{PodCIDR: netip.MustParsePrefix("fd00::/64"), Revision: "main"})
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := decodeMeta(in)
		if err != nil {
			return
		}
		out, err := encodeMeta(m)
		if err != nil {
			t.Fatalf("decoded meta does not encode: %v", err)
		}
		m2, err := decodeMeta(out)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode: %v\n%+v\n%+v", err, m, m2)
		}
	})
}

func FuzzDecodeDelta(f *testing.F) {
	p := pod("web", "Running", true)
	f.Add(encodeDelta(&delta{origin: "n1", v: 5, prev: 4, pod: podEntry{key: podKey{"default", "web"}, v: 5, pod: p}}))
	f.Add(encodeDelta(&delta{origin: "n1", v: 6, pod: podEntry{key: podKey{"default", "web"}, v: 6, del: true}}))
	f.Add(encodeDelta(&delta{origin: "n1", v: 7, isHeader: true, hdr: header{revision: strings.Repeat("b", 40), refused: "x", refusedErr: "y", syncReq: 1 << 40}}))
	f.Add(encodeLeave("n1", 9))
	// A pod as the agent reports it, every field set, as one node of
	// many pods sends each change.
	full := spreadPods("n1", 1, "Running")[0]
	full.LastError, full.Reason, full.Restarts, full.StartedAt = "exit 1", "Error", 3, time.Unix(1767323045, 0).UTC()
	f.Add(encodeDelta(&delta{origin: "n1", v: 1767323045000000001, prev: 1767323045000000000, pod: podEntry{key: podKey{full.Namespace, full.Name}, v: 1767323045000000001, pod: full}}))
	f.Fuzz(func(t *testing.T, in []byte) {
		decodeLeave(in)
		d, err := decodeDelta(in)
		if err != nil {
			return
		}
		d2, err := decodeDelta(encodeDelta(d))
		if err != nil || !reflect.DeepEqual(d, d2) {
			t.Fatalf("re-decode: %v\n%+v\n%+v", err, d, d2)
		}
		s := newTestStore("self", 1)
		s.applyDelta(d)
	})
}

func FuzzDecodeSnapshots(f *testing.F) {
	s := newTestStore("x", 1000)
	s.setLocal(NodeState{Revision: strings.Repeat("c", 40), Pods: []PodStatus{pod("a", "Running", true), pod("b", "Pending", false)}})
	s.setLocal(NodeState{Revision: strings.Repeat("c", 40), Pods: []PodStatus{pod("a", "Running", false)}})
	r := newTestStore("r", 1)
	r.mergeSnapshot(s.snapshotOf("x"))
	r.applyDelta(&delta{origin: "x", v: 2000, pod: podEntry{key: podKey{"default", "z"}, v: 2000, del: true}})
	f.Add(encodeSnapshots([]*snapshot{s.snapshotOf("x")}))
	f.Add(encodeSnapshots([]*snapshot{r.snapshotOf("x"), r.snapshotOf("r")}))
	// A node whose state does not fit in a packet (push/pull carries it).
	big := newTestStore("big", 1767323045000000000)
	big.setLocal(NodeState{Revision: strings.Repeat("b", 40), Pods: spreadPods("big", 40, "Running")})
	f.Add(encodeSnapshots([]*snapshot{big.snapshotOf("big")}))
	f.Fuzz(func(t *testing.T, in []byte) {
		sns, err := decodeSnapshots(in)
		if err != nil {
			return
		}
		out := encodeSnapshots(sns)
		sns2, err := decodeSnapshots(out)
		if err != nil || !reflect.DeepEqual(sns, sns2) {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(out, encodeSnapshots(sns2)) {
			t.Fatal("encoding is not stable")
		}
		st := newTestStore("self", 1)
		for _, sn := range sns {
			st.mergeSnapshot(sn)
		}
	})
}
