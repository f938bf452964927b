package node

import "time"

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
	Pods []PodStatus `json:"pods"`
	// Unplaceable pods: asked for by the manifests but fitting nowhere.
	Unplaceable []UnplaceablePod `json:"unplaceable,omitempty"`
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

// UnplaceablePod is a pod no node can take, and why.
type UnplaceablePod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
}

// Pod phases, as Kubernetes has them.
const (
	PhasePending   = "Pending"
	PhaseRunning   = "Running"
	PhaseSucceeded = "Succeeded"
	PhaseFailed    = "Failed"
	// PhaseTerminating is shown while a pod that no longer belongs to the
	// node is being stopped.
	PhaseTerminating = "Terminating"
)

// PodStatus is one pod of the node.
type PodStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Workload is "Kind/name" of the object the pod comes from.
	Workload string `json:"workload,omitempty"`
	Node     string `json:"node"`
	Phase    string `json:"phase"`
	// Reason is the most telling reason of the pod's containers
	// (CrashLoopBackOff, ImagePullBackOff, OOMKilled, ...), as the STATUS
	// column of kubectl get pods shows it; "" when all is well.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Ready is true when every app container is ready.
	Ready      bool              `json:"ready"`
	IP         string            `json:"ip,omitempty"`
	Revision   string            `json:"revision,omitempty"`
	StartedAt  time.Time         `json:"startedAt,omitzero"`
	Containers []ContainerStatus `json:"containers"`
}

// ReadyCount is how many app containers are ready, and how many there are.
func (p PodStatus) ReadyCount() (ready, total int) {
	for _, c := range p.Containers {
		if c.Init {
			continue
		}
		total++
		if c.Ready {
			ready++
		}
	}
	return ready, total
}

// Restarts is the sum of the restarts of the pod's containers.
func (p PodStatus) Restarts() int {
	n := 0
	for _, c := range p.Containers {
		n += c.Restarts
	}
	return n
}

// Container states.
const (
	StateWaiting    = "waiting"
	StateRunning    = "running"
	StateTerminated = "terminated"
)

// ContainerStatus is one container of a pod.
type ContainerStatus struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// Init is true for an init container.
	Init  bool   `json:"init,omitempty"`
	State string `json:"state"`
	// Reason: for waiting ContainerCreating, PodInitializing,
	// ErrImagePull, ImagePullBackOff, ErrImageNeverPull,
	// CreateContainerError, CrashLoopBackOff; for terminated Completed,
	// Error, OOMKilled.
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
	ExitCode int    `json:"exitCode,omitempty"`
	Ready    bool   `json:"ready"`
	// Started is false while a startup probe has not succeeded.
	Started  bool `json:"started"`
	Restarts int  `json:"restarts"`
	// PID of the running container's first process.
	PID        uint32    `json:"pid,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// NextStart is when a container in back-off is started again.
	NextStart time.Time `json:"nextStart,omitzero"`
	// LastTermination is how the previous instance ended (after a
	// restart): its reason and exit code.
	LastTermination *Termination `json:"lastTermination,omitempty"`
}

// Termination is how a container instance ended.
type Termination struct {
	Reason     string    `json:"reason"`
	ExitCode   int       `json:"exitCode"`
	FinishedAt time.Time `json:"finishedAt"`
}
