package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/pkg/events"
	"github.com/gitorch/gitorch/pkg/status"
)

func (a *app) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show what happened on the cluster's nodes",
		Long: `Events lists the recent events of every alive node of the cluster, as
kubectl get events does: LAST SEEN, TYPE (Normal or Warning), REASON
(Started, Killing, BackOff, OOMKilled, Failed, Unhealthy, Applied,
Refused, NodeJoined, NodeSuspect, NodeDead, NodeLeft, WebhookReceived...),
OBJECT (Pod/NAMESPACE/NAME, Node/NAME, Revision/SHA), NODE (the node that
saw it) and MESSAGE, oldest first.

Each node keeps its last 1000 events in memory; the node asked gathers
the others' (a node that does not answer is named on stderr). With -w,
events keeps asking every --interval and prints the new ones until it is
interrupted.`,
		Example: `  # What happened lately
  gitorch events

  # Follow, as another node sees the cluster
  gitorch events -w --server http://10.0.0.2:7480 --api-token-file /etc/gitorch/api.token

  # The warnings, as JSON
  gitorch events -o json | jq '.events[] | select(.type == "Warning")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format := a.cfg.GetString("output")
			if format != "text" && format != "json" {
				return usageError(fmt.Errorf("--output %q: want text or json", format))
			}
			interval := a.cfg.GetDuration("interval")
			if interval <= 0 {
				return usageError(fmt.Errorf("--interval %s: want a positive duration", interval))
			}
			client, err := a.apiClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			watch := a.cfg.GetBool("watch")
			if watch {
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
				defer stop()
			}
			return a.events(ctx, client, format, watch, interval)
		},
	}
	cmd.Flags().StringP("output", "o", "text", "text or json")
	cmd.Flags().BoolP("watch", "w", false, "after the events so far, print new ones as they come")
	cmd.Flags().Duration("interval", 2*time.Second, "with -w, how often the nodes are asked")
	addAPIFlags(cmd)
	return cmd
}

// events prints the cluster's events; with watch, then the new ones
// every interval until ctx ends.
func (a *app) events(ctx context.Context, c *apiClient, format string, watch bool, interval time.Duration) error {
	seen := map[string]uint64{} // node → the last event printed
	warned := map[string]bool{}
	header := true
	for {
		l, err := c.clusterEvents(ctx)
		if err != nil {
			if watch && ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, u := range l.Unreachable {
			if !warned[u.Node] {
				fmt.Fprintf(a.stderr, "warning: the events of node %s are missing: %s\n", u.Node, u.Error)
				warned[u.Node] = true
			}
		}
		if !watch {
			if format == "json" {
				return writeJSON(a, l)
			}
			return writeEvents(a.stdout, l.Events, true, time.Now())
		}
		var fresh []events.Event
		for _, e := range l.Events {
			if e.Seq > seen[e.Node] {
				fresh = append(fresh, e)
			}
		}
		for _, e := range fresh {
			seen[e.Node] = max(seen[e.Node], e.Seq)
		}
		if format == "json" {
			enc := json.NewEncoder(a.stdout)
			for _, e := range fresh {
				if err := enc.Encode(e); err != nil {
					return err
				}
			}
		} else if len(fresh) > 0 {
			if err := writeEvents(a.stdout, fresh, header, time.Now()); err != nil {
				return err
			}
			header = false
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// clusterEvents asks the agent for every alive node's events.
func (c *apiClient) clusterEvents(ctx context.Context) (events.List, error) {
	var l events.List
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.get(ctx, "/v1/events", url.Values{"cluster": {"true"}})
	if err != nil {
		return l, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return l, fmt.Errorf("agent at %s: bad answer: %w", c.addr, err)
	}
	return l, nil
}

// writeEvents prints events as kubectl get events does.
func writeEvents(w io.Writer, evs []events.Event, header bool, now time.Time) error {
	if header && len(evs) == 0 {
		_, err := fmt.Fprintln(w, "No events.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if header {
		fmt.Fprintln(tw, "LAST SEEN\tTYPE\tREASON\tOBJECT\tNODE\tMESSAGE")
	}
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", status.Age(e.Time, now), e.Type, e.Reason, e.Object, e.Node, strings.Join(strings.Fields(e.Message), " "))
	}
	return tw.Flush()
}
