package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/status"
)

func (a *app) statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's revision and pods",
		Long: `Status asks the local agent what it runs: the revision (commit and
subject), a refused revision with its errors, fetch failures, and the
node's pods as kubectl get pods shows them (READY containers, STATUS,
RESTARTS, AGE, IP, NODE), then the pods that fit on no node and why.`,
		Example: `  # The node's pods
  gitorch status

  # With the workload and revision of each pod
  gitorch status -o wide

  # Everything, as JSON (see docs/api.md for the fields)
  gitorch status -o json | jq '.pods[] | select(.phase != "Running")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format := a.cfg.GetString("output")
			if format != "text" && format != "wide" && format != "json" {
				return usageError(fmt.Errorf("--output %q: want text, wide or json", format))
			}
			c, err := a.apiClient()
			if err != nil {
				return err
			}
			var st status.Node
			if err := c.getJSON(cmd.Context(), "/v1/status", &st); err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return writeStatus(a.stdout, st, format == "wide", time.Now())
		},
	}
	cmd.Flags().StringP("output", "o", "text", "text, wide or json")
	addAPIFlags(cmd)
	return cmd
}

// writeStatus prints the node's status as a header and a table of pods.
func writeStatus(w io.Writer, st status.Node, wide bool, now time.Time) error {
	fmt.Fprintf(w, "Node:      %s\n", st.Node)
	repo := st.Repo
	if st.Ref != "" {
		repo += " (" + st.Ref + ")"
	}
	if st.Path != "" {
		repo += " path " + st.Path
	}
	fmt.Fprintf(w, "Repo:      %s\n", repo)
	if r := st.Running; r != nil {
		fmt.Fprintf(w, "Revision:  %s %s (committed %s ago, running for %s)\n", gitrev.Short(r.Commit), r.Subject, age(r.Time, now), age(r.LoadedAt, now))
	} else {
		fmt.Fprintf(w, "Revision:  none yet\n")
	}
	if s := st.Source; s.LastError != "" {
		retry := ""
		if !s.NextRetry.IsZero() {
			retry = ", next try in " + age(now, s.NextRetry)
		}
		fmt.Fprintf(w, "Fetch:     failing (%d in a row%s): %s\n", s.Failures, retry, s.LastError)
	} else if !s.LastFetch.IsZero() {
		fmt.Fprintf(w, "Fetch:     ok, %s ago\n", age(s.LastFetch, now))
	}
	if r := st.Refused; r != nil {
		fmt.Fprintf(w, "\nRefused revision %s", gitrev.Short(r.Commit))
		if r.Subject != "" {
			fmt.Fprintf(w, " (%s)", r.Subject)
		}
		keeps := "the revision above keeps running"
		if st.Running == nil {
			keeps = "no revision runs until one is valid"
		}
		fmt.Fprintf(w, ": %d error(s); %s\n", len(r.Errors), keeps)
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintln(w)
	if len(st.Pods) == 0 {
		fmt.Fprintln(w, "No pods on this node.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		head := "NAMESPACE\tNAME\tREADY\tSTATUS\tRESTARTS\tAGE\tIP\tNODE"
		if wide {
			head += "\tWORKLOAD\tREVISION"
		}
		fmt.Fprintln(tw, head)
		for _, p := range st.Pods {
			ready, total := p.ReadyCount()
			ip := p.IP
			if ip == "" {
				ip = "<none>"
			}
			line := fmt.Sprintf("%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%s", p.Namespace, p.Name, ready, total, podStatusWord(p), restarts(p, now), podAge(p, now), ip, p.Node)
			if wide {
				line += fmt.Sprintf("\t%s\t%s", p.Workload, gitrev.Short(p.Revision))
			}
			fmt.Fprintln(tw, line)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.Unplaceable) > 0 {
		fmt.Fprintf(w, "\nPods that fit on no node (%d):\n", len(st.Unplaceable))
		for _, u := range st.Unplaceable {
			fmt.Fprintf(w, "  %s/%s: %s\n", u.Namespace, u.Name, u.Reason)
		}
	}
	return nil
}

// podStatusWord is kubectl's STATUS column: the reason when there is one,
// else the phase.
func podStatusWord(p plan.PodStatus) string {
	if p.Reason != "" {
		return p.Reason
	}
	return p.Phase
}

// restarts is kubectl's RESTARTS column: the count, and how long ago the
// last restart's instance ended.
func restarts(p plan.PodStatus, now time.Time) string {
	n := p.Restarts()
	s := strconv.Itoa(n)
	var last time.Time
	for _, c := range p.Containers {
		if c.LastTermination != nil && c.LastTermination.FinishedAt.After(last) {
			last = c.LastTermination.FinishedAt
		}
	}
	if n > 0 && !last.IsZero() {
		s += " (" + age(last, now) + " ago)"
	}
	return s
}

func podAge(p plan.PodStatus, now time.Time) string {
	if p.StartedAt.IsZero() {
		return "<unknown>"
	}
	return age(p.StartedAt, now)
}

// age prints now-t as kubectl does: 45s, 3m12s, 12m, 5h3m, 5h, 3d4h, 12d,
// 2y70d, 9y. A time in the future (clock skew) is 0s.
func age(t, now time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 10*time.Minute:
		s := int(d.Seconds()) % 60
		if s == 0 {
			return fmt.Sprintf("%dm", int(d.Minutes()))
		}
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), s)
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 8*time.Hour:
		m := int(d.Minutes()) % 60
		if m == 0 {
			return fmt.Sprintf("%dh", int(d.Hours()))
		}
		return fmt.Sprintf("%dh%dm", int(d.Hours()), m)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d < 8*24*time.Hour:
		h := int(d.Hours()) % 24
		if h == 0 {
			return fmt.Sprintf("%dd", int(d.Hours())/24)
		}
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, h)
	case d < 2*365*24*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours())/24)
	case d < 8*365*24*time.Hour:
		days := int(d.Hours()) / 24
		if days%365 == 0 {
			return fmt.Sprintf("%dy", days/365)
		}
		return fmt.Sprintf("%dy%dd", days/365, days%365)
	}
	return fmt.Sprintf("%dy", int(d.Hours())/24/365)
}
