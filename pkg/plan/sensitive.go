package plan

import (
	"slices"

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
			case x != y:
				s = SensitiveChanged
			default:
				continue
			}
			out = append(out, FieldChange{Path: f + "." + k, Sensitive: s})
		}
	}
	return out
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
