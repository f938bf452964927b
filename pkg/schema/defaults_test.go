package schema

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestWorkloadDefaults pins the defaults every workload kind shares: one
// replica where the kind has replicas, the template's labels as the
// selector at a legacy apiVersion only (with a note), and the pod
// template's own defaults.
func TestWorkloadDefaults(t *testing.T) {
	tmpl := func() corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "c:1"}}},
		}
	}
	for _, tc := range []struct {
		name       string
		obj        runtime.Object
		apiVersion string
		replicas   bool // the kind has spec.replicas
		selector   bool // a selector is defaulted
	}{
		{"Deployment apps/v1beta1", &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: tmpl()}}, "apps/v1beta1", true, true},
		{"Deployment apps/v1", &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: tmpl()}}, "apps/v1", true, false},
		{"ReplicaSet extensions/v1beta1", &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: tmpl()}}, "extensions/v1beta1", true, true},
		{"ReplicaSet apps/v1", &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: tmpl()}}, "apps/v1", true, false},
		{"StatefulSet apps/v1beta2", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: tmpl()}}, "apps/v1beta2", true, true},
		{"DaemonSet apps/v1beta2", &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: tmpl()}}, "apps/v1beta2", false, true},
		{"DaemonSet apps/v1", &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: tmpl()}}, "apps/v1", false, false},
		{"Job batch/v1", &batchv1.Job{Spec: batchv1.JobSpec{Template: tmpl()}}, "batch/v1", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notes := applyDefaults(tc.obj, tc.apiVersion)
			replicas, selector, template := workloadFields(tc.obj)
			if template == nil {
				t.Fatal("no pod template")
			}
			if (replicas != nil) != tc.replicas {
				t.Fatalf("replicas field: %v, want %v", replicas != nil, tc.replicas)
			}
			if replicas != nil && (*replicas == nil || **replicas != 1) {
				t.Errorf("replicas = %v, want 1", *replicas)
			}
			var sel *metav1.LabelSelector
			if selector != nil {
				sel = *selector
			}
			var selNotes int
			for _, n := range notes {
				if n.field == "spec.selector" {
					selNotes++
				}
			}
			if tc.selector {
				if sel == nil || !reflect.DeepEqual(sel.MatchLabels, map[string]string{"app": "x"}) || selNotes != 1 {
					t.Errorf("selector = %v with %d notes; want the template's labels and one note", sel, selNotes)
				}
				// The selector is a copy: changing it leaves the template alone.
				sel.MatchLabels["app"] = "y"
				if template.Labels["app"] != "x" {
					t.Error("the selector shares its map with the template's labels")
				}
			} else if sel != nil || selNotes != 0 {
				t.Errorf("selector = %v with %d notes at %s; want none", sel, selNotes, tc.apiVersion)
			}
			if template.Spec.RestartPolicy != corev1.RestartPolicyAlways || template.Spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("pod template not defaulted: %+v", template.Spec)
			}
		})
	}
	// A selector given is kept, at a legacy version too.
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: tmpl(), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x", "tier": "web"}}}}
	if notes := applyDefaults(d, "extensions/v1beta1"); len(d.Spec.Selector.MatchLabels) != 2 || len(notes) != 0 {
		t.Errorf("given selector: %v, notes %v", d.Spec.Selector, notes)
	}
}
