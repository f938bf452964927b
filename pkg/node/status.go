package node

import (
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
)

// NodeStatus is what the agent reports about itself and its pods: the
// body of GET /v1/status and what `gitorch status` prints.
type NodeStatus struct {
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
	Source SourceStatus `json:"source"`
	// Pods of this node, sorted by namespace and name.
	Pods []plan.PodStatus `json:"pods"`
	// Unplaceable pods: asked for by the manifests but fitting nowhere.
	Unplaceable []plan.UnplaceablePod `json:"unplaceable,omitempty"`
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

// SourceStatus says how fetching the repository goes.
type SourceStatus struct {
	LastFetch time.Time `json:"lastFetch,omitzero"`
	// LastError of the last fetch, "" when it succeeded.
	LastError string `json:"lastError,omitempty"`
	// Failures in a row; NextRetry is when the next attempt is due.
	Failures  int       `json:"failures,omitempty"`
	NextRetry time.Time `json:"nextRetry,omitzero"`
}
