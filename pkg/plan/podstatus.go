package plan

import "time"

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
	// PhaseUnknown: the pod's node is lost (dead or left); what it last
	// reported may no longer be true.
	PhaseUnknown = "Unknown"
)

// PodStatus is one pod as its node reports it: what DecidePod computes
// from the manifests and what the runtime observed.
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
	Ready    bool   `json:"ready"`
	IP       string `json:"ip,omitempty"`
	Revision string `json:"revision,omitempty"`
	// TemplateHash is the hash of the pod template it runs.
	TemplateHash string            `json:"templateHash,omitempty"`
	StartedAt    time.Time         `json:"startedAt,omitzero"`
	Containers   []ContainerStatus `json:"containers"`
	// Summary counts the containers of a pod that another node reported
	// through gossip, which carries no list of them.
	Summary *PodSummary `json:"summary,omitempty"`
}

// PodSummary is what a pod's node gossips of its containers.
type PodSummary struct {
	ReadyContainers int `json:"readyContainers"`
	Containers      int `json:"containers"`
	Restarts        int `json:"restarts"`
}

// Key is the pod's namespace and name.
func (p PodStatus) Key() Key { return Key{p.Namespace, p.Name} }

// ReadyCount is how many app containers are ready, and how many there are.
func (p PodStatus) ReadyCount() (ready, total int) {
	if p.Summary != nil && len(p.Containers) == 0 {
		return p.Summary.ReadyContainers, p.Summary.Containers
	}
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
	if p.Summary != nil && len(p.Containers) == 0 {
		return p.Summary.Restarts
	}
	n := 0
	for _, c := range p.Containers {
		n += c.Restarts
	}
	return n
}

// Waiting and terminated reasons a container shows, as kubelet's.
const (
	ReasonContainerCreating   = "ContainerCreating"
	ReasonPodInitializing     = "PodInitializing"
	ReasonCrashLoopBackOff    = "CrashLoopBackOff"
	ReasonErrImagePull        = "ErrImagePull"
	ReasonImagePullBackOff    = "ImagePullBackOff"
	ReasonErrImageNeverPull   = "ErrImageNeverPull"
	ReasonCreateContainerErr  = "CreateContainerError"
	ReasonCreateContainerConf = "CreateContainerConfigError"
	ReasonCompleted           = "Completed"
	ReasonError               = "Error"
	ReasonOOMKilled           = "OOMKilled"
	ReasonTerminating         = "Terminating"
	// ReasonHeld: a StatefulSet pod waits until no other node may run it.
	ReasonHeld = "Held"
	// ReasonNodeLost: the pod's node is dead or left.
	ReasonNodeLost = "NodeLost"
)

// Container states, as a PodStatus shows them.
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
