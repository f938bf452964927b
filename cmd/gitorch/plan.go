package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/gitorch/gitorch/pkg/backoff"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/schema"
	"github.com/gitorch/gitorch/pkg/source"
)

// exitChanges is plan's exit status when the plan changes something, as
// terraform plan -detailed-exitcode does.
const exitChanges = 2

func (a *app) planCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan [DIR]",
		Short: "Show which objects and pods a revision adds, changes, moves or destroys",
		Long: `Plan loads and validates the manifests in DIR (default: the working
directory, uncommitted changes included) or, with --repo, those of --ref
under --path; places their pods on the nodes of --nodes with the same
function every node runs; and shows what would change compared with the
manifests of --against REV (a branch, tag or full commit SHA of the same
repository: --repo, or else the Git repository DIR is in) or --against-dir
(another directory), placed on --against-nodes (default: the same nodes):

  + create, - destroy, ~ update (one line per changed field), then the pods:
  + pod placed, - pod stopped, ~ pod moved, ! pod unplaceable (and why),
  then every Service with its ClusterIP, and a summary line.

Without --against or --against-dir every object is new. Without --nodes
the cluster has no nodes and every pod is unplaceable.

The nodes file lists the cluster's members (docs/placement.md):

  nodes:
  - name: node-a
    address: 10.0.0.1
    labels: {zone: a}
    capacity: {cpu: "4", memory: 8Gi, pods: 110}
    taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
    unschedulable: false

Colour is used on a terminal unless NO_COLOR is set. -o json writes one
JSON document whose schema docs/placement.md describes.

Exit status: 0 no changes, 2 changes, 1 error, including a mistake in the
command line (invalid manifests print as gitorch validate prints them).`,
		Example: `  # What the manifests in ./deploy do to a three-node cluster
  gitorch plan --nodes nodes.yaml ./deploy

  # Before committing: the working tree against the last commit
  gitorch plan --nodes nodes.yaml --against HEAD ./deploy

  # Before merging: a branch of the remote repository against main
  gitorch plan --nodes nodes.yaml --repo https://git.example.com/ops.git --ref feature --against main

  # Compare with another directory
  gitorch plan --nodes nodes.yaml --against-dir /tmp/old-manifests .

  # What if node-3 dies: the same manifests, one node fewer
  gitorch plan --against-dir . --against-nodes nodes.yaml --nodes nodes-without-3.yaml .

  # For scripts
  gitorch plan -o json --nodes nodes.yaml . | jq .summary`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return planError(usageError(fmt.Errorf("plan takes at most one directory, got %d", len(args))))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			changes, err := a.runPlan(cmd.Context(), dir, len(args) == 1)
			if err != nil {
				return planError(err)
			}
			if changes {
				return &exitCodeError{code: exitChanges}
			}
			return nil
		},
	}
	// Exit status 2 means "changes" for plan, so a mistake in the command
	// line is an error like any other (1).
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return planError(usageError(err)) })
	addSourceFlags(cmd)
	f := cmd.Flags()
	f.String("nodes", "", "membership file: the nodes to place pods on")
	f.String("against", "", "revision to compare with: a branch, tag or full commit SHA (HEAD: the repository's HEAD) of --repo, or of the Git repository DIR is in")
	f.String("against-dir", "", "directory with the manifests to compare with")
	f.String("against-nodes", "", "membership file for the revision compared with (default: --nodes)")
	f.StringP("output", "o", "text", "output format: text or json")
	f.String("service-cidr", plan.DefaultServiceCIDR.String(), "range ClusterIPs are allocated from")
	return cmd
}

// planError turns a usage error (exit 2 elsewhere) into exit 1, since plan
// exits 2 for a plan with changes.
func planError(err error) error {
	var ec *exitCodeError
	if errors.As(err, &ec) && ec.code == exitUsage {
		return &exitCodeError{code: exitError, err: ec.err}
	}
	return err
}

// runPlan prints the plan and reports whether it changes anything.
func (a *app) runPlan(ctx context.Context, dir string, dirGiven bool) (bool, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	format := a.cfg.GetString("output")
	if format != "text" && format != "json" {
		return false, usageError(fmt.Errorf("--output %q: want text or json", format))
	}
	cidr, err := netip.ParsePrefix(a.cfg.GetString("service-cidr"))
	if err != nil {
		return false, usageError(fmt.Errorf("--service-cidr: %w", err))
	}
	against, againstDir := a.cfg.GetString("against"), a.cfg.GetString("against-dir")
	if against != "" && againstDir != "" {
		return false, usageError(errors.New("--against and --against-dir exclude each other"))
	}
	remote := a.cfg.GetString("repo") != ""
	if remote && dirGiven {
		return false, usageError(errors.New("give either DIR or --repo, not both"))
	}
	if !remote {
		for _, name := range []string{"ref", "path"} {
			if a.cfg.GetString(name) != "" {
				return false, usageError(fmt.Errorf("--%s needs --repo", name))
			}
		}
	}
	nodes, err := readNodes(a.cfg.GetString("nodes"))
	if err != nil {
		return false, err
	}
	oldNodes := nodes
	if f := a.cfg.GetString("against-nodes"); f != "" {
		if oldNodes, err = readNodes(f); err != nil {
			return false, err
		}
	}

	var objs, old []runtime.Object
	switch {
	case remote:
		cfg, err := a.sourceConfig()
		if err != nil {
			return false, err
		}
		repo, err := a.fetchRepo(ctx, cfg)
		if err != nil {
			return false, err
		}
		if objs, err = a.loadRevision(ctx, repo, ""); err != nil {
			return false, err
		}
		if against != "" {
			if old, err = a.loadRevision(ctx, repo, against); err != nil {
				return false, err
			}
		}
	default:
		t, err := dirTree(dir)
		if err != nil {
			return false, err
		}
		if objs, err = a.loadObjects(t, dir); err != nil {
			return false, err
		}
		if against != "" {
			repo, err := a.localRepo(ctx, dir)
			if err != nil {
				return false, err
			}
			if old, err = a.loadRevision(ctx, repo, against); err != nil {
				return false, err
			}
		}
	}
	if againstDir != "" {
		t, err := dirTree(againstDir)
		if err != nil {
			return false, err
		}
		if old, err = a.loadObjects(t, againstDir); err != nil {
			return false, err
		}
	}

	p := plan.Build(old, objs, oldNodes, nodes, plan.Options{ServiceCIDR: cidr})
	if format == "json" {
		err = p.WriteJSON(a.stdout)
	} else {
		err = p.WriteText(a.stdout, useColor(a.stdout))
	}
	if err != nil {
		return false, err
	}
	return p.HasChanges(), nil
}

// localRepo opens the Git repository that holds dir as a source, rooted at
// dir, so that --against reads the same directory at another revision.
func (a *app) localRepo(ctx context.Context, dir string) (*source.Repo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	root := abs
	for {
		if _, err := os.Stat(filepath.Join(root, ".git")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return nil, usageError(fmt.Errorf("--against: %s is not in a Git repository; use --repo or --against-dir", dir))
		}
		root = parent
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		return nil, err
	}
	cfg, err := a.sourceConfig()
	if err != nil {
		return nil, err
	}
	cfg.URL = root
	if rel = filepath.ToSlash(rel); rel != "." {
		cfg.Path = rel
	}
	return a.fetchRepo(ctx, cfg)
}

// fetchRepo opens the cache of cfg's repository and fetches it.
func (a *app) fetchRepo(ctx context.Context, cfg source.Config) (*source.Repo, error) {
	dir, err := a.dataDir()
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, at slog.Attr) slog.Attr {
			if at.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return at
		},
	}))
	repo, err := source.Open(dir, cfg, log)
	if err != nil {
		return nil, sourceError(err)
	}
	if timeout := a.cfg.GetDuration("fetch-timeout"); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := source.Retry(ctx, backoff.Backoff{Initial: time.Second, Max: 8 * time.Second}, 3, nil, repo.Fetch); err != nil {
		return nil, err
	}
	return repo, nil
}

// loadRevision loads the manifests of rev ("" for --ref; HEAD for the
// repository's checked-out branch).
func (a *app) loadRevision(ctx context.Context, repo *source.Repo, rev string) ([]runtime.Object, error) {
	if rev == "HEAD" {
		rev = ""
	}
	snap, err := repo.Snapshot(ctx, rev)
	if err != nil {
		return nil, sourceError(err)
	}
	for _, s := range snap.Skipped {
		fmt.Fprintf(a.stderr, "gitorch: note: %s: %v\n", path.Join(snap.Path, s.Name), s.Reason)
	}
	name := gitrev.Short(snap.Revision)
	if rev != "" {
		name = rev + " (" + name + ")"
	}
	return a.loadObjects(&tree{fsys: snap.FS, prefix: snap.Path}, name)
}

// loadObjects loads and validates the manifests of t, which name
// describes. Findings go to stderr as gitorch validate prints them; errors
// among them fail the plan.
func (a *app) loadObjects(t *tree, name string) ([]runtime.Object, error) {
	res, err := schema.Load(t.fsys, schema.Options{Paths: t.paths})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	t.display(res)
	for _, f := range res.Findings {
		fmt.Fprintln(a.stderr, f.String())
	}
	if n := res.Errors(); n > 0 {
		return nil, &exitCodeError{code: exitError, err: fmt.Errorf("%s: %d error(s) in the manifests", name, n)}
	}
	objs := make([]runtime.Object, len(res.Objects))
	for i := range res.Objects {
		objs[i] = res.Objects[i].Obj
	}
	return objs, nil
}

// dirTree is the tree of the local directory dir.
func dirTree(dir string) (*tree, error) {
	st, err := os.Stat(dir)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	return localTree([]string{dir})
}

func readNodes(path string) ([]plan.Node, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	nodes, err := plan.ParseNodes(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return nodes, nil
}

// useColor reports whether w is a terminal and NO_COLOR (no-color.org) is
// not set.
func useColor(w io.Writer) bool {
	if _, ok := os.LookupEnv("NO_COLOR"); ok {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
