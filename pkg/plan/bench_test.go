package plan

import (
	"fmt"
	"math/rand/v2"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// benchCluster is 1,000 nodes and 1,000 Deployments of 10 replicas each:
// 10,000 pods, using about half the cluster.
func benchCluster() ([]Node, []runtime.Object) {
	r := rand.New(rand.NewPCG(42, 42))
	o := genOptions{workloads: 1000, maxReplicas: 1, constraints: true}
	nodes := genNodes(r, 1000, "node-", o)
	objs := genObjects(r, o)
	ten := int32(10)
	for i, obj := range objs {
		// Make every workload a 10-replica Deployment.
		var tmpl corev1.PodTemplateSpec
		var meta = obj.(interface{ GetName() string }).GetName()
		switch o := obj.(type) {
		case *appsv1.Deployment:
			tmpl = o.Spec.Template
		case *appsv1.StatefulSet:
			tmpl = o.Spec.Template
		case *appsv1.DaemonSet:
			tmpl = o.Spec.Template
		default:
			tmpl = corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		}
		d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &ten, Template: tmpl}}
		d.Name, d.Namespace = fmt.Sprint(meta), "default"
		objs[i] = d
	}
	return nodes, objs
}

func BenchmarkSchedule10kPods1kNodes(b *testing.B) {
	nodes, objs := benchCluster()
	p := Schedule(objs, nodes)
	placed := 0
	for _, pod := range p.Pods {
		if pod.Node != "" {
			placed++
		}
	}
	if len(p.Pods) != 10000 || placed != 10000 {
		b.Fatalf("%d pods, %d placed; want 10000 placed", len(p.Pods), placed)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Schedule(objs, nodes)
	}
	b.ReportMetric(float64(10000*b.N)/b.Elapsed().Seconds(), "pods/s")
}

func BenchmarkAllocateClusterIPs10k(b *testing.B) {
	var svcs []*corev1.Service
	for i := 0; i < 10000; i++ {
		svcs = append(svcs, svc("default", fmt.Sprintf("svc-%d", i), ""))
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		AllocateClusterIPs(svcs, DefaultServiceCIDR)
	}
}
