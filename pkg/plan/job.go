package plan

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
)

// Outcome is what a node recorded of one pod of a Job.
type Outcome uint8

// The outcomes, in the order a pod goes through them: a later outcome
// supersedes an earlier one, and of the two final ones Succeeded wins (the
// work was done once; see Merge).
const (
	OutcomeStarted Outcome = iota + 1
	OutcomeFailed
	OutcomeSucceeded
)

func (o Outcome) String() string {
	switch o {
	case OutcomeStarted:
		return "Started"
	case OutcomeFailed:
		return "Failed"
	case OutcomeSucceeded:
		return "Succeeded"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// finished reports whether o is a final outcome.
func (o Outcome) finished() bool { return o == OutcomeFailed || o == OutcomeSucceeded }

// JobRecord is what the node that ran a Job's pod recorded of it. A pod of
// a Job is one attempt, named <job>-<template hash>-<attempt>; the record
// is identified by the pod's namespace and name.
type JobRecord struct {
	Namespace string
	Pod       string
	Outcome   Outcome
	// Started is when the pod started; Finished when it ended (zero while
	// it runs). Both to the second, in UTC.
	Started, Finished time.Time
}

// Key is the pod's namespace and name.
func (r JobRecord) Key() Key { return Key{r.Namespace, r.Pod} }

// Merge is the union of two records of the same pod: the later outcome,
// the earliest start and, of a final outcome, its earliest known finish (a
// record heard from a peer may not know it). It is
// commutative, associative and idempotent, so every node that has heard of
// the same records holds the same union whatever the order it heard them
// in, and a record only ever moves forward.
func Merge(a, b JobRecord) JobRecord {
	r := a
	if b.Outcome > a.Outcome {
		r.Outcome, r.Finished = b.Outcome, b.Finished
	} else if b.Outcome == a.Outcome && !b.Finished.IsZero() && (a.Finished.IsZero() || b.Finished.Before(a.Finished)) {
		r.Finished = b.Finished
	}
	if a.Started.IsZero() || (!b.Started.IsZero() && b.Started.Before(a.Started)) {
		r.Started = b.Started
	}
	return r
}

// Records is the union of the Job records a node knows of, by pod.
type Records map[Key]JobRecord

// Add merges r into the records and reports whether they changed.
func (rs Records) Add(r JobRecord) bool {
	old, ok := rs[r.Key()]
	if !ok {
		rs[r.Key()] = r
		return true
	}
	m := Merge(old, r)
	if m == old {
		return false
	}
	rs[r.Key()] = m
	return true
}

// Sorted returns the records sorted by namespace and pod name.
func (rs Records) Sorted() []JobRecord {
	out := make([]JobRecord, 0, len(rs))
	for _, r := range rs {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b JobRecord) int { return a.Key().Compare(b.Key()) })
	return out
}

// Batch is what placement needs besides the objects and the nodes to
// decide Jobs and CronJobs: the records of their pods and the time.
type Batch struct {
	Records Records
	Now     time.Time
}

// Job conditions and reasons, as Kubernetes names them.
const (
	JobComplete = "Complete"
	JobFailed   = "Failed"
	// JobSuspended: spec.suspend is true; no pod runs.
	JobSuspended = "Suspended"

	ReasonBackoffLimitExceeded = "BackoffLimitExceeded"
	ReasonDeadlineExceeded     = "DeadlineExceeded"
)

// JobStatus is where a Job stands, as every node computes it from the same
// records and time.
type JobStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Completions is the number of successful pods the Job needs.
	Completions int `json:"completions"`
	Succeeded   int `json:"succeeded"`
	Failed      int `json:"failed"`
	// Active are the pods that should run now, by name.
	Active []string `json:"active,omitempty"`
	// Condition is "" while the Job runs, else Complete, Failed or
	// Suspended; Reason says why a Job Failed.
	Condition string    `json:"condition,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	StartTime time.Time `json:"startTime,omitzero"`
	// CompletionTime is when the Job finished (the last finish of its
	// recorded pods), once it has.
	CompletionTime time.Time `json:"completionTime,omitzero"`
	// Expired: ttlSecondsAfterFinished has passed since the Job finished.
	// Kubernetes would delete the Job; the manifest is in Git, so gitorch
	// keeps its records (the Job must not run again) and no longer lists it.
	Expired bool `json:"expired,omitempty"`
}

// Finished reports whether the Job is Complete or Failed.
func (s *JobStatus) Finished() bool { return s.Condition == JobComplete || s.Condition == JobFailed }

// Progress is kubectl's COMPLETIONS column: "2/5".
func (s *JobStatus) Progress() string {
	return strconv.Itoa(s.Succeeded) + "/" + strconv.Itoa(s.Completions)
}

// JobPodName is the name of the attempt-th pod of a Job whose template has
// the given hash.
func JobPodName(job, hash string, attempt int) string {
	return job + "-" + hash + "-" + strconv.Itoa(attempt)
}

// DecideJob is the state of the Job namespace/name (its pod template has
// hash hash) given the records of its pods and the time, and the pods that
// should run. It follows Kubernetes' NonIndexed completion mode:
//
//   - completions (default: 1; unset with parallelism set, the Job is
//     complete at its first success) successful pods complete the Job;
//   - at most parallelism (default 1) pods run at a time, never more than
//     the completions still missing;
//   - a failed pod is replaced by a new attempt (a new pod name) until more
//     than backoffLimit (default 6) pods failed: then the Job Failed with
//     BackoffLimitExceeded;
//   - activeDeadlineSeconds after the Job's first pod started, it Failed
//     with DeadlineExceeded and its pods stop;
//   - ttlSecondsAfterFinished after it finished, it is Expired.
//
// The pods that run are the attempts with the lowest numbers that have no
// final record, so every node that holds the same records names the same
// pods, and a pod whose outcome a node recorded is never run again.
func DecideJob(namespace, name, hash string, spec *batchv1.JobSpec, recs Records, now time.Time) JobStatus {
	st := JobStatus{Namespace: namespace, Name: name, Completions: 1}
	if spec.Completions != nil {
		st.Completions = max(0, int(*spec.Completions))
	}
	parallelism := 1
	if spec.Parallelism != nil {
		parallelism = max(0, int(*spec.Parallelism))
	}
	backoffLimit := 6
	if spec.BackoffLimit != nil {
		backoffLimit = max(0, int(*spec.BackoffLimit))
	}
	// No attempt beyond this number can exist: every earlier one either
	// succeeded (at most completions), failed (at most backoffLimit+1) or
	// runs (at most parallelism).
	attempts := st.Completions + backoffLimit + 1 + parallelism
	var free []string
	for i := range attempts {
		pod := JobPodName(name, hash, i)
		r, ok := recs[Key{namespace, pod}]
		if ok && !r.Started.IsZero() && (st.StartTime.IsZero() || r.Started.Before(st.StartTime)) {
			st.StartTime = r.Started
		}
		switch {
		case ok && r.Outcome == OutcomeSucceeded:
			st.Succeeded++
		case ok && r.Outcome == OutcomeFailed:
			st.Failed++
		default:
			free = append(free, pod)
			continue
		}
		if r.Finished.After(st.CompletionTime) {
			st.CompletionTime = r.Finished
		}
	}
	switch {
	case st.Succeeded >= st.Completions:
		st.Condition = JobComplete
	case st.Failed > backoffLimit:
		st.Condition, st.Reason = JobFailed, ReasonBackoffLimitExceeded
	case spec.ActiveDeadlineSeconds != nil && !st.StartTime.IsZero() &&
		!now.Before(st.StartTime.Add(time.Duration(*spec.ActiveDeadlineSeconds)*time.Second)):
		st.Condition, st.Reason = JobFailed, ReasonDeadlineExceeded
		st.CompletionTime = st.StartTime.Add(time.Duration(*spec.ActiveDeadlineSeconds) * time.Second)
	case spec.Suspend != nil && *spec.Suspend:
		st.Condition = JobSuspended
		st.CompletionTime = time.Time{}
		return st
	default:
		st.CompletionTime = time.Time{}
		want := min(parallelism, st.Completions-st.Succeeded)
		if spec.Completions == nil && spec.Parallelism != nil {
			// A work queue: parallelism pods until the first success.
			want = parallelism
		}
		st.Active = free[:min(want, len(free))]
		return st
	}
	if spec.TTLSecondsAfterFinished != nil && !st.CompletionTime.IsZero() &&
		!now.Before(st.CompletionTime.Add(time.Duration(*spec.TTLSecondsAfterFinished)*time.Second)) {
		st.Expired = true
	}
	return st
}

// JobOfPod is the name of the Job a pod named <job>-<hash>-<attempt>
// belongs to (for a CronJob's, the run's name).
func JobOfPod(pod string) (job string, ok bool) {
	job, _, ok = jobOf(pod)
	return job, ok
}

// jobOf splits a Job pod's name <job>-<hash>-<attempt> into the Job's name
// and the template hash; ok is false for any other name.
func jobOf(pod string) (job, hash string, ok bool) {
	i := strings.LastIndexByte(pod, '-')
	if i < 0 || !allDigits(pod[i+1:]) {
		return "", "", false
	}
	rest := pod[:i]
	j := strings.LastIndexByte(rest, '-')
	if j <= 0 || len(rest)-j-1 != 10 {
		return "", "", false
	}
	return rest[:j], rest[j+1:], true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// sortJobStatuses orders statuses by namespace and name.
func sortJobStatuses(s []JobStatus) {
	slices.SortFunc(s, func(a, b JobStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}
