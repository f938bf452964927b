package status

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
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
		if got := Age(now.Add(-c.ago), now); got != c.want {
			t.Errorf("age of %v: %q, want %q", c.ago, got, c.want)
		}
	}
}

func TestWriteCluster(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	running := &Revision{Commit: "0123456789abcdef0123456789abcdef01234567", Subject: "add the web tier",
		Time: ago(26 * time.Hour), LoadedAt: ago(5 * time.Hour)}
	web := plan.PodStatus{Namespace: "default", Name: "web-0", Workload: "Deployment/web", Node: "n1", Phase: plan.PhaseRunning,
		Ready: true, IP: "10.88.0.2", Revision: running.Commit, StartedAt: ago(5 * time.Hour),
		Containers: []plan.ContainerStatus{{Name: "app", State: plan.StateRunning, Ready: true}}}
	cases := []struct {
		name string
		c    Cluster
		wide bool
		want string
	}{{
		name: "restarts say when the last instance ended, summed over containers",
		c: Cluster{Node: "n1", Repo: "/srv/deploy.git", Running: running, Source: Source{LastFetch: ago(45 * time.Second)},
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
		c:    Cluster{Node: "n1", Repo: "/srv/deploy.git", Ref: "main", Path: "prod", Running: running, Pods: []plan.PodStatus{web}},
		wide: true,
		want: `Node:      n1
Repo:      /srv/deploy.git (main) path prod
Revision:  0123456789ab add the web tier (committed 26h ago, running for 5h)

NAMESPACE   NAME    READY   STATUS    RESTARTS   AGE   IP          NODE   WORKLOAD         REVISION
default     web-0   1/1     Running   0          5h    10.88.0.2   n1     Deployment/web   0123456789ab
`,
	}, {
		name: "a refused first revision, failing fetches, no pods and unplaceable ones",
		c: Cluster{Node: "n1", Repo: "/srv/deploy.git",
			Refused: &Revision{Commit: "fedcba9876543210fedcba9876543210fedcba98", Subject: "first try", Errors: []string{
				"web.yaml:3:1: Deployment/default/web: spec.replicas: want a number",
				"db.yaml:9:5: StatefulSet/default/db: spec.serviceName: required"}},
			Source:      Source{LastError: "fetch /srv/deploy.git: repository not found", Failures: 3, NextRetry: now.Add(40 * time.Second)},
			Unplaceable: []plan.UnplaceablePod{{Namespace: "default", Name: "big-0", Reason: "0/2 nodes are available: 2 insufficient memory."}},
		},
		want: `Node:      n1
Repo:      /srv/deploy.git
Revision:  none yet
Fetch:     failing (3 in a row, next try in 40s): fetch /srv/deploy.git: repository not found

Refused revision fedcba987654 (first try): 2 error(s); no revision runs until one is valid
  web.yaml:3:1: Deployment/default/web: spec.replicas: want a number
  db.yaml:9:5: StatefulSet/default/db: spec.serviceName: required

No pods in the cluster.

Pods that fit on no node (1):
  default/big-0: 0/2 nodes are available: 2 insufficient memory.
`,
	}, {
		name: "a failing fetch with no retry planned says nothing of one",
		c:    Cluster{Node: "n1", Repo: "/srv/deploy.git", Running: running, Source: Source{LastError: "timeout", Failures: 1}},
		want: `Node:      n1
Repo:      /srv/deploy.git
Revision:  0123456789ab add the web tier (committed 26h ago, running for 5h)
Fetch:     failing (1 in a row): timeout

No pods in the cluster.
`,
	}, {
		name: "a cluster shows who runs and refused which revision, and gossiped pods as far as they are known",
		c: Cluster{Node: "n1", ClusterName: "prod", Repo: "/srv/deploy.git", Running: running, Quorum: true,
			Members: []Member{
				{Name: "n1", Status: MemberAlive, Revision: running.Commit, Refused: "fedcba9876543210fedcba9876543210fedcba98", RefusedError: "web.yaml:3:1: Deployment/default/web: spec.replicas: want a number"},
				{Name: "n2", Status: MemberAlive, Revision: running.Commit},
				{Name: "n3", Status: MemberDead, Revision: "89abcdef0123456789abcdef0123456789abcdef", Refused: "fedcba9876543210fedcba9876543210fedcba98"},
				{Name: "n4", Status: MemberSuspect},
			},
			Pods: []plan.PodStatus{web,
				{Namespace: "default", Name: "web-1", Node: "n2", Phase: plan.PhaseRunning, Ready: true, IP: "10.88.1.2", Revision: running.Commit},
				{Namespace: "default", Name: "web-2", Node: "n3", Phase: plan.PhasePending, Reason: "ImagePullBackOff"},
			}},
		wide: true,
		want: `Node:      n1
Repo:      /srv/deploy.git
Revision:  0123456789ab add the web tier (committed 26h ago, running for 5h)
Cluster:   prod, 4 nodes: 2 alive, 1 suspect, 1 dead
Running:   0123456789ab on n1, n2
           89abcdef0123 on n3 (dead)
           no revision yet on n4 (suspect)
Refused:   fedcba987654 by n1, n3: web.yaml:3:1: Deployment/default/web: spec.replicas: want a number

NAMESPACE   NAME    READY   STATUS             RESTARTS   AGE         IP          NODE   WORKLOAD         REVISION
default     web-0   1/1     Running            0          5h          10.88.0.2   n1     Deployment/web   0123456789ab
default     web-1   yes     Running            -          <unknown>   10.88.1.2   n2     <none>           0123456789ab
default     web-2   no      ImagePullBackOff   -          <unknown>   <none>      n3     <none>           <none>
`,
	}, {
		name: "a node without quorum says so; one revision on every node is one line",
		c: Cluster{Node: "n1", Repo: "/srv/deploy.git", Running: running,
			Members: []Member{
				{Name: "n1", Status: MemberAlive, Revision: running.Commit},
				{Name: "n2", Status: MemberDead, Revision: running.Commit},
				{Name: "n3", Status: MemberDead, Revision: running.Commit},
				{Name: "n4", Status: MemberLeft, Revision: running.Commit},
			}},
		want: `Node:      n1
Repo:      /srv/deploy.git
Revision:  0123456789ab add the web tier (committed 26h ago, running for 5h)
Cluster:   4 nodes: 1 alive, 2 dead, 1 left
Quorum:    lost: n1 sees 1 of the 3 members it knows alive; its StatefulSet pods are stopped
Running:   0123456789ab on every node (4)

No pods in the cluster.
`,
	}, {
		name: "a node alone is its own cluster, whose revisions are the node's",
		c: SingleNode(Node{Node: "n1", Repo: "/srv/deploy.git", Running: running, Pods: []plan.PodStatus{web},
			Refused: &Revision{Commit: "fedcba9876543210fedcba9876543210fedcba98", Errors: []string{"a.yaml:1:1: bad", "b.yaml:2:2: worse"}}}),
		want: `Node:      n1
Repo:      /srv/deploy.git
Revision:  0123456789ab add the web tier (committed 26h ago, running for 5h)
Cluster:   1 node: 1 alive

Refused revision fedcba987654: 2 error(s); the revision above keeps running
  a.yaml:1:1: bad
  b.yaml:2:2: worse

NAMESPACE   NAME    READY   STATUS    RESTARTS   AGE   IP          NODE
default     web-0   1/1     Running   0          5h    10.88.0.2   n1
`,
	}, {
		name: "a leaving node says which pods PodDisruptionBudgets hold",
		c: SingleNode(Node{Node: "n1", Repo: "/srv/deploy.git", Running: running, Pods: []plan.PodStatus{web},
			Leaving: &Leaving{Since: ago(2 * time.Minute), Pods: 2, Held: []plan.BudgetHold{{Namespace: "default", Name: "web-0", Budget: "web"},
				{Namespace: "default", Name: "web-1", Budget: "web", Until: now.Add(8 * time.Second)}}}}),
		want: `Node:      n1
Repo:      /srv/deploy.git
Revision:  0123456789ab add the web tier (committed 26h ago, running for 5h)
Cluster:   1 node: 1 alive
Leaving:   for 2m, 2 pods still running here
  default/web-0: held by PodDisruptionBudget web (it allows no disruption now)
  default/web-1: selected by PodDisruptionBudget web, waits 8s more for the other nodes' news

NAMESPACE   NAME    READY   STATUS    RESTARTS   AGE   IP          NODE
default     web-0   1/1     Running   0          5h    10.88.0.2   n1
`,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteCluster(&b, c.c, c.wide, now); err != nil {
				t.Fatal(err)
			}
			if b.String() != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), c.want)
			}
		})
	}
}

func TestRevisionLinesCountNamesPastEight(t *testing.T) {
	var c Cluster
	for i := range 11 {
		rev := "aaaa"
		if i == 10 {
			rev = "bbbb"
		}
		c.Members = append(c.Members, Member{Name: fmt.Sprintf("n%02d", i), Status: MemberAlive, Revision: rev})
	}
	c.Quorum = true
	var b strings.Builder
	writeMembership(&b, c)
	want := `Cluster:   11 nodes: 11 alive
Running:   aaaa on n00, n01, n02, n03, n04, n05, n06, n07 and 2 more
           bbbb on n10
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteMembers(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	members := []Member{
		{Name: "node-a", Address: "10.0.0.1:7946", APIAddress: "10.0.0.1:7480", Status: MemberAlive, Joined: now.Add(-50 * time.Hour),
			Revision: "0123456789abcdef0123456789abcdef01234567", Pods: 3, PodCIDR: "10.88.0.0/24",
			Labels: map[string]string{"zone": "a", "disk": "ssd"}, Schedulable: true, Self: true},
		{Name: "node-b", Address: "10.0.0.2:7946", Status: MemberSuspect, Joined: now.Add(-3 * time.Minute),
			Revision: "0123456789abcdef0123456789abcdef01234567", Pods: 1, SettledAt: now.Add(40 * time.Second)},
		{Name: "node-c", Address: "10.0.0.3:7946", Status: MemberDead},
	}
	cases := []struct {
		name    string
		members []Member
		wide    bool
		want    string
	}{{
		name:    "the columns of status nodes",
		members: members,
		want: `NAME     ADDRESS         STATUS    REVISION       PODS   AGE
node-a   10.0.0.1:7946   alive     0123456789ab   3      2d2h
node-b   10.0.0.2:7946   suspect   0123456789ab   1      3m
node-c   10.0.0.3:7946   dead      <none>         0      <unknown>
`,
	}, {
		name:    "wide adds the API, the pod CIDR, labels sorted, and whether pods go there",
		members: members,
		wide:    true,
		want: `NAME     ADDRESS         STATUS    REVISION       PODS   AGE         API             POD-CIDR       LABELS            SCHEDULABLE
node-a   10.0.0.1:7946   alive     0123456789ab   3      2d2h        10.0.0.1:7480   10.88.0.0/24   disk=ssd,zone=a   yes
node-b   10.0.0.2:7946   suspect   0123456789ab   1      3m          <none>          <none>         <none>            no (settling, 40s left)
node-c   10.0.0.3:7946   dead      <none>         0      <unknown>   <none>          <none>         <none>            no
`,
	}, {
		name: "no members",
		want: "No nodes.\n",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteMembers(&b, c.members, c.wide, now); err != nil {
				t.Fatal(err)
			}
			if b.String() != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), c.want)
			}
		})
	}
}

// A pod another node gossips shows its counts, not yes/no and "-".
func TestGossipedPodWithSummary(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := Cluster{Node: "a", Members: []Member{{Name: "a", Status: "alive", Self: true}, {Name: "b", Status: "alive"}},
		Pods: []plan.PodStatus{{Namespace: "default", Name: "web-1", Node: "b", Phase: "Running", StartedAt: now.Add(-time.Hour),
			Summary: &plan.PodSummary{ReadyContainers: 1, Containers: 2, Restarts: 3}}}}
	var b strings.Builder
	if err := WriteCluster(&b, c, false, now); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^default +web-1 +1/2 +Running +3 +60m +<none> +b$`).MatchString(b.String()) {
		t.Fatalf("table:\n%s", b.String())
	}
}

func TestWriteWorkloads(t *testing.T) {
	var b strings.Builder
	err := WriteWorkloads(&b, []plan.WorkloadStatus{
		{Kind: "Deployment", Namespace: "default", Name: "web", Health: plan.HealthProgressing,
			Message: "2 of 6 new pods available, 4 old", Replicas: 6, Updated: 3, Available: 2, Old: 4},
		{Kind: "DaemonSet", Namespace: "ops", Name: "agent", Health: plan.HealthHealthy, Replicas: 3, Updated: 3, Available: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^NAMESPACE +WORKLOAD +HEALTH +READY +UP-TO-DATE +OLD +MESSAGE$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^default +deployment/web +Progressing +2/6 +3 +4 +2 of 6 new pods available, 4 old$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^ops +daemonset/agent +Healthy +3/3 +3 +0 *$`).MatchString(lines[2]) {
		t.Errorf("got:\n%s", b.String())
	}
}
