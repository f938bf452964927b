package plan

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func rollingDeployment(name, image string, replicas int32, mod ...func(*appsv1.Deployment)) *appsv1.Deployment {
	one := intstr.FromInt32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &one}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
	for _, m := range mod {
		m(d)
	}
	return d
}

func TestRolloutSteps(t *testing.T) {
	ds := func(image string) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "agent"},
			Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: image}}}}}}
	}
	sts := func(name, image string, partition int32, onDelete bool) *appsv1.StatefulSet {
		three := int32(3)
		o := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: appsv1.StatefulSetSpec{Replicas: &three, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: image}}}}}}
		if partition > 0 {
			o.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &partition}
		}
		if onDelete {
			o.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType
		}
		return o
	}
	old := []runtime.Object{rollingDeployment("web", "web:1", 3), rollingDeployment("db", "db:1", 1), ds("agent:1"),
		rollingDeployment("same", "same:1", 2),
		sts("kv", "kv:1", 0, false), sts("queue", "q:1", 0, false), sts("cache", "c:1", 0, false)}
	recreate := func(d *appsv1.Deployment) {
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	}
	new := []runtime.Object{rollingDeployment("web", "web:2", 3), rollingDeployment("db", "db:2", 1, recreate), ds("agent:2"),
		rollingDeployment("same", "same:1", 5),
		sts("kv", "kv:2", 1, false), sts("queue", "q:2", 0, true), sts("cache", "c:1", 2, false)}
	steps := RolloutSteps(old, new, func(string, string) int { return 4 })
	var got []string
	for _, s := range steps {
		got = append(got, s.Kind+" "+s.Name+": "+s.String())
	}
	want := []string{
		"DaemonSet agent: 4 pods replaced, at most 1 unavailable, at most 0 extra",
		"Deployment db: 1 pod replaced, all stopped before the new ones start (Recreate)",
		"Deployment web: 3 pods replaced, at most 1 unavailable, at most 1 extra",
		"StatefulSet kv: 2 pods replaced, highest ordinal first, at most 1 unavailable, ordinals below 1 kept",
		"StatefulSet queue: 0 pods replaced (OnDelete: a running pod keeps its template, one that is gone comes back with the new one)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Rollouts on one node: of the old pods it runs, those the rule does not
// stop yet keep their last desired pod; of its new pods, those the rule
// does not allow yet are held.
func TestRolloutsKeepsOldPodsAndHoldsNewOnes(t *testing.T) {
	nodes := []Node{{Name: "a", Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}}}
	v1 := []runtime.Object{rollingDeployment("web", "web:1", 3)}
	v2 := []runtime.Object{rollingDeployment("web", "web:2", 3)}
	cidr := DefaultServiceCIDR
	old := NodePods(v1, nodes, "a", "r1", cidr, nil)
	retained := map[Key]*DesiredPod{}
	view := RolloutView{Started: rt0}
	for k, d := range old.Pods {
		retained[k] = d
		view.Pods = append(view.Pods, ClusterPod{Namespace: "default", Workload: "Deployment/web",
			RolloutPod: RolloutPod{Name: k.Name, Node: "a", TemplateHash: d.TemplateHash, Ready: true, ReadySince: rt0}})
	}
	running := map[Key]bool{}
	for k := range old.Pods {
		running[k] = true
	}
	share := NodePods(v2, nodes, "a", "r2", cidr, running)
	r := Rollouts(v2, share, retained, "a", view, rt0.Add(time.Second))
	var kept, held, free int
	for _, d := range r.Share.Pods {
		switch {
		case d.Revision == "r1":
			kept++
		case d.Hold != "":
			held++
		default:
			free++
		}
	}
	// 3 replicas, surge 1, unavailable 1: one old pod stops, one new pod
	// starts (3 + 1 − 3), the two others wait.
	if kept != 2 || free != 1 || held != 2 {
		t.Errorf("kept %d old, %d new free, %d new held; want 2, 1, 2", kept, free, held)
	}
	if len(r.Workloads) != 1 || r.Workloads[0].Health != HealthProgressing || r.Workloads[0].Old != 3 {
		t.Errorf("workloads %+v", r.Workloads)
	}
	// Paused: nothing moves.
	paused := []runtime.Object{rollingDeployment("web", "web:2", 3, func(d *appsv1.Deployment) { d.Spec.Paused = true })}
	share = NodePods(paused, nodes, "a", "r3", cidr, running)
	r = Rollouts(paused, share, retained, "a", view, rt0.Add(time.Second))
	kept, held = 0, 0
	for _, d := range r.Share.Pods {
		if d.Revision == "r1" {
			kept++
		} else if strings.HasPrefix(d.Hold, "rollout paused") {
			held++
		}
	}
	if kept != 3 || held != 3 || r.Workloads[0].Health != HealthSuspended {
		t.Errorf("paused: kept %d, held %d, %+v", kept, held, r.Workloads[0])
	}
}
