package gossip

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/hashicorp/memberlist"
)

// Meta is a node's metadata, carried by memberlist in every alive message.
// Its encoding must fit in MetaMaxSize bytes.
type Meta struct {
	// APIAddr is where the node's HTTP API listens (HOST:PORT).
	APIAddr string
	// PodCIDR is the node's pod network; no two alive members may overlap.
	PodCIDR netip.Prefix
	// Labels are the node's labels (for nodeSelector and affinity).
	Labels map[string]string
	// CPUMilli and MemoryBytes are what the node can allocate to pods.
	CPUMilli, MemoryBytes int64
	// Revision is the commit the node runs (40 hex digits).
	Revision string
	// Unschedulable: the node takes no pods (it is leaving the cluster,
	// 'gitorch node leave'); its pods move to the others.
	Unschedulable bool
}

// MetaMaxSize is memberlist's limit on the encoded metadata.
const MetaMaxSize = memberlist.MetaMaxSize

// ErrMetaTooLarge is wrapped by the error of a Meta whose encoding exceeds
// MetaMaxSize.
var ErrMetaTooLarge = errors.New("node metadata too large")

const metaFormat = 1

// Bits of the metadata's flags.
const metaUnschedulable = 1 << 0

// encodeMeta encodes m compactly: a format byte, the API address, the pod
// CIDR as its address bytes and length, the resources as varints, the
// revision as 20 bytes, the labels sorted by key, then a flags varint
// (bit 0: unschedulable), which metadata of older nodes lacks.
func encodeMeta(m Meta) ([]byte, error) {
	if m.CPUMilli < 0 || m.MemoryBytes < 0 {
		return nil, fmt.Errorf("gossip: negative resources in metadata (cpu %dm, memory %d)", m.CPUMilli, m.MemoryBytes)
	}
	w := writer{b: make([]byte, 0, 64)}
	w.byte(metaFormat)
	w.raw(m.APIAddr)
	cidr := m.PodCIDR.Masked()
	switch {
	case !cidr.IsValid():
		w.byte(0)
	case cidr.Addr().Is4():
		w.byte(4)
		a := cidr.Addr().As4()
		w.b = append(w.b, a[:]...)
		w.byte(byte(cidr.Bits()))
	default:
		w.byte(6)
		a := cidr.Addr().As16()
		w.b = append(w.b, a[:]...)
		w.byte(byte(cidr.Bits()))
	}
	w.uvarint(uint64(m.CPUMilli))
	w.uvarint(uint64(m.MemoryBytes))
	w.rev(m.Revision)
	keys := slices.Sorted(maps.Keys(m.Labels))
	w.uvarint(uint64(len(keys)))
	labelBytes := 0
	for _, k := range keys {
		w.raw(k)
		w.raw(m.Labels[k])
		labelBytes += len(k) + len(m.Labels[k])
	}
	var flags uint64
	if m.Unschedulable {
		flags |= metaUnschedulable
	}
	w.uvarint(flags)
	if len(w.b) > MetaMaxSize {
		return nil, fmt.Errorf("gossip: %w: it encodes to %d bytes, memberlist's limit is %d (%d labels of %d bytes in all, API address of %d bytes); use fewer or shorter labels",
			ErrMetaTooLarge, len(w.b), MetaMaxSize, len(keys), labelBytes, len(m.APIAddr))
	}
	return w.b, nil
}

func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > MetaMaxSize {
		return m, fmt.Errorf("metadata of %d bytes exceeds %d", len(b), MetaMaxSize)
	}
	r := reader{b: b}
	if f := r.byte(); r.err == nil && f != metaFormat {
		return m, fmt.Errorf("unknown metadata format %d", f)
	}
	m.APIAddr = r.raw(MetaMaxSize)
	switch kind := r.byte(); kind {
	case 0:
	case 4, 6:
		n := 4
		if kind == 6 {
			n = 16
		}
		if r.err != nil || len(r.b) < n+1 {
			r.fail(errTruncated)
			break
		}
		addr, _ := netip.AddrFromSlice(r.b[:n])
		bits := int(r.b[n])
		r.b = r.b[n+1:]
		p, err := addr.Prefix(bits)
		if err != nil || p.Addr() != addr {
			r.fail(fmt.Errorf("bad pod CIDR %s/%d", addr, bits))
			break
		}
		m.PodCIDR = p
	default:
		r.fail(fmt.Errorf("bad pod CIDR kind %d", kind))
	}
	cpu, mem := r.uvarint(), r.uvarint()
	if cpu > 1<<62 || mem > 1<<62 {
		r.fail(errors.New("resources out of range"))
	}
	m.CPUMilli, m.MemoryBytes = int64(cpu), int64(mem)
	m.Revision = r.rev()
	if n := r.count(MetaMaxSize, 2); n > 0 {
		m.Labels = make(map[string]string, n)
		for range n {
			k := r.raw(MetaMaxSize)
			m.Labels[k] = r.raw(MetaMaxSize)
		}
	}
	if r.err == nil && len(r.b) > 0 {
		m.Unschedulable = r.uvarint()&metaUnschedulable != 0
	}
	if err := r.done(); err != nil {
		return Meta{}, fmt.Errorf("decode metadata: %w", err)
	}
	return m, nil
}

// CheckMeta returns the error SetMeta would for m: one wrapping
// ErrMetaTooLarge when it encodes to more than MetaMaxSize bytes.
func CheckMeta(m Meta) error {
	_, err := encodeMeta(m)
	return err
}
