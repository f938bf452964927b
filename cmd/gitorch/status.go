package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/pkg/status"
)

func (a *app) statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's revisions and pods",
		Long: `Status asks an agent (the local one, or another node's with --server)
for the cluster as it sees it: the revision it runs (commit and subject),
a refused revision with its errors, fetch failures, how many nodes are
alive, suspect, dead or left, which nodes run which revision and which
refused one (with the first error), and whether it has quorum. Then every
pod of the cluster as kubectl get pods shows them (READY containers,
STATUS, RESTARTS, AGE, IP, NODE), and the pods that fit on no node and why.

Any node answers for the whole cluster: its own pods in full, other
nodes' pods as gossip reports them (READY is then yes or no, and
RESTARTS is '-'). 'gitorch status nodes' lists the nodes.`,
		Example: `  # The cluster's pods, as the local agent sees them
  gitorch status

  # With the workload and revision of each pod
  gitorch status -o wide

  # As another node sees it
  gitorch status --server http://10.0.0.2:7480 --api-token-file /etc/gitorch/api-token

  # Everything, as JSON (see docs/api.md for the fields)
  gitorch status -o json | jq '.pods[] | select(.phase != "Running")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, format, err := a.cluster(cmd)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a, c)
			}
			return status.WriteCluster(a.stdout, c, format == "wide", time.Now())
		},
	}
	cmd.Flags().StringP("output", "o", "text", "text, wide or json")
	addAPIFlags(cmd)
	cmd.AddCommand(a.statusNodesCommand())
	return cmd
}

func (a *app) statusNodesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List the nodes of the cluster",
		Long: `Nodes lists the members of the cluster as the agent asked sees them:
NAME, ADDRESS (gossip), STATUS (alive, suspect, dead or left), REVISION
(the commit it runs), PODS (how many it reports) and AGE (since the agent
first saw it). -o wide adds API (its API address), POD-CIDR, LABELS and
SCHEDULABLE (no while it is dead, left, or settling after it came back).`,
		Example: `  # The nodes, as the local agent sees them
  gitorch status nodes

  # With their API address, pod CIDR, labels and whether they get pods
  gitorch status nodes -o wide

  # As another node sees them
  gitorch status nodes --server http://10.0.0.2:7480

  # The nodes that are not alive, as JSON
  gitorch status nodes -o json | jq -r '.[] | select(.status != "alive") | .name'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, format, err := a.cluster(cmd)
			if err != nil {
				return err
			}
			if format == "json" {
				if c.Members == nil {
					c.Members = []status.Member{}
				}
				return writeJSON(a, c.Members)
			}
			return status.WriteMembers(a.stdout, c.Members, format == "wide", time.Now())
		},
	}
	cmd.Flags().StringP("output", "o", "text", "text, wide or json")
	addAPIFlags(cmd)
	return cmd
}

// cluster checks --output and asks the agent for the cluster.
func (a *app) cluster(cmd *cobra.Command) (status.Cluster, string, error) {
	var c status.Cluster
	format := a.cfg.GetString("output")
	if format != "text" && format != "wide" && format != "json" {
		return c, "", usageError(fmt.Errorf("--output %q: want text, wide or json", format))
	}
	client, err := a.apiClient(cmd)
	if err != nil {
		return c, "", err
	}
	err = client.getJSON(cmd.Context(), "/v1/cluster", &c)
	return c, format, err
}

func writeJSON(a *app, v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
