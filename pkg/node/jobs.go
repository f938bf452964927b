package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/plan"
)

// jobBook is what the node knows of the pods of Jobs and CronJobs: the
// union of the records it made itself (of the pods it ran) and those it
// heard from peers, kept in the data dir so that a restarted agent does
// not run a finished Job again. own are the pods this node recorded,
// which it keeps gossiping as pods of its own (phase Succeeded or Failed)
// for as long as the records decide something.
type jobBook struct {
	path string
	recs plan.Records
	own  map[plan.Key]bool
}

type jobBookFile struct {
	Records []jobRecordJSON `json:"records"`
}

type jobRecordJSON struct {
	Namespace string    `json:"namespace"`
	Pod       string    `json:"pod"`
	Outcome   string    `json:"outcome"`
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
	Own       bool      `json:"own,omitempty"`
}

var outcomes = map[string]plan.Outcome{
	"Started": plan.OutcomeStarted, "Failed": plan.OutcomeFailed, "Succeeded": plan.OutcomeSucceeded,
}

func newJobBook(dataDir string) *jobBook {
	return &jobBook{path: filepath.Join(dataDir, "agent", "jobs.json"), recs: plan.Records{}, own: map[plan.Key]bool{}}
}

// load reads the records kept by an earlier run of the agent.
func (b *jobBook) load() error {
	data, err := os.ReadFile(b.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var f jobBookFile
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("%s: %w", b.path, err)
	}
	for _, r := range f.Records {
		o, ok := outcomes[r.Outcome]
		if !ok {
			return fmt.Errorf("%s: %s/%s: unknown outcome %q", b.path, r.Namespace, r.Pod, r.Outcome)
		}
		rec := plan.JobRecord{Namespace: r.Namespace, Pod: r.Pod, Outcome: o, Started: r.Started, Finished: r.Finished}
		b.recs.Add(rec)
		if r.Own {
			b.own[rec.Key()] = true
		}
	}
	return nil
}

// save writes the records, atomically.
func (b *jobBook) save() error {
	var f jobBookFile
	for _, r := range b.recs.Sorted() {
		f.Records = append(f.Records, jobRecordJSON{Namespace: r.Namespace, Pod: r.Pod, Outcome: r.Outcome.String(),
			Started: r.Started, Finished: r.Finished, Own: b.own[r.Key()]})
	}
	data, _ := json.Marshal(f)
	if err := os.MkdirAll(filepath.Dir(b.path), 0o700); err != nil {
		return err
	}
	tmp := b.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, b.path)
}

// batchWorkload reports whether a pod of workload ("Kind/name") is one
// whose outcome is recorded.
func batchWorkload(workload string) bool {
	return strings.HasPrefix(workload, "Job/") || strings.HasPrefix(workload, "CronJob/")
}

// observe records what the node saw of one of its own pods, and reports
// whether the records changed.
func (b *jobBook) observe(st *plan.PodStatus, now time.Time) bool {
	if st == nil || !batchWorkload(st.Workload) {
		return false
	}
	r := plan.JobRecord{Namespace: st.Namespace, Pod: st.Name, Started: st.StartedAt.UTC().Truncate(time.Second)}
	switch st.Phase {
	case plan.PhaseRunning:
		r.Outcome = plan.OutcomeStarted
	case plan.PhaseSucceeded:
		r.Outcome, r.Finished = plan.OutcomeSucceeded, now.UTC().Truncate(time.Second)
	case plan.PhaseFailed:
		r.Outcome, r.Finished = plan.OutcomeFailed, now.UTC().Truncate(time.Second)
	default:
		return false
	}
	if r.Started.IsZero() {
		r.Started = now.UTC().Truncate(time.Second)
	}
	changed := b.recs.Add(r)
	if !b.own[r.Key()] {
		b.own[r.Key()] = true
		changed = true
	}
	return changed
}

// hear merges what peers gossip of their Jobs' pods (started, succeeded,
// failed), and reports whether the records changed.
func (b *jobBook) hear(states map[string]gossip.NodeState, self string) bool {
	changed := false
	for node, st := range states {
		if node == self {
			continue
		}
		for _, p := range st.Pods {
			if !batchWorkload(p.Workload) {
				continue
			}
			r := plan.JobRecord{Namespace: p.Namespace, Pod: p.Name, Started: p.StartedAt}
			switch p.Phase {
			case plan.PhaseRunning:
				// Its start: every node counts activeDeadlineSeconds
				// from the same time.
				if p.StartedAt.IsZero() {
					continue
				}
				r.Outcome = plan.OutcomeStarted
			case plan.PhaseSucceeded:
				r.Outcome = plan.OutcomeSucceeded
			case plan.PhaseFailed:
				r.Outcome = plan.OutcomeFailed
			default:
				continue
			}
			if b.recs.Add(r) {
				changed = true
			}
		}
	}
	return changed
}

// prune forgets the records that no longer decide anything.
func (b *jobBook) prune(live plan.Records) bool {
	if len(live) == len(b.recs) {
		return false
	}
	b.recs = live
	for k := range b.own {
		if _, ok := live[k]; !ok {
			delete(b.own, k)
		}
	}
	return true
}

// ownPods are the finished pods this node recorded and no longer runs, as
// it gossips them: so peers learn, and keep learning after a restart of
// theirs, that they must not run again.
func (b *jobBook) ownPods(running map[plan.Key]plan.PodStatus) []gossip.PodStatus {
	var out []gossip.PodStatus
	for k := range b.own {
		r, ok := b.recs[k]
		if _, runs := running[k]; !ok || runs || r.Outcome == plan.OutcomeStarted {
			continue
		}
		phase := plan.PhaseSucceeded
		if r.Outcome == plan.OutcomeFailed {
			phase = plan.PhaseFailed
		}
		job, _ := plan.JobOfPod(r.Pod)
		out = append(out, gossip.PodStatus{Namespace: r.Namespace, Name: r.Pod, Phase: phase,
			StartedAt: r.Started, Workload: "Job/" + job})
	}
	return out
}

// batch is what placement needs of Jobs at now (a.mu held): the records,
// merged with what peers gossip and pruned to those that still decide
// something.
func (a *Agent) batch(now time.Time) plan.Batch {
	changed := false
	if a.cfg.Cluster != nil {
		changed = a.jobs.hear(a.cfg.Cluster.States(), a.cfg.Node.Name)
	}
	if a.jobs.prune(plan.LiveRecords(a.objects, a.jobs.recs, now)) {
		changed = true
	}
	if changed {
		if err := a.jobs.save(); err != nil {
			a.log.Warn("saving job records", "err", err)
		}
	}
	return plan.Batch{Records: a.jobs.recs, Now: now}
}

// nextCronRun is the earliest next run of the CronJobs, when placement
// must look again.
func nextCronRun(crons []plan.CronJobStatus) time.Time {
	var t time.Time
	for _, c := range crons {
		if n := c.NextScheduleTime; !n.IsZero() && !c.Suspended && (t.IsZero() || n.Before(t)) {
			t = n
		}
	}
	return t
}
