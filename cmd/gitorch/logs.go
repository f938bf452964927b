package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) logsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs POD",
		Short: "Print the logs of a container of a pod, on any node",
		Long: `Logs prints what a container of a pod wrote to stdout and stderr, as the
agent of the node that runs it keeps it. The agent asked (the local one, or
another node's with --server) fetches the log from that node when the pod
runs elsewhere, following it too. POD is NAME (in --namespace) or
NAMESPACE/NAME. A pod with several containers needs -c.`,
		Example: `  # The log of the only container of a pod
  gitorch logs web-5d8f2c9a1b-0

  # One container of a pod in another namespace, followed as it grows
  gitorch logs -n shop cart-0 -c app -f

  # Why did it crash? The instance before the last restart
  gitorch logs guestbook-cue/redis-master-0 --previous --tail 20

  # Asking another node (which fetches the log from wherever the pod runs)
  gitorch logs web-5d8f2c9a1b-0 --server http://10.0.0.2:7480 --api-token-file /etc/gitorch/api-token`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(fmt.Errorf("logs takes one pod, got %d arguments", len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name := a.cfg.GetString("namespace"), args[0]
			if i := strings.IndexByte(name, '/'); i >= 0 {
				ns, name = name[:i], name[i+1:]
			}
			if ns == "" || name == "" || strings.Contains(name, "/") {
				return usageError(fmt.Errorf("pod %q: want NAME or NAMESPACE/NAME", args[0]))
			}
			follow, previous := a.cfg.GetBool("follow"), a.cfg.GetBool("previous")
			if follow && previous {
				return usageError(errors.New("--follow and --previous exclude each other: a previous instance writes no more"))
			}
			q := url.Values{}
			if c := a.cfg.GetString("container"); c != "" {
				q.Set("container", c)
			}
			if follow {
				q.Set("follow", "true")
			}
			if previous {
				q.Set("previous", "true")
			}
			switch t := a.cfg.GetInt("tail"); {
			case t < -1:
				return usageError(fmt.Errorf("--tail %d: want a number of lines, or -1 for all", t))
			case t >= 0:
				q.Set("tail", strconv.Itoa(t))
			}
			c, err := a.apiClient(cmd)
			if err != nil {
				return err
			}
			resp, err := c.get(cmd.Context(), "/v1/pods/"+url.PathEscape(ns)+"/"+url.PathEscape(name)+"/logs", q)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(a.stdout, resp.Body)
			if err != nil && cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringP("namespace", "n", "default", "namespace of the pod")
	f.StringP("container", "c", "", "container (needed when the pod has several)")
	f.BoolP("follow", "f", false, "keep printing what the container writes")
	f.BoolP("previous", "p", false, "the container's instance before its last restart")
	f.Int("tail", -1, "only the last N lines (-1: all)")
	addAPIFlags(cmd)
	return cmd
}
