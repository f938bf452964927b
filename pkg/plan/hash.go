package plan

import (
	"math/bits"
)

// FNV-1a, 64 bit: a stable hash of a string, the same on every platform.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// hashKey is hashString(namespace + "/" + name) without building the
// string.
func hashKey(namespace, name string) uint64 {
	h := uint64(14695981039346656037)
	for _, s := range [...]string{namespace, "/", name} {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	return h
}

// mix is the splitmix64 finaliser: it turns two hashes into one whose bits
// are all equally likely to be set, fast enough to call for every
// (pod, node) pair.
func mix(a, b uint64) uint64 {
	z := a ^ (b * 0x9e3779b97f4a7c15)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Fixed-point logarithms. Weighted rendezvous hashing scores a node as
// weight / -ln(u) for a hash u in (0, 1). Floating-point logarithms may
// differ in the last bit between CPU architectures (fused multiply-add),
// and every node of a mixed cluster must rank nodes identically, so the
// logarithm is computed in integers: -log2(u) with 32 fractional bits, from
// a table of log2(1 + i/4096) built with integer arithmetic only.

const (
	logTableBits = 12
	fracBits     = 32
)

var log2Table = buildLog2Table()

// buildLog2Table returns log2(1 + i/2^logTableBits) for i in
// [0, 2^logTableBits], in fixed point with fracBits fractional bits, by the
// bit-by-bit squaring method.
func buildLog2Table() []uint64 {
	t := make([]uint64, 1<<logTableBits+1)
	for i := range t {
		// x in [1, 2] as a 2.62 fixed-point number.
		x := uint64(1)<<62 + uint64(i)<<(62-logTableBits)
		if i == len(t)-1 {
			t[i] = 1 << fracBits
			continue
		}
		var r uint64
		for b := fracBits - 1; b >= 0; b-- {
			hi, lo := bits.Mul64(x, x) // x^2 as 4.124
			// Back to 2.62: shift right by 62.
			x = hi<<2 | lo>>62
			if x >= 1<<63 { // x^2 >= 2
				x >>= 1
				r |= 1 << uint(b)
			}
		}
		t[i] = r
	}
	return t
}

// negLog2 returns -log2(x / 2^64) in fixed point (fracBits fractional
// bits), at least 1 so that it can divide.
func negLog2(x uint64) uint64 {
	if x == 0 {
		x = 1
	}
	n := bits.LeadingZeros64(x)
	m := x << uint(n) // top bit set: m / 2^63 in [1, 2)
	frac := m << 1    // the bits after the leading one
	i := frac >> (64 - logTableBits)
	rem := (frac << logTableBits) >> (64 - 20) // next 20 bits
	lo, hi := log2Table[i], log2Table[i+1]
	l := lo + ((hi-lo)*rem)>>20 // log2(m / 2^63) in [0, 1)
	// log2(x) = 63 - n + l, so -log2(x / 2^64) = 64 - 63 + n - l.
	v := uint64(1+n)<<fracBits - l
	if v == 0 {
		v = 1
	}
	return v
}

// score is a weighted rendezvous score weight / -log2(u), kept as a
// fraction so that comparing two scores is exact integer arithmetic.
type score struct {
	weight uint64 // > 0, < 2^32
	nlog   uint64 // > 0, < 2^39
}

// higher reports whether a outranks b.
func (a score) higher(b score) bool {
	// a.weight/a.nlog > b.weight/b.nlog  <=>  a.weight*b.nlog > b.weight*a.nlog
	ah, al := bits.Mul64(a.weight, b.nlog)
	bh, bl := bits.Mul64(b.weight, a.nlog)
	if ah != bh {
		return ah > bh
	}
	return al > bl
}
