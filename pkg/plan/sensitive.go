package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Sensitive says how a value that must not be shown changed: a Secret's
// data or stringData key. A FieldChange that carries it has no Old or New.
type Sensitive string

const (
	SensitiveAdded   Sensitive = "added"
	SensitiveRemoved Sensitive = "removed"
	SensitiveChanged Sensitive = "changed"
)

// String is how a plan writes a sensitive change: "(sensitive, changed)".
func (s Sensitive) String() string { return "(sensitive, " + string(s) + ")" }

// secretFields are the fields of a Secret whose values are sensitive: each
// key under them is one value.
var secretFields = []string{"data", "stringData"}

// SensitiveField reports whether field, a path in an object of kind as
// diffs and findings write it (data.password, stringData.token[0]), is or
// is inside a value that no output may show: a Secret's data and
// stringData, and everything under them. The keys are not sensitive (an
// encrypted Secret shows them too); their values are. Outputs that do not
// go through Diff, such as a finding on a Secret's field, ask this.
func SensitiveField(kind, field string) bool {
	if kind != "Secret" {
		return false
	}
	return slices.Contains(secretFields, topField(field))
}

// diffSensitive compares the values that must not be shown, of a and b,
// and removes them from ga and gb (the objects' JSON forms) so that the
// generic diff never sees them. A Secret's data and stringData are
// compared key by key: a key only on one side is added or removed, a key
// on both whose value differs is changed. Values are never copied into
// the result; this is the one place where a plan decides what is
// sensitive, and every output (text, JSON, the API) writes what it gives.
func diffSensitive(a, b runtime.Object, ga, gb map[string]any) []FieldChange {
	sa, aok := a.(*corev1.Secret)
	sb, bok := b.(*corev1.Secret)
	if !aok && !bok {
		return nil
	}
	var out []FieldChange
	for _, f := range secretFields {
		delete(ga, f)
		delete(gb, f)
		va, vb := secretValues(sa, f), secretValues(sb, f)
		keys := make([]string, 0, len(va)+len(vb))
		for k := range va {
			keys = append(keys, k)
		}
		for k := range vb {
			if _, ok := va[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			x, inA := va[k]
			y, inB := vb[k]
			var s Sensitive
			switch {
			case !inA:
				s = SensitiveAdded
			case !inB:
				s = SensitiveRemoved
			case !sameValue(sb, k, x, y):
				s = SensitiveChanged
			default:
				continue
			}
			out = append(out, FieldChange{Path: f + "." + k, Sensitive: s})
		}
	}
	return out
}

// FingerprintPrefix starts a value that stands for a Secret's value in
// what a node serves (the running revision's files): the value's
// Fingerprint, never the value.
const FingerprintPrefix = "gitorch-sensitive:sha256:"

// Fingerprint stands for the value of key in the Secret namespace/name
// where a value must be told apart from another without being shown: a
// SHA-256 over the Secret's namespace, name, key and value, so that the
// same value in two places reads differently. Diff takes a fingerprint as
// equal to the value it stands for. It hides the value from whoever reads
// it, not from one who guesses it: a weak password can be tried against
// it, which is why what serves it needs the API's token off the node.
func Fingerprint(namespace, name, key string, value []byte) string {
	h := sha256.New()
	for _, s := range []string{namespace, name, key} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(value)
	return FingerprintPrefix + hex.EncodeToString(h.Sum(nil))
}

// sameValue reports whether x and y, two values of key in Secret s,
// are the same, either being a Fingerprint.
func sameValue(s *corev1.Secret, key, x, y string) bool {
	if x == y {
		return true
	}
	fp := func(v string) string {
		if strings.HasPrefix(v, FingerprintPrefix) {
			return v
		}
		return Fingerprint(s.Namespace, s.Name, key, []byte(v))
	}
	return fp(x) == fp(y)
}

// secretValues is the data (field "data") or stringData of s by key, nil
// when s is nil.
func secretValues(s *corev1.Secret, field string) map[string]string {
	if s == nil {
		return nil
	}
	if field == "stringData" {
		return s.StringData
	}
	out := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}
