package plan

import (
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Action is what a plan does to an object or a pod.
type Action string

const (
	ActionCreate      Action = "create"
	ActionDestroy     Action = "destroy"
	ActionUpdate      Action = "update"
	ActionMove        Action = "move"
	ActionUnplaceable Action = "unplaceable"
)

// FieldChange is one field that differs between two versions of an object.
// Old or New is empty when the field is absent on that side; values are
// the field's JSON (strings unquoted). A sensitive value (a Secret's
// data.KEY or stringData.KEY) has Sensitive set and neither Old nor New.
type FieldChange struct {
	Path      string    `json:"path"`
	Old       string    `json:"old,omitempty"`
	New       string    `json:"new,omitempty"`
	Sensitive Sensitive `json:"sensitive,omitempty"`
}

// Change is an object that a revision adds, removes or changes.
type Change struct {
	Action    Action        `json:"action"`
	Kind      string        `json:"kind"`
	Namespace string        `json:"namespace,omitempty"`
	Name      string        `json:"name"`
	Fields    []FieldChange `json:"fields,omitempty"`
}

// ObjectKind is the kind of o: its TypeMeta's, or its Go type's name.
func ObjectKind(o runtime.Object) string {
	if k := o.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	t := reflect.TypeOf(o)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

type keyed struct {
	kind, namespace, name string
	obj                   runtime.Object
}

func index(objs []runtime.Object) []keyed {
	var out []keyed
	for _, o := range objs {
		m, ok := o.(metav1.Object)
		if !ok {
			continue
		}
		out = append(out, keyed{ObjectKind(o), m.GetNamespace(), m.GetName(), o})
	}
	slices.SortFunc(out, cmpKeyed)
	return out
}

func cmpKeyed(a, b keyed) int {
	return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
}

// Diff lists the objects that are in new but not old (create), in old but
// not new (destroy), and in both but different (update, with the fields
// that differ), sorted by kind, namespace and name. Objects are matched by
// kind, namespace and name. Fields are compared as JSON; the elements of
// lists whose elements all have a name (containers, ports, env, volumes,
// ...) are matched by name, as Kubernetes merges them, and written
// containers[nginx]; other lists by index. status is ignored.
func Diff(old, new []runtime.Object) []Change {
	a, b := index(old), index(new)
	var out []Change
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var c int
		switch {
		case i == len(a):
			c = 1
		case j == len(b):
			c = -1
		default:
			c = cmpKeyed(a[i], b[j])
		}
		switch {
		case c < 0:
			out = append(out, Change{Action: ActionDestroy, Kind: a[i].kind, Namespace: a[i].namespace, Name: a[i].name})
			i++
		case c > 0:
			out = append(out, Change{Action: ActionCreate, Kind: b[j].kind, Namespace: b[j].namespace, Name: b[j].name})
			j++
		default:
			if f := diffObjects(a[i].obj, b[j].obj); len(f) > 0 {
				out = append(out, Change{Action: ActionUpdate, Kind: b[j].kind, Namespace: b[j].namespace, Name: b[j].name, Fields: f})
			}
			i++
			j++
		}
	}
	return out
}

func generic(o runtime.Object) map[string]any {
	b, err := json.Marshal(o)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]any{"error": err.Error()}
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	if s, ok := o.(*corev1.Secret); ok {
		hide(s, m)
	}
	return m
}

func diffObjects(a, b runtime.Object) []FieldChange {
	var out []FieldChange
	diffValue("", generic(a), generic(b), &out)
	return out
}

func diffValue(path string, a, b any, out *[]FieldChange) {
	if reflect.DeepEqual(a, b) || diffHidden(path, a, b, out) {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		if bv, ok := b.(map[string]any); ok {
			keys := make([]string, 0, len(av)+len(bv))
			for k := range av {
				keys = append(keys, k)
			}
			for k := range bv {
				if _, ok := av[k]; !ok {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				diffValue(joinPath(path, k), av[k], bv[k], out)
			}
			return
		}
	case []any:
		if bv, ok := b.([]any); ok {
			diffList(path, av, bv, out)
			return
		}
	}
	*out = append(*out, FieldChange{Path: path, Old: render(a), New: render(b)})
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// names returns the name of every element of l, or nil when some element
// has none (or two share one).
func names(l []any) []string {
	out := make([]string, len(l))
	seen := map[string]bool{}
	for i, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			return nil
		}
		n, ok := m["name"].(string)
		if !ok || seen[n] {
			return nil
		}
		seen[n] = true
		out[i] = n
	}
	return out
}

func diffList(path string, a, b []any, out *[]FieldChange) {
	an, bn := names(a), names(b)
	if an != nil && bn != nil && (len(a) > 0 || len(b) > 0) {
		bi := map[string]int{}
		for i, n := range bn {
			bi[n] = i
		}
		ai := map[string]int{}
		for i, n := range an {
			ai[n] = i
			if j, ok := bi[n]; ok {
				diffValue(path+"["+n+"]", a[i], b[j], out)
			} else {
				diffValue(path+"["+n+"]", a[i], nil, out)
			}
		}
		for j, n := range bn {
			if _, ok := ai[n]; !ok {
				diffValue(path+"["+n+"]", nil, b[j], out)
			}
		}
		return
	}
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y any
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		diffValue(path+"["+strconv.Itoa(i)+"]", x, y, out)
	}
}

// render writes a JSON value for a diff line: strings bare, numbers and
// booleans as JSON, objects and lists compact, absence as "".
func render(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	b, _ := json.Marshal(v)
	return strings.TrimSpace(string(b))
}
