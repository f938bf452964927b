package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/history"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/status"
)

func (a *app) rolloutCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow, list and undo the rollouts of a workload",
		Long: `Rollout follows a workload's rollout through the cluster (status), lists
the commits that changed its pod template (history) and writes the commit
that restores an earlier template (undo). WORKLOAD is written as kubectl
writes it: deployment/web, statefulset/db, daemonset/agent, job/once
(short names deploy, sts, ds, rs, rc too).

Git stays the truth: history reads it, undo adds a commit to it and never
rewrites one, and the cluster rolls back when that commit reaches the
branch the agents follow. See docs/rollouts.md.`,
		Example: `  # Wait for the rollout of web to finish, for at most 5 minutes
  gitorch rollout status deployment/web --timeout 5m

  # The commits that changed web's template
  gitorch rollout history deployment/web ./deploy

  # Restore the template before the last change, commit and push it
  gitorch rollout undo deployment/web ./deploy --push`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.rolloutStatusCommand(), a.rolloutHistoryCommand(), a.rolloutUndoCommand())
	return cmd
}

func (a *app) rolloutStatusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status WORKLOAD",
		Short: "Wait for a workload's rollout to finish",
		Long: `Status asks an agent (the local one, or another node's with --server)
how WORKLOAD is doing, as that node sees the whole cluster, and waits
until its rollout is over. It prints a line whenever the progress changes
("3 of 6 new pods available, 2 old").

Exit status: 0 when the workload is Healthy (every pod runs the current
template and is available; a Job completed); 1 when it is Degraded (its
rollout made no progress within progressDeadlineSeconds, or a Job
failed), paused (spec.paused), not in the revision the node runs, or
still rolling when --timeout passes; 2 for a mistake in the command line.`,
		Example: `  # Wait for web, however long it takes
  gitorch rollout status deployment/web

  # At most 5 minutes, as another node sees it
  gitorch rollout status deployment/web --timeout 5m --server http://10.0.0.2:7480

  # In a script, after pushing a change
  git push && gitorch sync && gitorch rollout status deploy/web --timeout 10m || gitorch rollout undo deploy/web --push`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := history.ParseRef(args[0], a.cfg.GetString("namespace"))
			if err != nil {
				return usageError(err)
			}
			return a.rolloutStatus(cmd, ref)
		},
	}
	f := cmd.Flags()
	f.StringP("namespace", "n", "default", "namespace of the workload")
	f.Duration("timeout", 0, "give up (exit 1) after this long; 0 waits for as long as it takes")
	f.Duration("interval", time.Second, "how often to ask the agent")
	addAPIFlags(cmd)
	return cmd
}

// rolloutStatus polls the cluster until ref's rollout is over.
func (a *app) rolloutStatus(cmd *cobra.Command, ref history.Ref) error {
	client, err := a.apiClient(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	timeout, interval := a.cfg.GetDuration("timeout"), a.cfg.GetDuration("interval")
	if interval <= 0 {
		return usageError(errors.New("--interval must be positive"))
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	name := fmt.Sprintf("%s %q", strings.ToLower(ref.Kind), ref.Name)
	last := ""
	for {
		var c status.Cluster
		if err := client.getJSON(ctx, "/v1/cluster", &c); err != nil {
			return err
		}
		w, ok := findWorkload(c.Workloads, ref)
		if !ok {
			rev := "no revision"
			if c.Running != nil {
				rev = "revision " + gitrev.Short(c.Running.Commit)
			}
			return fmt.Errorf("%s is not in %s, which node %s runs", ref, rev, c.Node)
		}
		switch w.Health {
		case plan.HealthHealthy:
			if ref.Kind == "Job" {
				fmt.Fprintf(a.stdout, "%s completed\n", name)
			} else {
				fmt.Fprintf(a.stdout, "%s successfully rolled out\n", name)
			}
			return nil
		case plan.HealthDegraded:
			return fmt.Errorf("%s is Degraded: %s", name, w.Message)
		case plan.HealthSuspended:
			return fmt.Errorf("%s is paused (%s): set spec.paused to false in Git to resume", name, w.Message)
		}
		line := fmt.Sprintf("Waiting for %s rollout to finish: %d of %d updated pods are available, %d old", name, w.Available, w.Replicas, w.Old)
		if strings.Contains(w.Message, "waiting:") {
			_, why, _ := strings.Cut(w.Message, "waiting: ")
			line += " (waiting: " + why + ")"
		}
		if line != last {
			fmt.Fprintln(a.stdout, line+"...")
			last = line
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-deadline:
			t.Stop()
			return fmt.Errorf("%s: still rolling out after --timeout %s: %s", name, timeout, w.Message)
		case <-t.C:
		}
	}
}

func findWorkload(ws []plan.WorkloadStatus, ref history.Ref) (plan.WorkloadStatus, bool) {
	for _, w := range ws {
		if w.Kind == ref.Kind && w.Namespace == ref.Namespace && w.Name == ref.Name {
			return w, true
		}
	}
	return plan.WorkloadStatus{}, false
}

func (a *app) rolloutHistoryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "history WORKLOAD [DIR]",
		Short: "List the commits that changed a workload's template",
		Long: `History lists, newest first, the commits of the Git working tree DIR is
in (default: the working directory) that changed WORKLOAD's pod template
in the manifests under DIR: commit, author date, author, the template hash
the pods' names carry, and the subject. It follows first parents from
HEAD (a merge counts as one change) and looks at most at --max-commits
commits. Changes that do not touch the template (replicas, the strategy)
are not rollouts and are not listed. The first line is the template HEAD
has.`,
		Example: `  # In a clone, the manifests in ./deploy
  gitorch rollout history deployment/web ./deploy

  # A DaemonSet of another namespace, over a longer history
  gitorch rollout history ds/agent -n kube-system --max-commits 5000`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, repo, err := a.rolloutRepo(args)
			if err != nil {
				return err
			}
			changes, err := repo.Log(cmd.Context(), ref, a.cfg.GetInt("max-commits"))
			if err != nil {
				return err
			}
			if len(changes) == 0 {
				return fmt.Errorf("%s is not in the manifests of the last %d commits", ref, a.cfg.GetInt("max-commits"))
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "COMMIT\tDATE\tAUTHOR\tTEMPLATE\tSUBJECT")
			for i, c := range changes {
				tmpl := c.TemplateHash
				if tmpl == "" {
					tmpl = "(removed)"
				}
				subject := c.Subject
				if i == 0 {
					subject += "  (HEAD)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", gitrev.Short(c.Commit), c.Time.UTC().Format("2006-01-02 15:04 UTC"), c.Author, tmpl, subject)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringP("namespace", "n", "default", "namespace of the workload")
	cmd.Flags().Int("max-commits", 1000, "look at most at this many commits")
	return cmd
}

func (a *app) rolloutUndoCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "undo WORKLOAD [DIR]",
		Short: "Commit the workload's earlier template",
		Long: `Undo writes a commit, on HEAD of the Git working tree DIR is in (default:
the working directory), that restores WORKLOAD's pod template as it was
before its last change (see rollout history), or as commit --to-revision
left it. Only spec.template of the workload's YAML document changes: its
replicas, strategy and the file's other documents stay as they are. The
result is loaded and checked to give the old template before it is
committed, with the author of the repository's Git configuration
(user.name, user.email). The working tree must be clean.

Nothing is rewritten: the undo is one more commit. The cluster rolls back
when it reaches the branch the agents follow: push it yourself, or give
--push to push HEAD's branch to its remote.`,
		Example: `  # Back to the template before the last change, then push
  gitorch rollout undo deployment/web ./deploy
  git push

  # To the template of a given commit, pushed at once
  gitorch rollout undo deployment/web ./deploy --to-revision 4f1c0d9 --push`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, repo, err := a.rolloutRepo(args)
			if err != nil {
				return err
			}
			u, err := repo.Undo(cmd.Context(), ref, a.cfg.GetString("to-revision"), a.cfg.GetInt("max-commits"))
			if err != nil {
				return err
			}
			subject, _, _ := strings.Cut(u.Message, "\n")
			fmt.Fprintf(a.stdout, "%s: template %s → %s, as commit %s left it\n", ref, u.From, u.To, gitrev.Short(u.Source))
			fmt.Fprintf(a.stdout, "committed %s %s\n  %s\n", gitrev.Short(u.Commit), subject, u.File)
			if !a.cfg.GetBool("push") {
				fmt.Fprintln(a.stdout, "not pushed: the cluster rolls back once it reaches the branch the agents follow (git push, or --push)")
				return nil
			}
			if err := repo.Push(cmd.Context()); err != nil {
				return fmt.Errorf("push: %w (the commit is made; push it with git push)", err)
			}
			fmt.Fprintln(a.stdout, "pushed")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringP("namespace", "n", "default", "namespace of the workload")
	f.String("to-revision", "", "commit whose template to restore, as Git writes it (SHA, tag, HEAD~2); default: the one before the last change")
	f.Bool("push", false, "push HEAD's branch to its remote afterwards")
	f.Int("max-commits", 1000, "look at most at this many commits for the last change")
	return cmd
}

// rolloutRepo parses WORKLOAD [DIR] and opens the working tree of DIR.
func (a *app) rolloutRepo(args []string) (history.Ref, *history.Repo, error) {
	ref, err := history.ParseRef(args[0], a.cfg.GetString("namespace"))
	if err != nil {
		return ref, nil, usageError(err)
	}
	dir := "."
	if len(args) > 1 {
		dir = args[1]
	}
	if n := a.cfg.GetInt("max-commits"); n <= 0 {
		return ref, nil, usageError(errors.New("--max-commits must be positive"))
	}
	repo, err := history.Open(dir)
	return ref, repo, err
}
