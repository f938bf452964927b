package schema

import (
	"reflect"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Kubernetes' Go types are the ground truth for which fields exist. A field
// the gitorch schema does not allow is a warning when Kubernetes has it (the
// manifest is valid Kubernetes; gitorch ignores that feature) and an error
// when it does not (a typo such as "contianers").

// leafTypes serialize as scalars even though they are structs.
var leafTypes = map[reflect.Type]bool{
	reflect.TypeOf(resource.Quantity{}):  true,
	reflect.TypeOf(intstr.IntOrString{}): true,
	reflect.TypeOf(metav1.Time{}):        true,
	reflect.TypeOf(metav1.MicroTime{}):   true,
	reflect.TypeOf(metav1.Duration{}):    true,
	reflect.TypeOf(metav1.FieldsV1{}):    true,
}

type fieldKey struct {
	t    reflect.Type
	name string
}

var fieldCache sync.Map // fieldKey -> reflect.Type (nil when absent)

// fieldType returns the type of the JSON field name in struct type t.
func fieldType(t reflect.Type, name string) (reflect.Type, bool) {
	key := fieldKey{t, name}
	if v, ok := fieldCache.Load(key); ok {
		ft, _ := v.(reflect.Type)
		return ft, ft != nil
	}
	ft := lookupJSONField(t, name)
	fieldCache.Store(key, ft)
	return ft, ft != nil
}

func lookupJSONField(t reflect.Type, name string) reflect.Type {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		tagName, opts, _ := strings.Cut(tag, ",")
		if tagName == "-" {
			continue
		}
		if f.Anonymous && (tagName == "" || strings.Contains(opts, "inline")) {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				if ft := lookupJSONField(et, name); ft != nil {
					return ft
				}
			}
			continue
		}
		if tagName == "" {
			tagName = f.Name
		}
		if tagName == name {
			return f.Type
		}
	}
	return nil
}

// kubernetesHas reports whether the field path (CUE selectors: names and
// list indices) exists in Kubernetes type t.
func kubernetesHas(t reflect.Type, path []string) bool {
	for _, sel := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if leafTypes[t] {
			return false
		}
		switch t.Kind() {
		case reflect.Struct:
			ft, ok := fieldType(t, sel)
			if !ok {
				return false
			}
			t = ft
		case reflect.Slice, reflect.Array:
			if _, err := strconv.Atoi(sel); err != nil {
				return false
			}
			t = t.Elem()
		case reflect.Map:
			t = t.Elem()
		default:
			return false
		}
	}
	return true
}
