package status

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
)

func TestWriteClusterShowsJobsAndCronJobs(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
	c := Cluster{Node: "n1",
		Jobs: []plan.JobStatus{
			{Namespace: "default", Name: "pi", Completions: 5, Succeeded: 2, Failed: 1, Active: []string{"a", "b"}, StartTime: now.Add(-90 * time.Second)},
			{Namespace: "batch", Name: "once", Completions: 1, Failed: 7, Condition: plan.JobFailed, Reason: plan.ReasonBackoffLimitExceeded},
			{Namespace: "default", Name: "old", Completions: 1, Succeeded: 1, Condition: plan.JobComplete, Expired: true},
		},
		CronJobs: []plan.CronJobStatus{{Namespace: "default", Name: "hello", Schedule: "* * * * *",
			LastScheduleTime: now.Add(-30 * time.Second), NextScheduleTime: now.Add(30 * time.Second),
			Active: []string{"hello-29539440"},
			Runs:   []plan.JobStatus{{Name: "hello-29539440", Completions: 1, Active: []string{"x"}}}}},
	}
	var b bytes.Buffer
	if err := WriteCluster(&b, c, false, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	rows := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		rows[strings.Join(strings.Fields(l), " ")] = true
	}
	for _, want := range []string{
		"JOB COMPLETIONS STATUS FAILED ACTIVE DURATION",
		"pi 2/5 Running 1 2 90s",
		"batch/once 0/1 Failed (BackoffLimitExceeded) 7 0 -",
		"CRONJOB SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE NEXT SCHEDULE",
		"hello * * * * * UTC false 1 30s ago in 30s",
		"hello-29539440 0/1 Running 1",
	} {
		if !rows[want] {
			t.Errorf("no row %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "old") {
		t.Errorf("an expired Job is listed:\n%s", out)
	}
}
