package plan

import (
	"net/netip"
	"time"
)

// ContainerState is the state of a container as the runtime reports it.
type ContainerState string

// The states of a container.
const (
	// ContainerCreated: the container exists but has no task (not
	// started, or gitorch stopped between creating and starting it).
	ContainerCreated ContainerState = "created"
	ContainerRunning ContainerState = "running"
	ContainerExited  ContainerState = "exited"
	ContainerUnknown ContainerState = "unknown"
)

// ObservedContainer is one container as the runtime observed it.
type ObservedContainer struct {
	Name    string
	ID      string
	Image   string
	Attempt int
	State   ContainerState
	// PID of the container's first process, while it runs.
	PID       uint32
	CreatedAt time.Time
	// ExitCode, ExitedAt and OOMKilled are set once the container exited.
	ExitCode  uint32
	ExitedAt  time.Time
	OOMKilled bool
	// Revision and TemplateHash from the container's labels.
	Revision     string
	TemplateHash string
	// LogPath is the file the container's stdout and stderr go to.
	LogPath string
}

// ObservedPod is one pod as the runtime observed it.
type ObservedPod struct {
	Namespace string
	Name      string
	// IP is the pod's address; invalid when the runtime has no network.
	IP netip.Addr
	// Containers sorted by name.
	Containers []ObservedContainer
}

// Key is the pod's namespace and name.
func (s ObservedPod) Key() Key { return Key{s.Namespace, s.Name} }

// Container returns the status of the named container.
func (s ObservedPod) Container(name string) (ObservedContainer, bool) {
	for _, c := range s.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return ObservedContainer{}, false
}
