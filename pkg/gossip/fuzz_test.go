package gossip

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
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
