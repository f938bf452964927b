package plan

import (
	"slices"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestCronNextAndLast(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		x, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return x.UTC()
	}
	tests := []struct {
		name, schedule, tz string
		now                string
		last, next         string
	}{
		{"every minute", "* * * * *", "", "2026-03-01T12:00:30Z", "2026-03-01T12:00:00Z", "2026-03-01T12:01:00Z"},
		{"at the minute itself", "* * * * *", "", "2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z", "2026-03-01T12:01:00Z"},
		{"every 5 minutes", "*/5 * * * *", "", "2026-03-01T12:07:00Z", "2026-03-01T12:05:00Z", "2026-03-01T12:10:00Z"},
		{"@hourly", "@hourly", "", "2026-03-01T12:59:59Z", "2026-03-01T12:00:00Z", "2026-03-01T13:00:00Z"},
		{"@daily", "@daily", "", "2026-03-01T12:00:00Z", "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"},
		{"@yearly", "@yearly", "", "2026-03-01T12:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"leap day", "0 0 29 2 *", "", "2026-03-01T00:00:00Z", "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"@every is counted from the epoch", "@every 1h30m", "", "2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z", "2026-03-01T13:30:00Z"},
		{"weekday names", "0 9 * * MON-FRI", "", "2026-03-01T12:00:00Z", "2026-02-27T09:00:00Z", "2026-03-02T09:00:00Z"},
		{"a time zone shifts the hour", "0 9 * * *", "Europe/Berlin", "2026-03-01T12:00:00Z", "2026-03-01T08:00:00Z", "2026-03-02T08:00:00Z"},
		// Berlin springs forward on 2026-03-29 at 02:00 to 03:00: 02:30
		// does not exist that day, and the run is skipped.
		{"a time lost to DST is skipped", "30 2 * * *", "Europe/Berlin", "2026-03-29T12:00:00Z", "2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"},
		{"after DST the offset changes", "0 9 * * *", "Europe/Berlin", "2026-03-29T12:00:00Z", "2026-03-29T07:00:00Z", "2026-03-30T07:00:00Z"},
		// New York falls back on 2026-11-01 at 02:00 to 01:00: 01:30
		// happens twice and runs twice, as in Kubernetes, which uses the
		// same cron library; the two runs have different names.
		{"a time repeated by DST runs at both", "30 1 * * *", "America/New_York", "2026-11-01T12:00:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"},
		{"the first of the repeated times", "30 1 * * *", "America/New_York", "2026-11-01T06:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseCronSchedule(tt.schedule, tt.tz)
			if err != nil {
				t.Fatal(err)
			}
			now := utc(tt.now)
			if got := s.Last(now); !got.Equal(utc(tt.last)) {
				t.Errorf("Last(%s) = %s, want %s", tt.now, got.Format(time.RFC3339), tt.last)
			}
			if got := s.Next(now); !got.Equal(utc(tt.next)) {
				t.Errorf("Next(%s) = %s, want %s", tt.now, got.Format(time.RFC3339), tt.next)
			}
		})
	}
}

func TestParseCronScheduleErrors(t *testing.T) {
	for _, tt := range []struct{ schedule, tz string }{
		{"* * * *", ""},
		{"61 * * * *", ""},
		{"@fortnightly", ""},
		{"TZ=UTC * * * * *", ""},
		{"CRON_TZ=Europe/Berlin 0 9 * * *", ""},
		{"* * * * *", "Mars/Olympus"},
		{"* * * * *", "Local"},
	} {
		if _, err := ParseCronSchedule(tt.schedule, tt.tz); err == nil {
			t.Errorf("ParseCronSchedule(%q, %q) took it", tt.schedule, tt.tz)
		}
	}
}

func TestCronRunName(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if got, want := CronRunName("hello", at), "hello-29539440"; got != want {
		t.Errorf("CronRunName = %q, want %q", got, want)
	}
	// The name is of the instant, whatever zone the time is written in.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if got := CronRunName("hello", at.In(berlin)); got != "hello-29539440" {
		t.Errorf("CronRunName in Berlin = %q", got)
	}
}

func testCronJob(schedule string, mod func(*batchv1.CronJobSpec)) *batchv1.CronJob {
	cj := &batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello"},
		Spec: batchv1.CronJobSpec{
			Schedule: schedule,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyOnFailure,
					Containers: []corev1.Container{{Name: "hello", Image: "busybox"}}},
			}}},
		},
	}
	if mod != nil {
		mod(&cj.Spec)
	}
	return cj
}

// runRecords records the run's single pod with outcome o.
func runRecords(rs Records, cj *batchv1.CronJob, at time.Time, o Outcome) {
	hash := TemplateHash(&cj.Spec.JobTemplate.Spec.Template)
	r := JobRecord{Namespace: cj.Namespace, Pod: JobPodName(CronRunName(cj.Name, at), hash, 0), Outcome: o, Started: at}
	if o.finished() {
		r.Finished = at.Add(10 * time.Second)
	}
	rs.Add(r)
}

func cronActive(t *testing.T, cj *batchv1.CronJob, rs Records, now time.Time) []string {
	t.Helper()
	st, runs := DecideCronJob(cj, newCronIndex(rs)[cronKey{cj.Namespace, cj.Name, TemplateHash(&cj.Spec.JobTemplate.Spec.Template)}], rs, now)
	if st.Error != "" {
		t.Fatal(st.Error)
	}
	var names []string
	for _, r := range runs {
		names = append(names, r.name)
	}
	if !slices.Equal(names, st.Active) {
		t.Errorf("runs %v but Active %v", names, st.Active)
	}
	return names
}

func TestDecideCronJob(t *testing.T) {
	m := func(i int) time.Time { return time.Date(2026, 3, 1, 12, i, 0, 0, time.UTC) }
	name := func(i int) string { return CronRunName("hello", m(i)) }
	t.Run("the latest scheduled time runs", func(t *testing.T) {
		got := cronActive(t, testCronJob("* * * * *", nil), Records{}, m(3).Add(20*time.Second))
		if !slices.Equal(got, []string{name(3)}) {
			t.Errorf("active %v", got)
		}
	})
	t.Run("a finished run does not run again", func(t *testing.T) {
		cj := testCronJob("* * * * *", nil)
		rs := Records{}
		runRecords(rs, cj, m(3), OutcomeSucceeded)
		if got := cronActive(t, cj, rs, m(3).Add(30*time.Second)); len(got) != 0 {
			t.Errorf("active %v", got)
		}
	})
	t.Run("Allow runs an unfinished earlier run beside the new one", func(t *testing.T) {
		cj := testCronJob("* * * * *", nil)
		rs := Records{}
		runRecords(rs, cj, m(2), OutcomeStarted)
		if got := cronActive(t, cj, rs, m(3)); !slices.Equal(got, []string{name(2), name(3)}) {
			t.Errorf("active %v", got)
		}
	})
	t.Run("Forbid waits for the earlier run", func(t *testing.T) {
		cj := testCronJob("* * * * *", func(s *batchv1.CronJobSpec) { s.ConcurrencyPolicy = batchv1.ForbidConcurrent })
		rs := Records{}
		runRecords(rs, cj, m(2), OutcomeStarted)
		if got := cronActive(t, cj, rs, m(3)); !slices.Equal(got, []string{name(2)}) {
			t.Errorf("active %v", got)
		}
	})
	t.Run("Replace stops the earlier run", func(t *testing.T) {
		cj := testCronJob("* * * * *", func(s *batchv1.CronJobSpec) { s.ConcurrencyPolicy = batchv1.ReplaceConcurrent })
		rs := Records{}
		runRecords(rs, cj, m(2), OutcomeStarted)
		if got := cronActive(t, cj, rs, m(3)); !slices.Equal(got, []string{name(3)}) {
			t.Errorf("active %v", got)
		}
	})
	t.Run("suspend starts nothing new", func(t *testing.T) {
		cj := testCronJob("* * * * *", func(s *batchv1.CronJobSpec) { b := true; s.Suspend = &b })
		if got := cronActive(t, cj, Records{}, m(3)); len(got) != 0 {
			t.Errorf("active %v", got)
		}
	})
	t.Run("past startingDeadlineSeconds a run is missed", func(t *testing.T) {
		cj := testCronJob("0 * * * *", func(s *batchv1.CronJobSpec) { s.StartingDeadlineSeconds = i64(60) })
		if got := cronActive(t, cj, Records{}, m(1).Add(time.Second)); len(got) != 0 {
			t.Errorf("active %v", got)
		}
		if got := cronActive(t, cj, Records{}, m(1)); !slices.Equal(got, []string{name(0)}) {
			t.Errorf("within the deadline: active %v", got)
		}
	})
	t.Run("history limits list the latest finished runs", func(t *testing.T) {
		cj := testCronJob("* * * * *", func(s *batchv1.CronJobSpec) {
			s.SuccessfulJobsHistoryLimit = i32(2)
			s.FailedJobsHistoryLimit = i32(1)
			s.JobTemplate.Spec.BackoffLimit = i32(0)
		})
		rs := Records{}
		for i, o := range []Outcome{OutcomeSucceeded, OutcomeFailed, OutcomeSucceeded, OutcomeFailed, OutcomeSucceeded} {
			runRecords(rs, cj, m(i), o)
		}
		st, _ := DecideCronJob(cj, newCronIndex(rs)[cronKey{"default", "hello", TemplateHash(&cj.Spec.JobTemplate.Spec.Template)}], rs, m(4).Add(30*time.Second))
		var got []string
		for _, r := range st.Runs {
			got = append(got, r.Name)
		}
		if want := []string{name(2), name(3), name(4)}; !slices.Equal(got, want) {
			t.Errorf("listed %v, want %v", got, want)
		}
		if !st.LastScheduleTime.Equal(m(4)) || !st.NextScheduleTime.Equal(m(5)) {
			t.Errorf("last %s next %s", st.LastScheduleTime, st.NextScheduleTime)
		}
	})
}

// TestCronJobRunsOncePerMinute: three nodes evaluating placement at any
// moment of a minute (their clocks a few seconds apart) name the same run
// and give its one pod to the same node; when the pod's node records it,
// the run does not run again that minute.
func TestCronJobRunsOncePerMinute(t *testing.T) {
	cj := testCronJob("* * * * *", nil)
	objects := []runtime.Object{cj}
	nodes := []Node{{Name: "n1"}, {Name: "n2"}, {Name: "n3"}}
	for i := range nodes {
		nodes[i].Allocatable = Resources{MilliCPU: 1000, Memory: 1 << 30, Pods: 110}
	}
	rs := Records{}
	ran := map[string]int{}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for sec := 0; sec < 10*60; sec += 7 {
		now := start.Add(time.Duration(sec) * time.Second)
		var owners []string
		for skew := range 3 {
			p := ScheduleBatch(objects, nodes, Batch{Records: rs, Now: now.Add(time.Duration(skew) * time.Second)})
			for _, pod := range p.Pods {
				owners = append(owners, pod.Name+"@"+pod.Node)
			}
		}
		if len(owners) == 0 {
			continue
		}
		if len(owners) != 3 || owners[0] != owners[1] || owners[1] != owners[2] {
			// Near a minute boundary one clock may be in the next minute.
			if now.Add(2*time.Second).Minute() == now.Minute() {
				t.Fatalf("at %s nodes disagree: %v", now.Format(time.TimeOnly), owners)
			}
			continue
		}
		// The pod's node runs it and records the outcome.
		p := ScheduleBatch(objects, nodes, Batch{Records: rs, Now: now})
		pod := p.Pods[0]
		ran[pod.Name]++
		rs.Add(JobRecord{Namespace: "default", Pod: pod.Name, Outcome: OutcomeSucceeded, Started: now, Finished: now})
	}
	if len(ran) != 10 {
		t.Errorf("%d runs in 10 minutes, want 10: %v", len(ran), ran)
	}
	for name, n := range ran {
		if n != 1 {
			t.Errorf("%s ran %d times", name, n)
		}
	}
}

func TestLiveRecords(t *testing.T) {
	cj := testCronJob("* * * * *", func(s *batchv1.CronJobSpec) { s.SuccessfulJobsHistoryLimit = i32(1) })
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pi"}}
	rs := recs("SF") // of Job pi with testHash: the template no longer matches
	m := func(i int) time.Time { return time.Date(2026, 3, 1, 12, i, 0, 0, time.UTC) }
	for i := range 3 {
		runRecords(rs, cj, m(i), OutcomeSucceeded)
	}
	rs.Add(JobRecord{Namespace: "default", Pod: JobPodName("pi", TemplateHash(&job.Spec.Template), 0), Outcome: OutcomeSucceeded})
	live := LiveRecords([]runtime.Object{cj, job}, rs, m(2).Add(30*time.Second))
	var got []string
	for _, r := range live.Sorted() {
		got = append(got, r.Pod)
	}
	hash := TemplateHash(&cj.Spec.JobTemplate.Spec.Template)
	want := []string{JobPodName(CronRunName("hello", m(2)), hash, 0), JobPodName("pi", TemplateHash(&job.Spec.Template), 0)}
	if !slices.Equal(got, want) {
		t.Errorf("live records %v, want %v", got, want)
	}
}
