package plan

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Resources are amounts of what a node offers and a pod requests.
type Resources struct {
	MilliCPU int64 `json:"milliCPU"`
	Memory   int64 `json:"memory"` // bytes
	Pods     int64 `json:"pods"`
}

func (r Resources) add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.Memory + o.Memory, r.Pods + o.Pods}
}

func (r Resources) sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.Memory - o.Memory, r.Pods - o.Pods}
}

// fits reports whether req fits in r.
func (r Resources) fits(req Resources) bool {
	return req.MilliCPU <= r.MilliCPU && req.Memory <= r.Memory && req.Pods <= r.Pods
}

func (r Resources) String() string {
	return fmt.Sprintf("cpu=%dm memory=%d pods=%d", r.MilliCPU, r.Memory, r.Pods)
}

// Node is one member of the cluster as placement sees it.
type Node struct {
	Name    string
	Address string
	Labels  map[string]string
	// Allocatable is what pods may use on the node.
	Allocatable Resources
	// Taints with effect NoSchedule keep pods that do not tolerate them
	// away; other effects do not affect placement.
	Taints []corev1.Taint
	// Unschedulable nodes (cordoned) get no new pods.
	Unschedulable bool
}

// weight is the node's share in weighted rendezvous hashing: its
// allocatable CPU in millicores (1000 when it declares none), so that a
// node with twice the CPU is the first choice of twice as many pods.
func (n *Node) weight() uint64 {
	w := n.Allocatable.MilliCPU
	if w <= 0 {
		w = 1000
	}
	if w >= 1<<32 {
		w = 1<<32 - 1
	}
	return uint64(w)
}
