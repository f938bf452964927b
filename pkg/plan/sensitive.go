package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
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

// LastAppliedAnnotation is kubectl's copy of an object as last applied: on
// a Secret taken from a cluster (kubectl get -o yaml) it holds the values
// too, so it is as sensitive as they are.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// SensitiveField reports whether field, a path in an object of kind as
// diffs and findings write it (data.password, stringData.token[0]), is or
// is inside a value that no output may show: a Secret's data and
// stringData and everything under them, and its LastAppliedAnnotation.
// The keys are not sensitive (an encrypted Secret shows them too); their
// values are. Diff hides these values itself; outputs that do not go
// through it, such as a finding on a Secret's field, ask this.
func SensitiveField(kind, field string) bool {
	if kind != "Secret" {
		return false
	}
	top := field
	if i := strings.IndexAny(field, ".["); i >= 0 {
		top = field[:i]
	}
	return slices.Contains(secretFields, top) || strings.HasPrefix(field, "metadata.annotations."+LastAppliedAnnotation) ||
		strings.HasPrefix(field, `metadata.annotations["`+LastAppliedAnnotation+`"]`)
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

// hidden stands in a Secret's JSON form for one of its values: two are
// equal (reflect.DeepEqual) when the values are, and nothing of it is
// ever rendered. diffValue reports a difference as a Sensitive change.
type hidden struct{ fingerprint string }

// MarshalJSON writes a hidden value inside a larger one (an annotations
// map added whole) as what it is.
func (hidden) MarshalJSON() ([]byte, error) { return []byte(`"(sensitive)"`), nil }

// hiddenMap is a Secret's data or stringData with each value hidden;
// diffValue compares it key by key even when the other side has none.
type hiddenMap map[string]any

// hide replaces, in g (the JSON form of s), every sensitive value with
// what stands for it: this is the one place where a diff decides what it
// must not show, and every output (text, JSON, the API) writes the
// changes it gives.
func hide(s *corev1.Secret, g map[string]any) {
	fp := func(key string, v []byte) hidden {
		if strings.HasPrefix(string(v), FingerprintPrefix) {
			return hidden{string(v)}
		}
		return hidden{Fingerprint(s.Namespace, s.Name, key, v)}
	}
	if len(s.Data) > 0 {
		m := hiddenMap{}
		for k, v := range s.Data {
			m[k] = fp(k, v)
		}
		g["data"] = m
	}
	if len(s.StringData) > 0 {
		m := hiddenMap{}
		for k, v := range s.StringData {
			m[k] = fp(k, []byte(v))
		}
		g["stringData"] = m
	}
	if v, ok := s.Annotations[LastAppliedAnnotation]; ok {
		// The key cannot clash with a data key: those have no '/'.
		g["metadata"].(map[string]any)["annotations"].(map[string]any)[LastAppliedAnnotation] = fp(LastAppliedAnnotation, []byte(v))
	}
}

// diffHidden reports the change of a hidden value, or of a hidden map key
// by key; it returns false when neither a nor b is one.
func diffHidden(path string, a, b any, out *[]FieldChange) bool {
	_, ha := a.(hidden)
	_, hb := b.(hidden)
	if ha || hb {
		s := SensitiveChanged
		switch {
		case a == nil:
			s = SensitiveAdded
		case b == nil:
			s = SensitiveRemoved
		}
		*out = append(*out, FieldChange{Path: path, Sensitive: s})
		return true
	}
	ma, mok := a.(hiddenMap)
	mb, nok := b.(hiddenMap)
	if !mok && !nok {
		return false
	}
	keys := make([]string, 0, len(ma)+len(mb))
	for k := range ma {
		keys = append(keys, k)
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		diffValue(joinPath(path, k), ma[k], mb[k], out)
	}
	return true
}
