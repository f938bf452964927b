package main

import (
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/status"
)

func TestAgeReadsLikeKubectl(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		ago  time.Duration
		want string
	}{
		{0, "0s"},
		{-time.Minute, "0s"},
		{45 * time.Second, "45s"},
		{119 * time.Second, "119s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{5 * time.Minute, "5m"},
		{42 * time.Minute, "42m"},
		{5*time.Hour + 3*time.Minute, "5h3m"},
		{5 * time.Hour, "5h"},
		{30 * time.Hour, "30h"},
		{3*24*time.Hour + 4*time.Hour, "3d4h"},
		{12 * 24 * time.Hour, "12d"},
		{730 * 24 * time.Hour, "2y"},
		{800 * 24 * time.Hour, "2y70d"},
		{10 * 365 * 24 * time.Hour, "10y"},
	}
	for _, c := range cases {
		if got := age(now.Add(-c.ago), now); got != c.want {
			t.Errorf("age of %v: %q, want %q", c.ago, got, c.want)
		}
	}
}

func TestStatusTable(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	running := &status.Revision{Commit: "0123456789abcdef0123456789abcdef01234567", Subject: "add the web tier",
		Time: ago(26 * time.Hour), LoadedAt: ago(5 * time.Hour)}
	web := plan.PodStatus{Namespace: "default", Name: "web-0", Workload: "Deployment/web", Node: "n1", Phase: plan.PhaseRunning,
		Ready: true, IP: "10.88.0.2", Revision: running.Commit, StartedAt: ago(5 * time.Hour),
		Containers: []plan.ContainerStatus{{Name: "app", State: plan.StateRunning, Ready: true}}}
	cases := []struct {
		name string
		st   status.Node
		wide bool
		want string
	}{{
		name: "restarts say when the last instance ended, summed over containers",
		st: status.Node{Node: "n1", Repo: "/srv/deploy.git", Running: running, Source: status.Source{LastFetch: ago(45 * time.Second)},
			Pods: []plan.PodStatus{{
				Namespace: "default", Name: "crash", Node: "n1", Phase: plan.PhaseRunning, Reason: "CrashLoopBackOff", IP: "10.88.0.3",
				StartedAt: ago(3*time.Minute + 12*time.Second),
				Containers: []plan.ContainerStatus{
					{Name: "a", State: plan.StateWaiting, Reason: "CrashLoopBackOff", Restarts: 4,
						LastTermination: &plan.Termination{Reason: "Error", ExitCode: 1, FinishedAt: ago(5 * time.Minute)}},
					{Name: "b", State: plan.StateRunning, Ready: true, Restarts: 1,
						LastTermination: &plan.Termination{Reason: "OOMKilled", ExitCode: 137, FinishedAt: ago(70 * time.Second)}},
					{Name: "c", State: plan.StateRunning, Ready: true}},
			}, {
				// A restart whose termination is not known prints the count alone.
				Namespace: "default", Name: "done", Node: "n1", Phase: plan.PhaseSucceeded, Reason: "Completed", StartedAt: ago(800 * 24 * time.Hour),
				Containers: []plan.ContainerStatus{{Name: "job", State: plan.StateTerminated, Reason: "Completed", Restarts: 2}},
			}, {
				Namespace: "default", Name: "old", Node: "n1", Phase: plan.PhaseTerminating,
				Containers: []plan.ContainerStatus{{Name: "app", State: plan.StateRunning}, {Name: "init", Init: true, State: plan.StateTerminated}},
			}, web},
		},
		want: `Node:      n1
Repo:      /srv/deploy.git
Revision:  0123456789ab add the web tier (committed 26h ago, running for 5h)
Fetch:     ok, 45s ago

NAMESPACE   NAME    READY   STATUS             RESTARTS      AGE         IP          NODE
default     crash   2/3     CrashLoopBackOff   5 (70s ago)   3m12s       10.88.0.3   n1
default     done    0/1     Completed          2             2y70d       <none>      n1
default     old     0/1     Terminating        0             <unknown>   <none>      n1
default     web-0   1/1     Running            0             5h          10.88.0.2   n1
`,
	}, {
		name: "wide adds the workload and the revision",
		st:   status.Node{Node: "n1", Repo: "/srv/deploy.git", Ref: "main", Path: "prod", Running: running, Pods: []plan.PodStatus{web}},
		wide: true,
		want: `Node:      n1
Repo:      /srv/deploy.git (main) path prod
Revision:  0123456789ab add the web tier (committed 26h ago, running for 5h)

NAMESPACE   NAME    READY   STATUS    RESTARTS   AGE   IP          NODE   WORKLOAD         REVISION
default     web-0   1/1     Running   0          5h    10.88.0.2   n1     Deployment/web   0123456789ab
`,
	}, {
		name: "a refused first revision, failing fetches, no pods and unplaceable ones",
		st: status.Node{Node: "n1", Repo: "/srv/deploy.git",
			Refused: &status.Revision{Commit: "fedcba9876543210fedcba9876543210fedcba98", Subject: "first try", Errors: []string{
				"web.yaml:3:1: Deployment/default/web: spec.replicas: want a number",
				"db.yaml:9:5: StatefulSet/default/db: spec.serviceName: required"}},
			Source:      status.Source{LastError: "fetch /srv/deploy.git: repository not found", Failures: 3, NextRetry: now.Add(40 * time.Second)},
			Unplaceable: []plan.UnplaceablePod{{Namespace: "default", Name: "big-0", Reason: "0/2 nodes are available: 2 insufficient memory."}},
		},
		want: `Node:      n1
Repo:      /srv/deploy.git
Revision:  none yet
Fetch:     failing (3 in a row, next try in 40s): fetch /srv/deploy.git: repository not found

Refused revision fedcba987654 (first try): 2 error(s); no revision runs until one is valid
  web.yaml:3:1: Deployment/default/web: spec.replicas: want a number
  db.yaml:9:5: StatefulSet/default/db: spec.serviceName: required

No pods on this node.

Pods that fit on no node (1):
  default/big-0: 0/2 nodes are available: 2 insufficient memory.
`,
	}, {
		name: "a failing fetch with no retry planned says nothing of one",
		st:   status.Node{Node: "n1", Repo: "/srv/deploy.git", Running: running, Source: status.Source{LastError: "timeout", Failures: 1}},
		want: `Node:      n1
Repo:      /srv/deploy.git
Revision:  0123456789ab add the web tier (committed 26h ago, running for 5h)
Fetch:     failing (1 in a row): timeout

No pods on this node.
`,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeStatus(&b, c.st, c.wide, now); err != nil {
				t.Fatal(err)
			}
			if b.String() != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), c.want)
			}
		})
	}
}
