package plan

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	// Nodes without a time zone database use Go's, so that a CronJob's
	// timeZone means the same on every node.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
)

// CronSchedule is a parsed CronJob schedule in its time zone.
type CronSchedule struct {
	spec  cron.Schedule
	every time.Duration // for @every: runs at multiples of it since the Unix epoch
	loc   *time.Location
}

// ParseCronSchedule parses a CronJob's schedule, as Kubernetes does (the
// standard five fields, or @yearly, @annually, @monthly, @weekly, @daily,
// @midnight, @hourly, @every DURATION), in the time zone named by timeZone
// (an IANA name; "" is UTC, so that every node computes the same times
// whatever its own zone is).
func ParseCronSchedule(schedule, timeZone string) (*CronSchedule, error) {
	s := strings.TrimSpace(schedule)
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return nil, errors.New("a time zone in the schedule is not supported: set spec.timeZone")
	}
	loc := time.UTC
	if timeZone != "" {
		l, err := time.LoadLocation(timeZone)
		if err != nil || timeZone == "Local" {
			return nil, fmt.Errorf("unknown time zone %q", timeZone)
		}
		loc = l
	}
	spec, err := cron.ParseStandard(s)
	if err != nil {
		return nil, err
	}
	cs := &CronSchedule{spec: spec, loc: loc}
	if d, ok := spec.(cron.ConstantDelaySchedule); ok {
		cs.every = d.Delay
	}
	return cs, nil
}

var epoch = time.Unix(0, 0).UTC()

// Next is the first scheduled time after t.
func (s *CronSchedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		return epoch.Add((t.Sub(epoch)/s.every + 1) * s.every)
	}
	return s.spec.Next(t.In(s.loc)).UTC()
}

// Last is the latest scheduled time at or before t; zero when there is
// none within five years.
func (s *CronSchedule) Last(t time.Time) time.Time {
	if s.every > 0 {
		return epoch.Add(t.Sub(epoch) / s.every * s.every)
	}
	// Search backwards in windows of growing length; inside a window, walk
	// forwards with Next, which is all the cron library offers. A window
	// holds at most a few hundred runs of a schedule whose previous,
	// four times shorter window held none.
	t = t.Truncate(time.Second)
	for w := 2 * time.Minute; w <= 5*366*24*time.Hour; w *= 4 {
		var last time.Time
		for x := s.Next(t.Add(-w)); !x.IsZero() && !x.After(t); x = s.Next(x) {
			last = x
		}
		if !last.IsZero() {
			return last
		}
	}
	return time.Time{}
}

// CronRunName is the name of the Job a CronJob runs for the given
// scheduled time, as Kubernetes names it: <cronjob>-<minutes since epoch>.
func CronRunName(cronJob string, scheduled time.Time) string {
	return cronJob + "-" + strconv.FormatInt(scheduled.Unix()/60, 10)
}

// CronJobStatus is where a CronJob stands.
type CronJobStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Schedule  string `json:"schedule"`
	TimeZone  string `json:"timeZone,omitempty"`
	Suspended bool   `json:"suspended,omitempty"`
	// LastScheduleTime is the scheduled time of the latest run;
	// NextScheduleTime the next time the schedule fires.
	LastScheduleTime time.Time `json:"lastScheduleTime,omitzero"`
	NextScheduleTime time.Time `json:"nextScheduleTime,omitzero"`
	// Active are the runs (Jobs) that run now.
	Active []string `json:"active,omitempty"`
	// Runs are the runs that are active or kept by the history limits, by
	// scheduled time.
	Runs []JobStatus `json:"runs,omitempty"`
	// Error says why the schedule cannot be used.
	Error string `json:"error,omitempty"`
}

// cronRun is one run of a CronJob that has pods to run.
type cronRun struct {
	name string
	st   JobStatus
}

// DecideCronJob is the state of a CronJob at now, from the records of its
// runs' pods (started holds the scheduled times of the runs that have
// records, in any order), and the runs whose pods should run. Every node
// computes the same from the same records and the same minute, so a run
// starts once, on the node placement gives its pod to:
//
//   - a run is the Job <cronjob>-<minutes since epoch> of a scheduled time;
//   - the latest scheduled time at or before now starts, unless the
//     CronJob is suspended, startingDeadlineSeconds have passed since that
//     time, or concurrencyPolicy is Forbid and an earlier run is active;
//   - a run that has started (it has records) runs until it finishes, but
//     with concurrencyPolicy Replace only the latest run runs;
//   - history limits (successfulJobsHistoryLimit, default 3;
//     failedJobsHistoryLimit, default 1) say which finished runs are
//     listed.
func DecideCronJob(cj *batchv1.CronJob, started []time.Time, recs Records, now time.Time) (CronJobStatus, []cronRun) {
	st := CronJobStatus{Namespace: cj.Namespace, Name: cj.Name, Schedule: cj.Spec.Schedule}
	if cj.Spec.TimeZone != nil {
		st.TimeZone = *cj.Spec.TimeZone
	}
	st.Suspended = cj.Spec.Suspend != nil && *cj.Spec.Suspend
	sched, err := ParseCronSchedule(cj.Spec.Schedule, st.TimeZone)
	if err != nil {
		st.Error = err.Error()
		return st, nil
	}
	spec := &cj.Spec.JobTemplate.Spec
	hash := TemplateHash(&spec.Template)
	decide := func(at time.Time) cronRun {
		name := CronRunName(cj.Name, at)
		return cronRun{name: name, st: DecideJob(cj.Namespace, name, hash, spec, recs, now)}
	}
	started = slices.Clone(started)
	slices.SortFunc(started, time.Time.Compare)
	started = slices.Compact(started)
	var runs []cronRun
	var times []time.Time
	active := 0
	for _, at := range started {
		if at.After(now) {
			continue
		}
		r := decide(at)
		runs, times = append(runs, r), append(times, at)
		if !r.st.Finished() {
			active++
		}
	}
	if !now.IsZero() {
		st.NextScheduleTime = sched.Next(now)
		last := sched.Last(now)
		inDeadline := cj.Spec.StartingDeadlineSeconds == nil ||
			now.Sub(last) <= time.Duration(*cj.Spec.StartingDeadlineSeconds)*time.Second
		known := len(times) > 0 && !times[len(times)-1].Before(last)
		forbidden := cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent && active > 0
		if !last.IsZero() && !known && !st.Suspended && inDeadline && !forbidden {
			runs, times = append(runs, decide(last)), append(times, last)
		}
	}
	if len(times) > 0 {
		st.LastScheduleTime = times[len(times)-1]
	}
	successful, failed := 3, 1
	if l := cj.Spec.SuccessfulJobsHistoryLimit; l != nil {
		successful = max(0, int(*l))
	}
	if l := cj.Spec.FailedJobsHistoryLimit; l != nil {
		failed = max(0, int(*l))
	}
	var running []cronRun
	var listed []JobStatus
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		switch {
		case r.st.Condition == JobComplete:
			if successful > 0 {
				successful--
				listed = append(listed, r.st)
			}
		case r.st.Condition == JobFailed:
			if failed > 0 {
				failed--
				listed = append(listed, r.st)
			}
		case cj.Spec.ConcurrencyPolicy == batchv1.ReplaceConcurrent && len(running) > 0:
			// Replaced by a later run.
		default:
			listed = append(listed, r.st)
			running = append(running, r)
		}
	}
	slices.Reverse(listed)
	slices.Reverse(running)
	for _, r := range running {
		st.Active = append(st.Active, r.name)
	}
	st.Runs = listed
	return st, running
}

// cronIndex lists, per CronJob (namespace, name and template hash), the
// scheduled times of its runs that have records.
type cronIndex map[cronKey][]time.Time

type cronKey struct{ namespace, cronJob, hash string }

func newCronIndex(recs Records) cronIndex {
	idx := cronIndex{}
	for k := range recs {
		job, hash, ok := jobOf(k.Name)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(job, '-')
		if i <= 0 || !allDigits(job[i+1:]) || len(job)-i-1 > 12 {
			continue
		}
		m, _ := strconv.ParseInt(job[i+1:], 10, 64)
		ck := cronKey{k.Namespace, job[:i], hash}
		at := time.Unix(m*60, 0).UTC()
		if !slices.Contains(idx[ck], at) {
			idx[ck] = append(idx[ck], at)
		}
	}
	return idx
}
