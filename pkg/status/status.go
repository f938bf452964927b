// Package status holds what gitorch's agents report, as the API serves
// it (GET /v1/status, /v1/cluster) and the CLI prints it, and the
// rendering of it as tables (kubectl's columns and ages).
package status

import (
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
)

// Node is what an agent reports about itself and its pods: the body of
// GET /v1/status.
type Node struct {
	Node string `json:"node"`
	// Repo is the remote's URL without credentials.
	Repo string `json:"repo"`
	// Ref and Path as configured.
	Ref  string `json:"ref,omitempty"`
	Path string `json:"path,omitempty"`
	// Running is the revision whose manifests the node runs; nil until a
	// first valid revision was loaded.
	Running *Revision `json:"running,omitempty"`
	// Refused is the newest revision that was refused, while it is newer
	// than Running; nil otherwise.
	Refused *Revision `json:"refused,omitempty"`
	// Source is how fetching goes.
	Source Source `json:"source"`
	// Pods of this node, sorted by namespace and name.
	Pods []plan.PodStatus `json:"pods"`
	// Unplaceable pods: asked for by the manifests but fitting nowhere.
	Unplaceable []plan.UnplaceablePod `json:"unplaceable,omitempty"`
	// Workloads of the running revision with their health, as this node
	// computes it from the pods of the whole cluster it hears of.
	Workloads []plan.WorkloadStatus `json:"workloads,omitempty"`
	// Jobs and CronJobs of the running revision, as this node decides
	// them from the records it holds (docs/jobs.md).
	Jobs     []plan.JobStatus     `json:"jobs,omitempty"`
	CronJobs []plan.CronJobStatus `json:"cronJobs,omitempty"`
	// Proxy is how the node's Service rules were last written; nil when
	// the node runs no Service proxy.
	Proxy *Proxy `json:"proxy,omitempty"`
	// Leaving is set while the node is leaving the cluster ('gitorch node
	// leave').
	Leaving *Leaving `json:"leaving,omitempty"`
}

// Proxy is the state of a node's Service proxy.
type Proxy struct {
	// LastSync is when the rules were last written (or tried).
	LastSync time.Time `json:"lastSync,omitzero"`
	// LastError of that sync, "" when it succeeded; Failures counts the
	// failed syncs since the agent started.
	LastError string `json:"lastError,omitempty"`
	Failures  int    `json:"failures,omitempty"`
	// Services of the running revision, and the chains their rules take.
	Services int `json:"services"`
	Chains   int `json:"chains"`
}

// Leaving is how a node's leave stands: the pods it still runs, and those
// that PodDisruptionBudgets keep running until they allow a disruption.
type Leaving struct {
	Since time.Time `json:"since"`
	Pods  int       `json:"pods"`
	// Held are the pods its leave would stop before a copy elsewhere is
	// ready (a StatefulSet's, one that fits nowhere else) that a budget
	// holds, sorted.
	Held []plan.BudgetHold `json:"held,omitempty"`
}

// Revision is one commit the agent loaded.
type Revision struct {
	Commit  string    `json:"commit"`
	Subject string    `json:"subject,omitempty"`
	Time    time.Time `json:"time"`
	// LoadedAt is when the agent loaded it.
	LoadedAt time.Time `json:"loadedAt"`
	// Errors of a refused revision, as `gitorch validate` prints them
	// (file:line:col: Kind/ns/name: field: message).
	Errors []string `json:"errors,omitempty"`
	// Warnings of the revision.
	Warnings []string `json:"warnings,omitempty"`
}

// Source says how fetching the repository goes.
type Source struct {
	LastFetch time.Time `json:"lastFetch,omitzero"`
	// LastError of the last fetch, "" when it succeeded.
	LastError string `json:"lastError,omitempty"`
	// Failures in a row; NextRetry is when the next attempt is due.
	Failures  int       `json:"failures,omitempty"`
	NextRetry time.Time `json:"nextRetry,omitzero"`
}

// Cluster is the cluster as one agent sees it: the body of GET
// /v1/cluster and what `gitorch status` prints. Any node answers for the
// whole cluster: its own pods in full, the others' as gossip reports them.
type Cluster struct {
	// Node is the node that answered.
	Node string `json:"node"`
	// ClusterName is the gossip cluster's name.
	ClusterName string `json:"clusterName,omitempty"`
	Repo        string `json:"repo"`
	Ref         string `json:"ref,omitempty"`
	Path        string `json:"path,omitempty"`
	// Running, Refused and Source are those of the answering node.
	Running *Revision `json:"running,omitempty"`
	Refused *Revision `json:"refused,omitempty"`
	Source  Source    `json:"source"`
	// Quorum is false when the answering node sees no majority of the
	// members it knows (it then stops its StatefulSet pods).
	Quorum bool `json:"quorum"`
	// Members of the cluster, sorted by name.
	Members []Member `json:"members"`
	// Pods of every node, sorted by namespace and name; Node says where
	// each runs.
	Pods []plan.PodStatus `json:"pods"`
	// Unplaceable pods of the answering node's revision.
	Unplaceable []plan.UnplaceablePod `json:"unplaceable,omitempty"`
	// Workloads of the answering node's revision with their health.
	Workloads []plan.WorkloadStatus `json:"workloads,omitempty"`
	// Jobs and CronJobs as the answering node decides them.
	Jobs     []plan.JobStatus     `json:"jobs,omitempty"`
	CronJobs []plan.CronJobStatus `json:"cronJobs,omitempty"`
	// Leaving is set while the answering node is leaving the cluster.
	Leaving *Leaving `json:"leaving,omitempty"`
}

// Member is one node of the cluster as the answering node sees it.
type Member struct {
	Name string `json:"name"`
	// Address is the member's gossip address; APIAddress its API's.
	Address    string `json:"address"`
	APIAddress string `json:"apiAddress,omitempty"`
	// Status is alive, suspect, dead or left.
	Status string `json:"status"`
	// Since is when the answering node saw Status begin.
	Since time.Time `json:"since,omitzero"`
	// Joined is when the answering node first saw the member, for AGE.
	Joined time.Time `json:"joined,omitzero"`
	// Revision the member runs; Refused a newer one it refused, with the
	// first error.
	Revision     string `json:"revision,omitempty"`
	Refused      string `json:"refused,omitempty"`
	RefusedError string `json:"refusedError,omitempty"`
	// Pods is how many pods the member reports.
	Pods     int               `json:"pods"`
	PodCIDR  string            `json:"podCIDR,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Capacity plan.Resources    `json:"capacity"`
	// Schedulable is false while the member gets no pods: dead past the
	// grace, left, or settling after it came back until SettledAt.
	Schedulable bool      `json:"schedulable"`
	SettledAt   time.Time `json:"settledAt,omitzero"`
	Self        bool      `json:"self,omitempty"`
}
