package plan

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func deployment(name string, replicas int32, images ...string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
	}
	for i, img := range images {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers,
			corev1.Container{Name: []string{"nginx", "sidecar", "third"}[i], Image: img})
	}
	return d
}

func TestDiff(t *testing.T) {
	old := []runtime.Object{
		deployment("web", 2, "nginx:1.7.9", "busybox"),
		deployment("gone", 1, "nginx"),
		svc("default", "same", ""),
	}
	new := []runtime.Object{
		deployment("web", 3, "nginx:1.9.1"),
		deployment("added", 1, "nginx"),
		svc("default", "same", ""),
	}
	got := Diff(old, new)
	want := []Change{
		{Action: ActionCreate, Kind: "Deployment", Namespace: "default", Name: "added"},
		{Action: ActionDestroy, Kind: "Deployment", Namespace: "default", Name: "gone"},
		{Action: ActionUpdate, Kind: "Deployment", Namespace: "default", Name: "web", Fields: []FieldChange{
			{Path: "spec.replicas", Old: "2", New: "3"},
			{Path: "spec.template.spec.containers[nginx].image", Old: "nginx:1.7.9", New: "nginx:1.9.1"},
			{Path: "spec.template.spec.containers[sidecar]", Old: `{"image":"busybox","name":"sidecar","resources":{}}`},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestDiffListsWithoutNamesByIndex(t *testing.T) {
	a := deployment("web", 1, "nginx")
	b := deployment("web", 1, "nginx")
	a.Spec.Template.Spec.Containers[0].Args = []string{"-a", "-b"}
	b.Spec.Template.Spec.Containers[0].Args = []string{"-a", "-c"}
	got := Diff([]runtime.Object{a}, []runtime.Object{b})
	want := []FieldChange{{Path: "spec.template.spec.containers[nginx].args[1]", Old: "-b", New: "-c"}}
	if len(got) != 1 || !reflect.DeepEqual(got[0].Fields, want) {
		t.Errorf("got %+v, want fields %+v", got, want)
	}
}
