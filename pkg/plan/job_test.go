package plan

import (
	"slices"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
)

func i32(v int32) *int32 { return &v }
func i64(v int64) *int64 { return &v }

var jt0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// recs builds records of pods of Job "pi" (hash h) from outcomes by
// attempt: 'S' succeeded, 'F' failed, 'R' started, '.' none; each started
// at jt0 plus its attempt in minutes, and finished a minute later.
func recs(outcomes string) Records {
	rs := Records{}
	for i, c := range outcomes {
		r := JobRecord{Namespace: "default", Pod: JobPodName("pi", testHash, i),
			Started: jt0.Add(time.Duration(i) * time.Minute)}
		switch c {
		case 'S':
			r.Outcome = OutcomeSucceeded
		case 'F':
			r.Outcome = OutcomeFailed
		case 'R':
			r.Outcome = OutcomeStarted
		default:
			continue
		}
		if r.Outcome.finished() {
			r.Finished = r.Started.Add(time.Minute)
		}
		rs.Add(r)
	}
	return rs
}

const testHash = "0123456789"

func TestDecideJob(t *testing.T) {
	pod := func(is ...int) []string {
		var s []string
		for _, i := range is {
			s = append(s, JobPodName("pi", testHash, i))
		}
		return s
	}
	tests := []struct {
		name      string
		spec      batchv1.JobSpec
		outcomes  string
		now       time.Time
		active    []string
		succeeded int
		failed    int
		condition string
		reason    string
		expired   bool
	}{
		{name: "a new Job runs its first attempt", active: pod(0)},
		{name: "parallelism runs that many attempts at once",
			spec: batchv1.JobSpec{Completions: i32(5), Parallelism: i32(2)}, active: pod(0, 1)},
		{name: "parallelism is capped by the completions still missing",
			spec:     batchv1.JobSpec{Completions: i32(5), Parallelism: i32(3)},
			outcomes: "SSS", succeeded: 3, active: pod(3, 4)},
		{name: "a success makes room for the next attempt",
			spec:     batchv1.JobSpec{Completions: i32(5), Parallelism: i32(2)},
			outcomes: "SR", succeeded: 1, active: pod(1, 2)},
		{name: "a failed pod is replaced by a new name",
			spec:     batchv1.JobSpec{Completions: i32(2)},
			outcomes: "F", failed: 1, active: pod(1)},
		{name: "gaps are filled lowest first",
			spec:     batchv1.JobSpec{Completions: i32(5), Parallelism: i32(2)},
			outcomes: "S.F", succeeded: 1, failed: 1, active: pod(1, 3)},
		{name: "completions successes complete the Job",
			spec:     batchv1.JobSpec{Completions: i32(3), Parallelism: i32(3)},
			outcomes: "SFSS", succeeded: 3, failed: 1, condition: JobComplete},
		{name: "backoffLimit failures still retry",
			spec:     batchv1.JobSpec{BackoffLimit: i32(2)},
			outcomes: "FF", failed: 2, active: pod(2)},
		{name: "one failure more than backoffLimit fails the Job",
			spec:     batchv1.JobSpec{BackoffLimit: i32(2)},
			outcomes: "FFF", failed: 3, condition: JobFailed, reason: ReasonBackoffLimitExceeded},
		{name: "backoffLimit 0 fails at the first failure",
			spec:     batchv1.JobSpec{BackoffLimit: i32(0)},
			outcomes: "F", failed: 1, condition: JobFailed, reason: ReasonBackoffLimitExceeded},
		{name: "the default backoffLimit is 6",
			outcomes: "FFFFFF", failed: 6, active: pod(6)},
		{name: "activeDeadlineSeconds from the first start fails the Job",
			spec:     batchv1.JobSpec{ActiveDeadlineSeconds: i64(600)},
			outcomes: "R", now: jt0.Add(10 * time.Minute), condition: JobFailed, reason: ReasonDeadlineExceeded},
		{name: "before activeDeadlineSeconds the Job runs",
			spec:     batchv1.JobSpec{ActiveDeadlineSeconds: i64(600)},
			outcomes: "R", now: jt0.Add(10*time.Minute - time.Second), active: pod(0)},
		{name: "a Job that never started has no deadline yet",
			spec: batchv1.JobSpec{ActiveDeadlineSeconds: i64(1)}, now: jt0.Add(time.Hour), active: pod(0)},
		{name: "ttlSecondsAfterFinished expires a finished Job",
			spec:     batchv1.JobSpec{TTLSecondsAfterFinished: i32(60)},
			outcomes: "S", now: jt0.Add(2 * time.Minute), succeeded: 1, condition: JobComplete, expired: true},
		{name: "before its ttl a finished Job is listed",
			spec:     batchv1.JobSpec{TTLSecondsAfterFinished: i32(60)},
			outcomes: "S", now: jt0.Add(2*time.Minute - time.Second), succeeded: 1, condition: JobComplete},
		{name: "suspend runs nothing",
			spec: batchv1.JobSpec{Suspend: new(bool)}, active: pod(0)},
		{name: "suspend true runs nothing",
			spec: batchv1.JobSpec{Suspend: func() *bool { b := true; return &b }()}, condition: JobSuspended},
		{name: "a work queue runs parallelism pods until the first success",
			spec: batchv1.JobSpec{Parallelism: i32(3)}, outcomes: "F", failed: 1, active: pod(1, 2, 3)},
		{name: "a work queue is complete at its first success",
			spec: batchv1.JobSpec{Parallelism: i32(3)}, outcomes: "RSR", succeeded: 1, condition: JobComplete},
		{name: "parallelism 0 runs nothing",
			spec: batchv1.JobSpec{Parallelism: i32(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = jt0.Add(time.Hour)
			}
			st := DecideJob("default", "pi", testHash, &tt.spec, recs(tt.outcomes), now)
			if !slices.Equal(st.Active, tt.active) {
				t.Errorf("active = %v, want %v", st.Active, tt.active)
			}
			if st.Succeeded != tt.succeeded || st.Failed != tt.failed {
				t.Errorf("succeeded, failed = %d, %d, want %d, %d", st.Succeeded, st.Failed, tt.succeeded, tt.failed)
			}
			if st.Condition != tt.condition || st.Reason != tt.reason || st.Expired != tt.expired {
				t.Errorf("condition %q reason %q expired %v, want %q %q %v",
					st.Condition, st.Reason, st.Expired, tt.condition, tt.reason, tt.expired)
			}
		})
	}
}

func TestDecideJobIgnoresOtherTemplates(t *testing.T) {
	rs := recs("SSS")
	st := DecideJob("default", "pi", "abcdefabcd", &batchv1.JobSpec{Completions: i32(3)}, rs, jt0)
	if st.Succeeded != 0 || len(st.Active) != 1 {
		t.Errorf("a changed template counted the old template's pods: %+v", st)
	}
	st = DecideJob("other", "pi", testHash, &batchv1.JobSpec{Completions: i32(3)}, rs, jt0)
	if st.Succeeded != 0 {
		t.Errorf("records of another namespace counted: %+v", st)
	}
}

func TestJobProgress(t *testing.T) {
	st := DecideJob("default", "pi", testHash, &batchv1.JobSpec{Completions: i32(5)}, recs("SFS"), jt0)
	if got := st.Progress(); got != "2/5" {
		t.Errorf("Progress = %q, want 2/5", got)
	}
}

// TestMergeIsASemilattice: the union of records is the same whatever the
// order and grouping in which a node hears them, and only moves forward.
func TestMergeIsASemilattice(t *testing.T) {
	var rs []JobRecord
	for _, o := range []Outcome{OutcomeStarted, OutcomeFailed, OutcomeSucceeded} {
		for _, s := range []time.Time{{}, jt0, jt0.Add(time.Second)} {
			for _, f := range []time.Time{{}, jt0.Add(time.Minute), jt0.Add(2 * time.Minute)} {
				if o.finished() == f.IsZero() {
					continue
				}
				rs = append(rs, JobRecord{Namespace: "ns", Pod: "p", Outcome: o, Started: s, Finished: f})
			}
		}
	}
	for _, a := range rs {
		if Merge(a, a) != a {
			t.Errorf("Merge(a, a) != a for %+v", a)
		}
		for _, b := range rs {
			ab := Merge(a, b)
			if ab != Merge(b, a) {
				t.Errorf("Merge not commutative: %+v, %+v", a, b)
			}
			if ab.Outcome < a.Outcome || ab.Outcome < b.Outcome {
				t.Errorf("Merge went back: %+v, %+v -> %+v", a, b, ab)
			}
			for _, c := range rs {
				if Merge(ab, c) != Merge(a, Merge(b, c)) {
					t.Errorf("Merge not associative: %+v, %+v, %+v", a, b, c)
				}
			}
		}
	}
}

func TestJobOf(t *testing.T) {
	for _, tt := range []struct {
		pod, job, hash string
		ok             bool
	}{
		{"pi-0123456789-3", "pi", "0123456789", true},
		{"my-job-0123456789-12", "my-job", "0123456789", true},
		{"hello-29500000-0123456789-0", "hello-29500000", "0123456789", true},
		{"web-0", "", "", false},
		{"pi-012345678-3", "", "", false},
		{"pi-0123456789-x", "", "", false},
	} {
		job, hash, ok := jobOf(tt.pod)
		if job != tt.job || hash != tt.hash || ok != tt.ok {
			t.Errorf("jobOf(%q) = %q, %q, %v; want %q, %q, %v", tt.pod, job, hash, ok, tt.job, tt.hash, tt.ok)
		}
	}
}
