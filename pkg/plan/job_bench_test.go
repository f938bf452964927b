package plan

import (
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// BenchmarkScheduleBatch1000Jobs: 1000 Jobs of 10 completions, half done,
// over 10 nodes.
func BenchmarkScheduleBatch1000Jobs(b *testing.B) {
	var objects []runtime.Object
	recs := Records{}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 1000 {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("job%d", i)},
			Spec: batchv1.JobSpec{Completions: i32(10), Parallelism: i32(2), Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
		objects = append(objects, j)
		hash := TemplateHash(&j.Spec.Template)
		for a := range 5 {
			recs.Add(JobRecord{Namespace: "default", Pod: JobPodName(j.Name, hash, a), Outcome: OutcomeSucceeded, Started: now, Finished: now})
		}
	}
	var nodes []Node
	for i := range 10 {
		nodes = append(nodes, Node{Name: fmt.Sprintf("n%d", i), Allocatable: Resources{MilliCPU: 64000, Memory: 256 << 30, Pods: 1000}})
	}
	b.ResetTimer()
	for b.Loop() {
		p := ScheduleBatch(objects, nodes, Batch{Records: recs, Now: now})
		if len(p.Pods) != 2000 {
			b.Fatalf("%d pods", len(p.Pods))
		}
	}
}

// BenchmarkCronLast: the latest run of an hourly and a yearly schedule.
func BenchmarkCronLast(b *testing.B) {
	now := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	for _, spec := range []string{"* * * * *", "@hourly", "0 0 29 2 *"} {
		s, err := ParseCronSchedule(spec, "Europe/Berlin")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(spec, func(b *testing.B) {
			for b.Loop() {
				if s.Last(now).IsZero() {
					b.Fatal("no last run")
				}
			}
		})
	}
}
