package plan

import (
	"fmt"
	"math/rand/v2"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// A generator of random clusters and workloads for the property tests and
// benchmarks. Everything derives from a seed, so a failure names the seed
// that reproduces it.

type genOptions struct {
	minNodes, maxNodes int
	workloads          int
	maxReplicas        int
	// constraints adds nodeSelectors, affinities, taints, tolerations and
	// cordoned nodes.
	constraints bool
	// small keeps every pod at most 5% of the smallest node, so that
	// demand, not packing, decides whether pods fit.
	small bool
}

var zones = []string{"a", "b", "c"}

func genNodes(r *rand.Rand, n int, prefix string, o genOptions) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		cpu := int64(2000 * (1 + r.IntN(8)))
		nodes[i] = Node{
			Name:        fmt.Sprintf("%s%d-%x", prefix, i, r.Uint32()),
			Address:     fmt.Sprintf("10.0.%d.%d", i/250, i%250+1),
			Labels:      map[string]string{"zone": zones[r.IntN(len(zones))], "disk": []string{"ssd", "hdd"}[r.IntN(2)], "gen": fmt.Sprint(r.IntN(5))},
			Allocatable: Resources{MilliCPU: cpu, Memory: cpu << 20 * 2, Pods: 110},
		}
		if o.small {
			nodes[i].Allocatable.Pods = 1000
		}
		if o.constraints {
			if r.IntN(10) == 0 {
				nodes[i].Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
			}
			if r.IntN(20) == 0 {
				nodes[i].Unschedulable = true
			}
		}
	}
	return nodes
}

func genObjects(r *rand.Rand, o genOptions) []runtime.Object {
	var objs []runtime.Object
	for i := 0; i < o.workloads; i++ {
		name := fmt.Sprintf("w%d-%x", i, r.Uint32())
		ns := []string{"default", "prod", "team-b"}[r.IntN(3)]
		cpu := int64(50 * (1 + r.IntN(20)))
		if o.small {
			cpu = int64(10 * (1 + r.IntN(10)))
		}
		mem := cpu << 20 * int64(1+r.IntN(3))
		spec := corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "example/app:" + fmt.Sprint(r.IntN(3)),
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU:    *resource.NewMilliQuantity(cpu, resource.DecimalSI),
				corev1.ResourceMemory: *resource.NewQuantity(mem, resource.BinarySI),
			}},
		}}}
		if o.constraints {
			switch r.IntN(8) {
			case 0:
				spec.NodeSelector = map[string]string{"zone": zones[r.IntN(len(zones))]}
			case 1:
				spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
						MatchExpressions: []corev1.NodeSelectorRequirement{
							{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}},
							{Key: "gen", Operator: corev1.NodeSelectorOpGt, Values: []string{"0"}},
						}}}}}}
			case 2:
				spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
			}
		}
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: spec}
		meta := metav1.ObjectMeta{Name: name, Namespace: ns}
		reps := int32(1 + r.IntN(o.maxReplicas))
		switch k := r.IntN(20); {
		case k < 12:
			objs = append(objs, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: &reps, Template: tmpl}})
		case k < 15:
			objs = append(objs, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: &reps, Template: tmpl}})
		case k < 16 && o.constraints:
			objs = append(objs, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Template: tmpl}})
		case k < 17:
			objs = append(objs, &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Parallelism: &reps, Template: tmpl}})
		case k < 18:
			objs = append(objs, &corev1.ReplicationController{ObjectMeta: meta, Spec: corev1.ReplicationControllerSpec{Replicas: &reps, Template: &tmpl}})
		default:
			objs = append(objs, &corev1.Pod{ObjectMeta: meta, Spec: spec})
		}
	}
	return objs
}

// usage is the highest fraction of any resource that p uses on any node.
func usage(p Placement, nodes []Node) float64 {
	used := map[string]Resources{}
	for _, pod := range p.Pods {
		if pod.Node != "" {
			used[pod.Node] = used[pod.Node].add(pod.Requests)
		}
	}
	worst := 0.0
	for _, n := range nodes {
		u := used[n.Name]
		worst = max(worst, float64(u.MilliCPU)/float64(n.Allocatable.MilliCPU), float64(u.Memory)/float64(n.Allocatable.Memory), float64(u.Pods)/float64(n.Allocatable.Pods))
	}
	return worst
}

func shuffled[T any](r *rand.Rand, s []T) []T {
	c := append([]T(nil), s...)
	r.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
	return c
}
