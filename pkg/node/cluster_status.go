package node

import (
	"maps"

	"github.com/gitorch/gitorch/pkg/status"
)

// Cluster is the cluster as this agent sees it. Until the agent gossips,
// it knows no peer: the cluster is this node alone.
func (a *Agent) Cluster() status.Cluster {
	c := status.SingleNode(a.Status())
	n := a.cfg.Node
	self := &c.Members[0]
	self.Address = n.Address
	self.Labels = maps.Clone(n.Labels)
	self.Capacity = n.Allocatable
	self.Schedulable = !n.Unschedulable
	return c
}
