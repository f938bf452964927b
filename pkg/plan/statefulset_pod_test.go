package plan

import (
	"net/netip"
	"slices"
	"testing"
	"time"

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

// Rollouts keeps the pods a StatefulSet scaled away from, or that left the
// manifests, until DecideStatefulSet lets each stop, highest first, and
// holds a new ordinal until its predecessor is ready.
func TestRolloutsStopsStatefulSetPodsInReverse(t *testing.T) {
	nodes := []Node{{Name: "n1", Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}}}
	sts := func(n int32) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"}, Spec: appsv1.StatefulSetSpec{
			Replicas: &n, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}}}
	}
	stsImage := func(n int32, image string) *appsv1.StatefulSet {
		o := sts(n)
		o.Spec.Template.Spec.Containers[0].Image = image
		return o
	}
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	three := NodePods([]runtime.Object{sts(3)}, nodes, "n1", "r1", cidr, nil)
	retained := three.Pods
	view := func(names ...string) RolloutView {
		var v RolloutView
		for _, n := range names {
			v.Pods = append(v.Pods, ClusterPod{Namespace: "default", Workload: "StatefulSet/db", RolloutPod: RolloutPod{
				Name: n, Node: "n1", TemplateHash: retained[Key{"default", n}].TemplateHash, Ready: true, Phase: PhaseRunning}})
		}
		return v
	}
	wanted := func(r RolloutResult) []string {
		var out []string
		for k, d := range r.Share.Pods {
			if d.Hold == "" {
				out = append(out, k.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		name    string
		objects []runtime.Object
		running []string
		want    []string
	}{
		{"scaled to 1: db-2 stops first", []runtime.Object{sts(1)}, []string{"db-0", "db-1", "db-2"}, []string{"db-0", "db-1"}},
		{"scaled to 1: then db-1", []runtime.Object{sts(1)}, []string{"db-0", "db-1"}, []string{"db-0"}},
		{"deleted: the highest first", nil, []string{"db-0", "db-1"}, []string{"db-0"}},
		{"scaled up: db-1 starts after db-0, not db-2", []runtime.Object{sts(3)}, []string{"db-0"}, []string{"db-0", "db-1"}},
		{"a changed template: the highest is replaced first", []runtime.Object{stsImage(3, "busybox:2")}, []string{"db-0", "db-1", "db-2"}, []string{"db-0", "db-1", "db-2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			running := map[Key]bool{}
			for _, n := range c.running {
				running[Key{"default", n}] = true
			}
			share := NodePods(c.objects, nodes, "n1", "r2", cidr, running)
			r := Rollouts(c.objects, share, retained, "n1", view(c.running...), time.Time{})
			if got := wanted(r); !slices.Equal(got, c.want) {
				t.Fatalf("pods to run %v, want %v", got, c.want)
			}
			for _, n := range c.want {
				d := r.Share.Pods[Key{"default", n}]
				if old := retained[Key{"default", n}]; c.objects != nil && d.TemplateHash != old.TemplateHash && n != "db-2" {
					t.Errorf("%s replaced before db-2 was ready", n)
				}
			}
		})
	}
}

// An old-template pod that placement gives to another node is moving:
// Rollouts does not keep it here for the rolling update.
func TestRolloutsDoesNotKeepAStatefulSetPodThatMoves(t *testing.T) {
	two := int32(2)
	sts := func(image string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"}, Spec: appsv1.StatefulSetSpec{
			Replicas: &two, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}}}
	}
	cidr := netip.MustParsePrefix("10.96.0.0/16")
	here := []Node{{Name: "n1", Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}}}
	retained := NodePods([]runtime.Object{sts("busybox:1")}, here, "n1", "r1", cidr, nil).Pods
	k := Key{"default", "db-0"}
	view := RolloutView{Pods: []ClusterPod{{Namespace: "default", Workload: "StatefulSet/db", RolloutPod: RolloutPod{
		Name: "db-0", Node: "n1", TemplateHash: retained[k].TemplateHash, Ready: true, Phase: PhaseRunning}},
		// db-1, old and ready on n2, is the one replaced first.
		{Namespace: "default", Workload: "StatefulSet/db", RolloutPod: RolloutPod{
			Name: "db-1", Node: "n2", TemplateHash: retained[k].TemplateHash, Ready: true, Phase: PhaseRunning}}}}
	objs := []runtime.Object{sts("busybox:2")}
	// Only n2 is eligible now: db-0 leaves n1.
	elsewhere := []Node{{Name: "n2", Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}}}
	share := NodePods(objs, elsewhere, "n1", "r2", cidr, map[Key]bool{k: true})
	h := HandOff(share, nil, true, time.Time{}, HandoffPolicy{}, time.Time{})
	r := Rollouts(objs, h.Share, retained, "n1", view, time.Time{})
	if d := r.Share.Pods[k]; d != nil {
		t.Fatalf("db-0 kept on n1 (%s) while it moves to n2", d.TemplateHash)
	}
	// Still placed here, it is kept with its old template until db-1 is
	// replaced and ready.
	share = NodePods(objs, here, "n1", "r2", cidr, map[Key]bool{k: true})
	r = Rollouts(objs, share, retained, "n1", view, time.Time{})
	if d := r.Share.Pods[k]; d == nil || d.TemplateHash != retained[k].TemplateHash {
		t.Fatalf("db-0 on its node: %+v, want it kept with the old template", d)
	}
}
