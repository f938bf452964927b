package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
)

// writeBatch prints the Jobs (kubectl get jobs' columns) and CronJobs
// (kubectl get cronjobs', with NEXT SCHEDULE); Jobs past their
// ttlSecondsAfterFinished are left out.
func writeBatch(w io.Writer, jobs []plan.JobStatus, crons []plan.CronJobStatus, now time.Time) error {
	var listed []plan.JobStatus
	for _, j := range jobs {
		if !j.Expired {
			listed = append(listed, j)
		}
	}
	if len(listed) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, "JOB\tCOMPLETIONS\tSTATUS\tFAILED\tACTIVE\tDURATION")
		for _, j := range listed {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", qualified(j.Namespace, j.Name), j.Progress(),
				JobState(&j), j.Failed, len(j.Active), jobDuration(&j, now))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(crons) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, "CRONJOB\tSCHEDULE\tTIMEZONE\tSUSPEND\tACTIVE\tLAST SCHEDULE\tNEXT SCHEDULE")
		for _, c := range crons {
			tz := c.TimeZone
			if tz == "" {
				tz = "UTC"
			}
			last, next := "<none>", "<none>"
			if !c.LastScheduleTime.IsZero() {
				last = Age(c.LastScheduleTime, now) + " ago"
			}
			if !c.NextScheduleTime.IsZero() && !c.Suspended {
				next = "in " + Age(now, c.NextScheduleTime)
			}
			if c.Error != "" {
				next = "error: " + c.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%s\t%s\n", qualified(c.Namespace, c.Name), c.Schedule, tz,
				c.Suspended, len(c.Active), last, next)
			for _, r := range c.Runs {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t\t%d\t\t\n", r.Name, r.Progress(), JobState(&r), len(r.Active))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// JobState is a Job's STATUS: Running, Complete, Suspended, or Failed with
// its reason.
func JobState(j *plan.JobStatus) string {
	switch j.Condition {
	case "":
		return "Running"
	case plan.JobFailed:
		return "Failed (" + j.Reason + ")"
	}
	return j.Condition
}

func jobDuration(j *plan.JobStatus, now time.Time) string {
	if j.StartTime.IsZero() {
		return "-"
	}
	end := now
	if !j.CompletionTime.IsZero() {
		end = j.CompletionTime
	}
	return Age(j.StartTime, end)
}

func qualified(ns, name string) string {
	if ns == "" || ns == "default" {
		return name
	}
	return strings.Join([]string{ns, name}, "/")
}
