package gossip

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// The wire format is hand-rolled: unsigned varints for numbers and lengths,
// length-prefixed strings, and, in messages carrying many pods, a table of
// distinct strings referred to by index (namespaces, phases, revisions and
// template hashes repeat across pods). Every decoder checks each length and
// count against what is left of its input and against the limits below, so
// a peer can neither make it panic nor make it allocate more than a small
// multiple of the message it sent.

// Limits on what is accepted from the network (and kept from SetLocalState).
const (
	maxNameLen      = 253 // node, namespace and pod names
	maxShortLen     = 128 // phase, IP, template hash, revision, reason
	maxErrorLen     = 256 // LastError, RefusedError (truncated beyond)
	maxWorkloadLen  = 320 // "Kind/name"
	maxContainers   = 1<<16 - 1
	maxStringLen    = 1024 // any string on the wire
	maxNodes        = 4096 // nodes whose state is kept
	maxPodsPerNode  = 5000 // pods kept per node
	maxTotalEntries = 200_000
)

var errTruncated = errors.New("truncated")

type writer struct {
	b   []byte
	tbl map[string]uint64 // nil: strings inline
	str []string
}

func (w *writer) byte(c byte) { w.b = append(w.b, c) }

func (w *writer) uvarint(x uint64) { w.b = binary.AppendUvarint(w.b, x) }

func (w *writer) varint(x int64) { w.b = binary.AppendVarint(w.b, x) }

func (w *writer) raw(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// s writes a string inline, or as an index into the message's table.
func (w *writer) s(s string) {
	if w.tbl == nil {
		w.raw(s)
		return
	}
	i, ok := w.tbl[s]
	if !ok {
		i = uint64(len(w.str))
		w.tbl[s] = i
		w.str = append(w.str, s)
	}
	w.uvarint(i)
}

// rev writes a Git revision: 20 bytes for a 40-digit lowercase hex commit,
// the string itself otherwise.
func (w *writer) rev(s string) {
	if len(s) == 40 && isLowerHex(s) {
		w.byte(1)
		w.b, _ = hex.AppendDecode(w.b, []byte(s))
		return
	}
	w.byte(0)
	w.s(s)
}

// time writes t as signed seconds since the Unix epoch, 0 for the zero
// time (so the epoch itself is not told apart from it); see wireTime.
func (w *writer) time(t time.Time) {
	if t.IsZero() {
		w.varint(0)
		return
	}
	w.varint(t.Unix())
}

// wireTime is t as it comes back from the wire: whole seconds, in UTC.
func wireTime(t time.Time) time.Time {
	if t.IsZero() || t.Unix() == 0 {
		return time.Time{}
	}
	return time.Unix(t.Unix(), 0).UTC()
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

type reader struct {
	b   []byte
	err error
	tbl []string // nil: strings inline
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errors.New("bad varint"))
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errors.New("bad varint"))
		return 0
	}
	r.b = r.b[n:]
	return x
}

// count reads a number of items, each at least minSize bytes long, and
// refuses more than max or more than the rest of the input could hold.
func (r *reader) count(max int, minSize int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(max) || n > uint64(len(r.b)/minSize) {
		r.fail(fmt.Errorf("count %d out of bounds", n))
		return 0
	}
	return int(n)
}

func (r *reader) raw(max int) string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.fail(fmt.Errorf("string of %d bytes out of bounds", n))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) s(max int) string {
	if r.tbl == nil {
		return r.raw(max)
	}
	i := r.uvarint()
	if r.err != nil {
		return ""
	}
	if i >= uint64(len(r.tbl)) {
		r.fail(fmt.Errorf("string index %d out of bounds", i))
		return ""
	}
	s := r.tbl[i]
	if len(s) > max {
		r.fail(fmt.Errorf("string of %d bytes too long here", len(s)))
		return ""
	}
	return s
}

func (r *reader) rev() string {
	switch r.byte() {
	case 0:
		return r.s(maxShortLen)
	case 1:
		if r.err != nil {
			return ""
		}
		if len(r.b) < 20 {
			r.fail(errTruncated)
			return ""
		}
		s := hex.EncodeToString(r.b[:20])
		r.b = r.b[20:]
		return s
	default:
		r.fail(errors.New("bad revision tag"))
		return ""
	}
}

func (r *reader) time() time.Time {
	s := r.varint()
	if s == 0 || r.err != nil {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Errorf("%d trailing bytes", len(r.b)))
	}
	return r.err
}
