package plan

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
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
