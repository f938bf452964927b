package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/node"
)

func (a *app) syncCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Fetch the repository now and wait for the revision that results",
		Long: `Sync asks the agent to fetch its repository at once, rather than at its
next --poll-interval, and waits for that fetch and the validation of what
it brought. Every other node of the cluster fetches too (through gossip),
and validates for itself.

It prints the revision the followed ref names after the fetch: running
(exit 0), or refused with its errors (exit 1: the last good revision
keeps running). A fetch that fails is exit 1 with its error.

Sync is what a CI job runs after a push when webhooks cannot reach the
nodes; see docs/webhooks.md for webhooks.`,
		Example: `  # Fetch now on the local agent
  gitorch sync

  # Ask another node, giving it up to 30 seconds
  gitorch sync --server http://10.0.0.2:7480 --api-token-file /etc/gitorch/api.token --timeout 30s

  # In CI, after the push
  git push origin main && gitorch sync --server https://node1.example.com:7480`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res node.SyncResult
			c, err := a.postWait(cmd, "/v1/sync", &res)
			if err != nil {
				return err
			}
			subject := ""
			if res.Revision != nil && res.Revision.Subject != "" {
				subject = " (" + res.Revision.Subject + ")"
			}
			switch res.State {
			case node.SyncRunning:
				fmt.Fprintf(a.stdout, "revision %s%s running on node %s\n", gitrev.Short(res.Commit), subject, res.Node)
				return nil
			case node.SyncRefused:
				fmt.Fprintf(a.stdout, "revision %s%s refused on node %s; the last good revision keeps running:\n", gitrev.Short(res.Commit), subject, res.Node)
				if res.Revision != nil {
					for _, e := range res.Revision.Errors {
						fmt.Fprintf(a.stdout, "  %s\n", e)
					}
				}
				return &exitCodeError{code: exitError}
			}
			return fmt.Errorf("agent at %s: revision %s in an unknown state %q", c.addr, gitrev.Short(res.Commit), res.State)
		},
	}
	cmd.Flags().Duration("timeout", 2*time.Minute, "how long to wait for the fetch and the validation")
	addAPIFlags(cmd)
	return cmd
}
