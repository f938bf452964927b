package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing/fstest"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/schema"
	"github.com/gitorch/gitorch/pkg/source"
	"github.com/gitorch/gitorch/pkg/status"
)

// exitChanges is plan's exit status when the plan changes something, as
// terraform plan -detailed-exitcode does.
const exitChanges = 2

func (a *app) planCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan [PATH...]",
		Short: "Show which objects and pods a revision adds, changes, moves or destroys",
		Long: `Plan loads and validates the manifests under the given files and
directories (default: the working directory, uncommitted changes included),
as gitorch validate does, or, with --repo, those of --ref under --path (the
PATHs are then inside it); places their pods on the nodes of --nodes with
the same function every node runs; and shows what would change compared
with the same PATHs at --against REV or with --against-dir PATH (another
file or directory), placed on --against-nodes (default: the same nodes).

REV is any revision of the same repository (--repo, or else the Git
repository the PATHs are in) as Git writes it: a branch, origin/BRANCH, a
tag, a commit SHA, full or abbreviated, HEAD (the checked-out commit), and
walks from those such as HEAD~1 or main^. A PATH that REV does not have
holds nothing there, so what it holds now is created.

  + create, - destroy, ~ update (one line per changed field), then the pods:
  + pod placed, - pod stopped, ~ pod moved, ! pod unplaceable (and why),
  then every Service with its ClusterIP, and a summary line.

A Secret's values are never shown, base64 or decoded: a changed key reads
"data.password: (sensitive, changed)", added and removed keys likewise.

Without --nodes, plan asks the local agent (or the node at --server) for
the live cluster: its schedulable members are the nodes, pods move from
where they run now, and, without --against or --against-dir, the
manifests are compared with the revision the cluster runs. A PATH holding
that revision, with every pod where the plan puts it, is "no changes"
(exit 0). With --nodes (a what-if) and without --against or --against-dir
every object is new.

The nodes file lists the cluster's members (docs/placement.md):

  nodes:
  - name: node-a
    address: 10.0.0.1
    labels: {zone: a}
    capacity: {cpu: "4", memory: 8Gi, pods: 110}   # or allocatable:
    taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
    unschedulable: false

A mistake in it is reported with its line (nodes.yaml:3: ...).

Colour is used on a terminal unless NO_COLOR is set. -o json writes one
JSON document whose schema docs/placement.md describes.

Exit status: 0 no changes, 2 changes, 1 error, including a mistake in the
command line (invalid manifests print as gitorch validate prints them).`,
		Example: `  # On a node: what the working tree would change in the live cluster
  gitorch plan ./deploy

  # What the manifests in ./deploy do to a three-node cluster of a file
  gitorch plan --nodes nodes.yaml ./deploy

  # Before committing: the working tree against the last commit
  gitorch plan --nodes nodes.yaml --against HEAD ./deploy

  # What the last commit changed, for one file
  gitorch plan --nodes nodes.yaml --against HEAD~1 deploy/web.yaml

  # Before merging: a branch of the remote repository against main
  gitorch plan --nodes nodes.yaml --repo https://git.example.com/ops.git --ref feature --against main

  # Compare with another directory
  gitorch plan --nodes nodes.yaml --against-dir /tmp/old-manifests .

  # What if node-3 dies: the same manifests, one node fewer
  gitorch plan --against-dir . --against-nodes nodes.yaml --nodes nodes-without-3.yaml .

  # For scripts
  gitorch plan -o json --nodes nodes.yaml . | jq .summary`,
		RunE: func(cmd *cobra.Command, args []string) error {
			changes, err := a.runPlan(cmd, args)
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
	addSourceFlags(cmd, cacheDataDirUsage)
	f := cmd.Flags()
	f.String("nodes", "", "membership file: the nodes to place pods on")
	f.String("against", "", "revision to compare with, as Git writes it (main, origin/main, v1, a SHA, HEAD~1, main^), of --repo or of the Git repository the PATHs are in")
	f.String("against-dir", "", "file or directory with the manifests to compare with")
	f.String("against-nodes", "", "membership file for the revision compared with (default: --nodes)")
	f.StringP("output", "o", "text", "output format: text or json")
	f.String("service-cidr", plan.DefaultServiceCIDR.String(), "range ClusterIPs are allocated from")
	addAPIFlags(cmd)
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

// runPlan prints the plan of the manifests under args and reports whether
// it changes anything.
func (a *app) runPlan(cmd *cobra.Command, args []string) (bool, error) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	format, err := a.textOrJSON()
	if err != nil {
		return false, err
	}
	cidr, err := netip.ParsePrefix(a.cfg.GetString("service-cidr"))
	if err != nil {
		return false, usageError(fmt.Errorf("--service-cidr: %w", err))
	}
	against, againstDir := a.cfg.GetString("against"), a.cfg.GetString("against-dir")
	if against != "" && againstDir != "" {
		return false, usageError(errors.New("--against and --against-dir exclude each other"))
	}
	remote, err := a.remoteSource()
	if err != nil {
		return false, err
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

	// The loads share one validation cache: with --against, the files
	// the two trees have in common are validated once. With a repository,
	// the cache is kept under the data directory.
	defer a.saveValidation()
	var objs, old []runtime.Object
	if remote {
		cfg, err := a.sourceConfig()
		if err != nil {
			return false, err
		}
		repo, err := a.openRepo(ctx, cfg)
		if err != nil {
			return false, err
		}
		defer repo.Close()
		t, name, err := a.revisionTree(ctx, repo, "", args, false)
		if err != nil {
			return false, err
		}
		if objs, err = a.loadObjects(t, name); err != nil {
			return false, err
		}
		if against != "" {
			if old, err = a.loadRevision(ctx, repo, against, args); err != nil {
				return false, err
			}
		}
	} else {
		t, err := localTree(args)
		if err != nil {
			return false, err
		}
		name := "."
		if len(args) > 0 {
			name = strings.Join(args, " ")
		}
		if objs, err = a.loadObjects(t, name); err != nil {
			return false, err
		}
		if against != "" {
			repo, err := a.localRepo(ctx, t)
			if err != nil {
				return false, err
			}
			defer repo.Close()
			if old, err = a.loadRevision(ctx, repo, against, t.paths); err != nil {
				return false, err
			}
		}
	}
	if againstDir != "" {
		t, err := localTree([]string{againstDir})
		if err != nil {
			return false, fmt.Errorf("--against-dir: %w", err)
		}
		if old, err = a.loadObjects(t, againstDir); err != nil {
			return false, err
		}
	}

	opts := plan.Options{ServiceCIDR: cidr, Now: time.Now()}
	if a.cfg.GetString("nodes") == "" && a.cfg.GetString("against-nodes") == "" {
		base := against == "" && againstDir == ""
		live, err := a.liveCluster(ctx, cmd, base)
		switch {
		case err == nil:
			nodes, oldNodes, opts.Actual, opts.Health = live.nodes, live.nodes, live.actual, live.health
			if base {
				old = live.objects
			}
		case base:
			return false, err
		default:
			// Two revisions compared with each other need no cluster:
			// without one, the pods are placed on no node.
			fmt.Fprintf(a.stderr, "gitorch: note: %v; planning on no nodes\n", err)
		}
	}
	p := plan.Build(old, objs, oldNodes, nodes, opts)
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

// localRepo opens the Git repository that holds the root of the local
// tree t as a source whose --path is that root, so that --against reads
// the same files at another revision.
func (a *app) localRepo(ctx context.Context, t *tree) (*source.Repo, error) {
	root := t.root
	top := root
	for {
		if _, err := os.Stat(filepath.Join(top, ".git")); err == nil {
			break
		}
		parent := filepath.Dir(top)
		if parent == top {
			return nil, usageError(fmt.Errorf("--against: %s is not in a Git repository; use --repo or --against-dir", t.prefix))
		}
		top = parent
	}
	rel, err := filepath.Rel(top, root)
	if err != nil {
		return nil, err
	}
	cfg, err := a.sourceConfig()
	if err != nil {
		return nil, err
	}
	cfg.URL = top
	if rel = filepath.ToSlash(rel); rel != "." {
		cfg.Path = rel
	}
	return a.openRepo(ctx, cfg)
}

// loadRevision loads the manifests under paths at revision rev of repo.
// Paths that rev does not have hold nothing there: the plan creates
// what they hold now.
func (a *app) loadRevision(ctx context.Context, repo *source.Repo, rev string, paths []string) ([]runtime.Object, error) {
	t, name, err := a.revisionTree(ctx, repo, rev, paths, true)
	if err != nil || t == nil {
		return nil, err
	}
	return a.loadObjects(t, name)
}

// loadObjects loads and validates the manifests of t, which name
// describes. Findings go to stderr as gitorch validate prints them; errors
// among them fail the plan.
func (a *app) loadObjects(t *tree, name string) ([]runtime.Object, error) {
	return a.loadTree(t, name, true)
}

// loadTree is loadObjects, printing warnings only when warn is set: those
// of the revision an agent runs are in gitorch status, and its files as
// the agent serves them (Secrets' values taken out, a CUE package with a
// Secret as its objects, defaults applied) warn of what the user did not
// write.
func (a *app) loadTree(t *tree, name string, warn bool) ([]runtime.Object, error) {
	res, err := schema.Load(t.fsys, schema.Options{Paths: t.paths, Cache: a.validation()})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	t.display(res)
	for _, f := range res.Findings {
		if warn || f.Severity == schema.SeverityError {
			fmt.Fprintln(a.stderr, f.String())
		}
	}
	if n := res.Errors(); n > 0 {
		return nil, &exitCodeError{code: exitError, err: fmt.Errorf("%s: %d error(s) in the manifests", name, n)}
	}
	return res.RuntimeObjects(), nil
}

func readNodes(path string) ([]plan.Node, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return plan.ParseNodesFile(path, data)
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

// liveCluster is the cluster as the local agent (or --server) sees it,
// for a plan without --nodes.
type liveCluster struct {
	nodes  []plan.Node
	actual map[plan.Key]string
	// objects of the revision the agent runs, when asked for.
	objects []runtime.Object
	// health of the workloads, as the agent sees them.
	health []plan.WorkloadStatus
}

// maxRevisionArchive bounds the running revision's files read from an
// agent.
const maxRevisionArchive = 256 << 20

func (a *app) liveCluster(ctx context.Context, cmd *cobra.Command, withObjects bool) (*liveCluster, error) {
	c, err := a.apiClient(cmd)
	if err != nil {
		return nil, err
	}
	var cl status.Cluster
	if err := c.getJSON(ctx, "/v1/cluster", &cl); err != nil {
		return nil, fmt.Errorf("no --nodes given, so plan asks the cluster: %w\n(give --nodes FILE for a plan on nodes of your own, see docs/placement.md)", err)
	}
	live := &liveCluster{actual: map[plan.Key]string{}, health: cl.Workloads}
	for _, m := range cl.Members {
		if m.Schedulable {
			live.nodes = append(live.nodes, plan.Node{Name: m.Name, Labels: m.Labels, Allocatable: m.Capacity})
		}
	}
	for _, p := range cl.Pods {
		live.actual[p.Key()] = p.Node
	}
	if !withObjects {
		return live, nil
	}
	if cl.Running == nil {
		return live, nil // nothing runs: every object is new
	}
	resp, err := c.get(ctx, "/v1/revision/files", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	fsys := fstest.MapFS{}
	tr := tar.NewReader(io.LimitReader(resp.Body, maxRevisionArchive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the running revision's files from %s: %w", c.addr, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("the running revision's files from %s: %w", c.addr, err)
		}
		fsys[h.Name] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	name := "the running revision " + gitrev.Short(resp.Header.Get("Gitorch-Revision"))
	if live.objects, err = a.loadTree(&tree{fsys: fsys, prefix: name}, name, false); err != nil {
		return nil, err
	}
	return live, nil
}
