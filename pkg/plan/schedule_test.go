package plan

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func node(name string, cpu, memMi int64, labels map[string]string) Node {
	return Node{Name: name, Labels: labels, Allocatable: Resources{MilliCPU: cpu, Memory: memMi << 20, Pods: 110}}
}

func podWith(name string, mutate func(*corev1.PodSpec)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if mutate != nil {
		mutate(&p.Spec)
	}
	return p
}

func requests(cpu, mem string) corev1.ResourceList {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		l[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return l
}

func TestPodNamesPerKind(t *testing.T) {
	two := int32(2)
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	meta := func(n string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: "default", Name: n} }
	objs := []runtime.Object{
		&appsv1.Deployment{ObjectMeta: meta("dep"), Spec: appsv1.DeploymentSpec{Replicas: &two, Template: tmpl}},
		&appsv1.StatefulSet{ObjectMeta: meta("sts"), Spec: appsv1.StatefulSetSpec{Replicas: &two, Template: tmpl}},
		&appsv1.DaemonSet{ObjectMeta: meta("ds"), Spec: appsv1.DaemonSetSpec{Template: tmpl}},
		&batchv1.Job{ObjectMeta: meta("job"), Spec: batchv1.JobSpec{Parallelism: &two, Completions: new(int32(1)), Template: tmpl}},
		&corev1.ReplicationController{ObjectMeta: meta("rc"), Spec: corev1.ReplicationControllerSpec{Template: &tmpl}},
		podWith("bare", nil),
		&corev1.ConfigMap{ObjectMeta: meta("ignored")},
	}
	p := Schedule(objs, []Node{node("a", 4000, 4096, nil), node("b", 4000, 4096, nil)})
	h := TemplateHash(&tmpl)
	var names []string
	for _, pod := range p.Pods {
		names = append(names, pod.Name)
		if pod.Node == "" {
			t.Errorf("%s unplaceable: %s", pod.Name, pod.Unplaceable)
		}
	}
	want := []string{"bare", "dep-" + h + "-0", "dep-" + h + "-1", "ds-" + h + "-a", "ds-" + h + "-b",
		"job-" + h + "-0", "rc-" + h + "-0", "sts-0", "sts-1"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("pods %v\nwant %v", names, want)
	}
	if len(h) != 10 {
		t.Errorf("template hash %q is not 10 hex digits", h)
	}
}

func TestRequests(t *testing.T) {
	spec := corev1.PodSpec{
		Containers: []corev1.Container{
			{Name: "a", Resources: corev1.ResourceRequirements{Requests: requests("100m", "64Mi")}},
			// Limits stand in for absent requests.
			{Name: "b", Resources: corev1.ResourceRequirements{Limits: requests("200m", "128Mi"), Requests: requests("50m", "")}},
		},
		InitContainers: []corev1.Container{
			{Name: "init", Resources: corev1.ResourceRequirements{Requests: requests("1", "32Mi")}},
		},
	}
	got := podRequests(&spec)
	want := Resources{MilliCPU: 1000, Memory: 192 << 20, Pods: 1}
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestFilters(t *testing.T) {
	nodes := []Node{
		node("ssd-1", 1000, 1024, map[string]string{"disk": "ssd", "gen": "3"}),
		node("hdd-1", 1000, 1024, map[string]string{"disk": "hdd", "gen": "1"}),
		node("cordoned", 1000, 1024, map[string]string{"disk": "ssd", "gen": "3"}),
		node("gpu", 1000, 1024, map[string]string{"disk": "ssd", "gen": "5"}),
	}
	nodes[2].Unschedulable = true
	nodes[3].Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	affinity := func(exprs ...corev1.NodeSelectorRequirement) func(*corev1.PodSpec) {
		return func(s *corev1.PodSpec) {
			s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: exprs}}}}}
		}
	}
	req := func(k string, op corev1.NodeSelectorOperator, v ...string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: k, Operator: op, Values: v}
	}
	tests := []struct {
		name   string
		mutate func(*corev1.PodSpec)
		want   string // node, or the unplaceable reason
	}{
		{"nodeSelector picks the only untainted schedulable match", func(s *corev1.PodSpec) { s.NodeSelector = map[string]string{"disk": "hdd"} }, "hdd-1"},
		{"In", affinity(req("disk", corev1.NodeSelectorOpIn, "hdd")), "hdd-1"},
		{"NotIn", affinity(req("disk", corev1.NodeSelectorOpNotIn, "ssd")), "hdd-1"},
		{"Exists and Gt", affinity(req("gen", corev1.NodeSelectorOpExists), req("gen", corev1.NodeSelectorOpGt, "2")), "ssd-1"},
		{"Lt", affinity(req("gen", corev1.NodeSelectorOpLt, "2")), "hdd-1"},
		{"DoesNotExist", affinity(req("disk", corev1.NodeSelectorOpDoesNotExist)),
			"0/4 nodes are available: 3 node(s) didn't match node affinity, 1 node(s) were unschedulable."},
		{"toleration opens the tainted node", func(s *corev1.PodSpec) {
			s.NodeSelector = map[string]string{"gen": "5"}
			s.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
		}, "gpu"},
		{"untolerated taint", func(s *corev1.PodSpec) { s.NodeSelector = map[string]string{"gen": "5"} },
			"0/4 nodes are available: 2 node(s) didn't match nodeSelector, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable."},
		{"insufficient resources, per resource", func(s *corev1.PodSpec) {
			s.Containers[0].Resources.Requests = requests("2", "2Gi")
		}, "0/4 nodes are available: 2 insufficient cpu, 2 insufficient memory, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Schedule([]runtime.Object{podWith("p", tt.mutate)}, nodes)
			got := p.Pods[0].Node
			if got == "" {
				got = p.Pods[0].Unplaceable
			}
			if got != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestPodsSlotAndFallbackPastSpreadCap(t *testing.T) {
	// Two nodes; b has room for one pod only. Four replicas: the cap is 2,
	// but b cannot take 2, so a takes 3 rather than leave one pending.
	nodes := []Node{node("a", 4000, 4096, nil), node("b", 4000, 4096, nil)}
	nodes[1].Allocatable.Pods = 1
	four := int32(4)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "d"},
		Spec: appsv1.DeploymentSpec{Replicas: &four, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}}}
	p := Schedule([]runtime.Object{d}, nodes)
	count := map[string]int{}
	for _, pod := range p.Pods {
		count[pod.Node]++
	}
	if count["a"] != 3 || count["b"] != 1 {
		t.Errorf("got %v, want a:3 b:1", count)
	}
}

func TestNegLog2(t *testing.T) {
	// -log2(x/2^64) for a few exact powers of two and midpoints.
	for _, tt := range []struct {
		x    uint64
		want float64
	}{{1 << 63, 1}, {1 << 62, 2}, {1 << 32, 32}, {3 << 62, 0.415037}, {1, 64}} {
		got := float64(negLog2(tt.x)) / (1 << fracBits)
		if d := got - tt.want; d > 1e-6 || d < -1e-6 {
			t.Errorf("negLog2(%#x) = %f, want %f", tt.x, got, tt.want)
		}
	}
}

func TestDaemonSetPodWithoutRoom(t *testing.T) {
	nodes := []Node{node("a", 1000, 1024, nil), node("b", 100, 1024, nil)}
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c",
		Resources: corev1.ResourceRequirements{Requests: requests("500m", "")}}}}}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "agent"}, Spec: appsv1.DaemonSetSpec{Template: tmpl}}
	p := Schedule([]runtime.Object{ds}, nodes)
	if len(p.Pods) != 2 || p.Pods[0].Node != "a" || p.Pods[1].Node != "" ||
		p.Pods[1].Unplaceable != "0/1 nodes are available: 1 insufficient cpu." {
		t.Errorf("got %+v", p.Pods)
	}
}
