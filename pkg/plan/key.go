package plan

import (
	"cmp"
	"slices"
	"strings"
)

// Key names a namespaced object (a pod, a Service). Keys order by
// namespace, then name: the order of every sorted list plan returns, so
// that a lookup by Key agrees with the sort. (Comparing "ns/name" strings
// does not: '-' and '.' sort before '/', so "web-prod/a" would come
// before "web/a" in the string order but after it by namespace.)
type Key struct {
	Namespace string
	Name      string
}

// String is "namespace/name", for people.
func (k Key) String() string { return k.Namespace + "/" + k.Name }

// Compare orders keys by namespace, then name.
func (k Key) Compare(o Key) int {
	return cmp.Or(strings.Compare(k.Namespace, o.Namespace), strings.Compare(k.Name, o.Name))
}

// find returns the index of the element of s with key k; s is sorted by
// key.
func find[T any](s []T, k Key, key func(*T) Key) (int, bool) {
	return slices.BinarySearchFunc(s, k, func(e T, k Key) int { return key(&e).Compare(k) })
}
