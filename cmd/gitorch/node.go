package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) nodeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Act on this node: leave the cluster, or remove what gitorch made on it",
		Args:  noArgs,
	}
	leave := &cobra.Command{
		Use:   "leave",
		Short: "Move this node's pods to the others, then leave the cluster",
		Long: `Leave makes the node unschedulable (gossiped to every node), so that the
others place its pods among themselves. Each pod keeps running here until
its new copy is ready on its new node (make-before-break; a StatefulSet
pod stops first, then starts there; a pod that fits nowhere else stops).
When the node runs no pod, its agent leaves the gossip cluster (the others
show it as left) and stops. A node started again later joins as new and
gets pods once it has been up for --rejoin-settle.

A StatefulSet pod, or one that fits nowhere else, waits while a
PodDisruptionBudget selecting it allows no disruption (as kubectl drain
waits on evictions), counted over the ready pods of the whole cluster,
and such a pod that a budget selects does not stop in the first 10 s of
the leave (another node leaving at the same time learns of this one by
then); 'gitorch status' shows, on the leaving node, which pods which
budget holds.

Leave waits until the node is empty, at most --timeout; on a timeout it
names the pods still here and the budgets that hold them, the node stays
unschedulable and its agent keeps running: run leave again, or restart the
agent to make it schedulable again.`,
		Example: `  # Drain this node and take it out of the cluster
  gitorch node leave

  # Another node, waiting up to ten minutes
  gitorch node leave --server http://10.0.0.3:7480 --timeout 10m

  # While it waits: which pods do PodDisruptionBudgets hold on it?
  gitorch status --server http://10.0.0.3:7480`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.stderr, "moving the pods of the node to the other nodes ...")
			var out struct {
				Node string `json:"node"`
			}
			if _, err := a.postWait(cmd, "/v1/node/leave", &out); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "node %s left the cluster; its pods run on the other nodes\n", out.Node)
			return nil
		},
	}
	leave.Flags().Duration("timeout", 5*time.Minute, "how long to wait for the node's pods to move")
	addAPIFlags(leave)
	cmd.AddCommand(leave, a.nodeResetCommand())
	return cmd
}
