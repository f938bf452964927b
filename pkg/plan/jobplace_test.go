package plan

import (
	"fmt"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Nodes hear of each other's Job records a little late, so they decide a
// Job's active attempts from different records (each learns first of the
// attempts it ran itself). An attempt must go to the same node whichever
// other attempts are active in a view, or two nodes run it at once. Over
// every combination of outcomes of the first 6 attempts of a Job of 5
// completions, 2 at a time, on 3 nodes, each attempt is placed on one
// node only.
func TestJobAttemptPlacedByItsNameAlone(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "c", Image: "i", Resources: corev1.ResourceRequirements{Requests: requests("10m", "8Mi")}}}}}
	for _, name := range []string{"pi", "backup", "report-7"} {
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: batchv1.JobSpec{Completions: i32(5), Parallelism: i32(2), Template: tmpl}}
		hash := TemplateHash(&tmpl)
		nodes := []Node{node("n1", 4000, 4096, nil), node("n2", 4000, 4096, nil), node("n3", 4000, 4096, nil)}
		placed := map[string]string{}
		views := 1
		for range 6 {
			views *= 4
		}
		for v := range views {
			rs := Records{}
			for i, x := 0, v; i < 6; i, x = i+1, x/4 {
				r := JobRecord{Namespace: "default", Pod: JobPodName(name, hash, i), Started: jt0}
				switch x % 4 {
				case 1:
					r.Outcome = OutcomeStarted
				case 2:
					r.Outcome, r.Finished = OutcomeSucceeded, jt0
				case 3:
					r.Outcome, r.Finished = OutcomeFailed, jt0
				default:
					continue
				}
				rs.Add(r)
			}
			p := ScheduleBatch([]runtime.Object{job}, nodes, Batch{Records: rs, Now: jt0})
			for _, pod := range p.Pods {
				if pod.Node == "" {
					t.Fatalf("view %d: %s unplaceable: %s", v, pod.Name, pod.Unplaceable)
				}
				if was, ok := placed[pod.Name]; ok && was != pod.Node {
					t.Fatalf("job %s: %s is placed on %s in one view and on %s in another (view %d: %s)", name, pod.Name, was, pod.Node, v, fmt.Sprint(p.Jobs))
				}
				placed[pod.Name] = pod.Node
			}
		}
	}
}
