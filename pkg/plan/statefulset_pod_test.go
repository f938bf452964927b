package plan

import (
	"net/netip"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// A StatefulSet's pod is named <name>-<ordinal> in its hostname, under its
// serviceName, whatever its template says, and gets a claim volume per
// template named after its pod.
func TestNodePodsGivesStatefulSetPodsTheirNamesAndClaims(t *testing.T) {
	two := int32(2)
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: appsv1.StatefulSetSpec{
		Replicas: &two, ServiceName: "db",
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Hostname: "ignored", Containers: []corev1.Container{{
			Name: "app", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/db"}}}}}},
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}},
	}}
	nodes := []Node{{Name: "n1", Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}}}
	share := NodePods([]runtime.Object{sts}, nodes, "n1", "r1", netip.MustParsePrefix("10.96.0.0/16"), nil)
	for _, name := range []string{"db-0", "db-1"} {
		d := share.Pods[Key{"shop", name}]
		if d == nil {
			t.Fatalf("no pod %s in %v", name, share.Pods)
		}
		spec := d.Pod.Spec
		if spec.Hostname != name || spec.Subdomain != "db" {
			t.Errorf("%s: hostname %q subdomain %q, want %s and db", name, spec.Hostname, spec.Subdomain, name)
		}
		if len(spec.Volumes) != 1 || spec.Volumes[0].Name != "data" || spec.Volumes[0].PersistentVolumeClaim == nil ||
			spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-"+name {
			t.Errorf("%s: volumes %+v, want data with claim data-%s", name, spec.Volumes, name)
		}
	}
	if sts.Spec.Template.Spec.Volumes != nil || sts.Spec.Template.Spec.Hostname != "ignored" {
		t.Error("NodePods changed the StatefulSet's template")
	}
}
