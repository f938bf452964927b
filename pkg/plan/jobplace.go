package plan

import (
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// batchDecider turns Jobs and CronJobs into the workloads of the pods that
// should run, and keeps their statuses for the Placement.
type batchDecider struct {
	b     Batch
	idx   cronIndex
	jobs  []JobStatus
	crons []CronJobStatus
}

func newBatchDecider(b Batch) *batchDecider {
	return &batchDecider{b: b}
}

func (d *batchDecider) job(o *batchv1.Job) []workload {
	hash := TemplateHash(&o.Spec.Template)
	st := DecideJob(o.Namespace, o.Name, hash, &o.Spec, d.b.Records, d.b.Now)
	d.jobs = append(d.jobs, st)
	return []workload{jobWorkload("Job", o.Namespace, o.Name, o.Name, hash, st.Active, &o.Spec.Template)}
}

func (d *batchDecider) cronJob(o *batchv1.CronJob) []workload {
	if d.idx == nil {
		d.idx = newCronIndex(d.b.Records)
	}
	t := &o.Spec.JobTemplate.Spec.Template
	hash := TemplateHash(t)
	st, runs := DecideCronJob(o, d.idx[cronKey{o.Namespace, o.Name, hash}], d.b.Records, d.b.Now)
	d.crons = append(d.crons, st)
	var ws []workload
	for _, r := range runs {
		// Each run is a workload of its own, ordered after the CronJob's
		// name by the run's name, so that its pods are placed like any
		// Job's.
		ws = append(ws, jobWorkload("CronJob", o.Namespace, o.Name, r.name, hash, r.st.Active, t))
	}
	return ws
}

// jobWorkload is the workload of a Job's (or a CronJob run's) active pods:
// their names come from DecideJob, not from ordinals.
func jobWorkload(kind, namespace, owner, job, hash string, active []string, t *corev1.PodTemplateSpec) workload {
	w := workload{kind: kind, namespace: namespace, name: owner, replicas: len(active), template: t,
		hash: hash, requests: podRequests(&t.Spec), names: active, sortName: job}
	return w
}

// LiveRecords are the records that still decide something: those of the
// pods of every Job with its current template, and of the runs of every
// CronJob that are active, listed by its history limits, or its latest
// (which must not run again). Others (a Job removed from the manifests or
// whose template changed, runs past the history limits) may be forgotten.
func LiveRecords(objects []runtime.Object, recs Records, now time.Time) Records {
	type jobKey struct{ namespace, job, hash string }
	keep := map[jobKey]bool{}
	for _, o := range objects {
		switch o := o.(type) {
		case *batchv1.Job:
			keep[jobKey{o.Namespace, o.Name, TemplateHash(&o.Spec.Template)}] = true
		case *batchv1.CronJob:
			hash := TemplateHash(&o.Spec.JobTemplate.Spec.Template)
			var started []time.Time
			for k := range recs {
				if job, h, ok := jobOf(k.Name); ok && h == hash && k.Namespace == o.Namespace &&
					strings.HasPrefix(job, o.Name+"-") && allDigits(job[len(o.Name)+1:]) {
					m, _ := strconv.ParseInt(job[len(o.Name)+1:], 10, 64)
					started = append(started, time.Unix(m*60, 0).UTC())
				}
			}
			st, _ := DecideCronJob(o, started, recs, now)
			for _, r := range st.Runs {
				keep[jobKey{o.Namespace, r.Name, hash}] = true
			}
			if !st.LastScheduleTime.IsZero() {
				keep[jobKey{o.Namespace, CronRunName(o.Name, st.LastScheduleTime), hash}] = true
			}
		}
	}
	out := Records{}
	for k, r := range recs {
		if job, hash, ok := jobOf(k.Name); ok && keep[jobKey{k.Namespace, job, hash}] {
			out[k] = r
		}
	}
	return out
}
