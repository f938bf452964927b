package schemas

import (
	"reflect"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// kubeTypes are the Go types pkg/schema decodes each kind into.
var kubeTypes = map[string]reflect.Type{
	"Namespace":             reflect.TypeOf(corev1.Namespace{}),
	"Pod":                   reflect.TypeOf(corev1.Pod{}),
	"Deployment":            reflect.TypeOf(appsv1.Deployment{}),
	"ReplicaSet":            reflect.TypeOf(appsv1.ReplicaSet{}),
	"ReplicationController": reflect.TypeOf(corev1.ReplicationController{}),
	"DaemonSet":             reflect.TypeOf(appsv1.DaemonSet{}),
	"StatefulSet":           reflect.TypeOf(appsv1.StatefulSet{}),
	"Job":                   reflect.TypeOf(batchv1.Job{}),
	"CronJob":               reflect.TypeOf(batchv1.CronJob{}),
	"PodDisruptionBudget":   reflect.TypeOf(policyv1.PodDisruptionBudget{}),
	"Service":               reflect.TypeOf(corev1.Service{}),
	"ConfigMap":             reflect.TypeOf(corev1.ConfigMap{}),
	"Secret":                reflect.TypeOf(corev1.Secret{}),
}

// TestFieldsAreKubernetes checks every field of every definition against the
// Kubernetes Go type it is decoded into: same name, same nesting, and a CUE
// type the Go type can hold. A field Kubernetes lacks would make a valid
// document fail to decode.
func TestFieldsAreKubernetes(t *testing.T) {
	pkg := compile(t, cuecontext.New())
	for _, k := range kinds {
		typ, ok := kubeTypes[k]
		if !ok {
			t.Fatalf("no Kubernetes type for %s", k)
		}
		compareFields(t, pkg.LookupPath(cue.ParsePath("#"+k)), typ, k)
	}
}

var (
	quantityType = reflect.TypeOf(resource.Quantity{})
	intOrString  = reflect.TypeOf(intstr.IntOrString{})
)

func compareFields(t *testing.T, v cue.Value, typ reflect.Type, path string) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	kind := v.IncompleteKind()
	switch {
	case typ == quantityType:
		want(t, path, kind, cue.NumberKind|cue.StringKind)
		return
	case typ == intOrString:
		want(t, path, kind, cue.IntKind|cue.StringKind)
		return
	}
	switch typ.Kind() {
	case reflect.Struct:
		want(t, path, kind, cue.StructKind)
		it, err := v.Fields(cue.Optional(true))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for it.Next() {
			name := it.Selector().Unquoted()
			ft, ok := jsonField(typ, name)
			if !ok {
				t.Errorf("%s.%s: Kubernetes' %s has no field %q", path, name, typ.Name(), name)
				continue
			}
			compareFields(t, it.Value(), ft, path+"."+name)
		}
	case reflect.Map:
		want(t, path, kind, cue.StructKind)
		compareFields(t, v.LookupPath(cue.MakePath(cue.AnyString)), typ.Elem(), path+".*")
	case reflect.Slice:
		if typ.Elem().Kind() == reflect.Uint8 { // []byte is base64 text
			want(t, path, kind, cue.StringKind)
			return
		}
		want(t, path, kind, cue.ListKind)
		compareFields(t, v.LookupPath(cue.MakePath(cue.AnyIndex)), typ.Elem(), path+"[]")
	case reflect.String:
		want(t, path, kind, cue.StringKind)
	case reflect.Bool:
		want(t, path, kind, cue.BoolKind)
	case reflect.Int, reflect.Int32, reflect.Int64:
		want(t, path, kind, cue.IntKind)
	default:
		t.Errorf("%s: unexpected Go type %s", path, typ)
	}
}

// want reports a CUE kind the Go type cannot hold. A map's element schema
// may not exist (the value is bottom): then there is nothing to compare.
func want(t *testing.T, path string, got, allowed cue.Kind) {
	if got == cue.BottomKind {
		return
	}
	if got&^allowed != 0 {
		t.Errorf("%s: schema allows %v, Kubernetes holds %v", path, got, allowed)
	}
}

// jsonField finds the field a JSON name decodes into, looking into inlined
// structs (TypeMeta, ObjectMeta, VolumeSource, ProbeHandler).
func jsonField(typ reflect.Type, name string) (reflect.Type, bool) {
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && (tag == "" || strings.Contains(opts, "inline")) {
			if ft, ok := jsonField(f.Type, name); ok {
				return ft, true
			}
			continue
		}
		if tag == name {
			return f.Type, true
		}
	}
	return nil, false
}
