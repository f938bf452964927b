package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/schema"
	"github.com/gitorch/gitorch/pkg/source"
)

func (a *app) validateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check manifests against gitorch's schemas",
		Long: `validate loads every manifest under the given files and directories
(default: the working directory) — *.yaml, *.yml, *.json and *.cue, skipping
.git and what .gitorchignore lists — and checks each against gitorch's
schemas and all of them together (duplicates, selectors, references to
ConfigMaps and Secrets, nodePorts, named target ports).

Each finding reads  file:line:col: Kind/namespace/name: field.path: message.
Fields that Kubernetes has and gitorch does not implement are warnings
("ignored: ..."); fields Kubernetes does not have are errors.

With --repo, what validating each file found is kept under --data-dir
(DIR/validate), keyed by the file's Git blob hash and the version of the
schemas: validating a later revision re-validates only the files it
changed, then checks all objects together again. -v adds to the summary
how many files were read, how many came from that cache, and the time
taken.

Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error.`,
		Example: `  # Validate the manifests of the working directory
  gitorch validate

  # Validate two directories and a file together
  gitorch validate deploy/ base/ extra/redis.yaml

  # Treat warnings as errors, and print the findings as JSON
  gitorch validate --strict -o json deploy/

  # Validate a branch of a remote repository, under its deploy/ directory
  gitorch validate --repo https://git.example.com/team/apps.git --ref main --path deploy

  # The same after a push, with the files taken from the cache and the time
  gitorch validate -v --repo https://git.example.com/team/apps.git --ref main --path deploy
  # valid: 10002 objects, 0 errors, 0 warnings; 3334 files (3333 from the cache) in 48ms`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runValidate(cmd.Context(), args)
		},
	}
	addSourceFlags(cmd, cacheDataDirUsage)
	cmd.Flags().Bool("strict", false, "treat warnings as errors")
	cmd.Flags().StringP("output", "o", "text", "output format: text or json")
	cmd.Flags().BoolP("verbose", "v", false, "add to the summary the files read, how many came from the validation cache, and the time taken")
	return cmd
}

// textOrJSON is --output of the commands that print text or JSON; any
// other value is a usage error.
func (a *app) textOrJSON() (string, error) {
	format := a.cfg.GetString("output")
	if format != "text" && format != "json" {
		return "", usageError(fmt.Errorf("--output %q: want text or json", format))
	}
	return format, nil
}

// validateReport is the JSON form of validate's output.
type validateReport struct {
	Valid    bool             `json:"valid"`
	Objects  int              `json:"objects"`
	Errors   int              `json:"errors"`
	Warnings int              `json:"warnings"`
	Findings []schema.Finding `json:"findings"`
	// With -v: the files read, those from the validation cache, and the
	// time taken to load and validate them.
	Files        *int     `json:"files,omitempty"`
	CachedFiles  *int     `json:"cachedFiles,omitempty"`
	Milliseconds *float64 `json:"milliseconds,omitempty"`
}

func (a *app) runValidate(ctx context.Context, args []string) error {
	output, err := a.textOrJSON()
	if err != nil {
		return err
	}
	remote, err := a.remoteSource()
	if err != nil {
		return err
	}
	var tree *tree
	var cache *schema.Cache
	if remote {
		cfg, err := a.sourceConfig()
		if err != nil {
			return err
		}
		repo, err := a.openRepo(ctx, cfg)
		if err != nil {
			return err
		}
		// The snapshot reads through its own handle on the cache.
		defer repo.Close()
		if tree, _, err = a.revisionTree(ctx, repo, "", args, false); err != nil {
			return err
		}
		cache = a.validation()
		defer a.saveValidation()
	} else if tree, err = localTree(args); err != nil {
		return usageError(err)
	}
	start := time.Now()
	res, err := schema.Load(tree.fsys, schema.Options{Paths: tree.paths, Cache: cache})
	took := time.Since(start)
	if err != nil {
		return &exitCodeError{code: exitError, err: fmt.Errorf("load manifests: %w", err)}
	}
	tree.display(res)
	var stats *loadStats
	if a.cfg.GetBool("verbose") {
		stats = &loadStats{files: res.Files, cached: res.CachedFiles, took: took}
	}
	return a.report(res, output, a.cfg.GetBool("strict"), stats)
}

// loadStats is what -v adds to validate's summary.
type loadStats struct {
	files, cached int
	took          time.Duration
}

func (s *loadStats) String() string {
	return fmt.Sprintf("%d files (%d from the cache) in %s", s.files, s.cached, s.took.Round(time.Millisecond))
}

// report prints the findings of res and turns them into the exit status.
// stats, when not nil, are added to the summary.
func (a *app) report(res *schema.Result, output string, strict bool, stats *loadStats) error {
	rep := validateReport{Objects: len(res.Objects), Findings: res.Findings}
	if stats != nil {
		ms := float64(stats.took.Microseconds()) / 1000
		rep.Files, rep.CachedFiles, rep.Milliseconds = &stats.files, &stats.cached, &ms
	}
	if rep.Findings == nil {
		rep.Findings = []schema.Finding{}
	}
	for _, f := range res.Findings {
		if f.Severity == schema.SeverityError || strict {
			rep.Errors++
		} else {
			rep.Warnings++
		}
	}
	rep.Valid = rep.Errors == 0
	if output == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, f := range res.Findings {
			fmt.Fprintln(a.stderr, f.String())
		}
		status := "valid"
		if !rep.Valid {
			status = "invalid"
		}
		summary := fmt.Sprintf("%s: %d objects, %d errors, %d warnings", status, rep.Objects, rep.Errors, rep.Warnings)
		if stats != nil {
			summary += "; " + stats.String()
		}
		fmt.Fprintln(a.stdout, summary)
	}
	if !rep.Valid {
		return &exitCodeError{code: exitError}
	}
	return nil
}

// tree is a set of local files and directories as one fs.FS, with what is
// needed to show its paths as the user wrote them.
type tree struct {
	fsys   fs.FS
	paths  []string
	prefix string // display path of the fsys root
	root   string // absolute directory of the fsys root, for local files
}

// snapshotTree is the tree of a Git revision; args, if any, are paths
// inside it (relative to --path). A path that is not there is an error,
// or with missingOK left out; when every one is left out the tree is nil.
func snapshotTree(snap *source.Snapshot, args []string, missingOK bool) (*tree, error) {
	t := &tree{fsys: snap.FS, prefix: snap.Path}
	for _, p := range args {
		p = path.Clean(filepath.ToSlash(p))
		if !fs.ValidPath(p) {
			return nil, fmt.Errorf("%s: not a path inside the repository", p)
		}
		if _, err := fs.Stat(snap.FS, p); err != nil {
			if missingOK {
				continue
			}
			return nil, fmt.Errorf("%s: no such file or directory at %s", p, gitrev.Short(snap.Revision))
		}
		t.paths = append(t.paths, p)
	}
	if len(args) > 0 && len(t.paths) == 0 {
		return nil, nil
	}
	return t, nil
}

// localTree puts the paths the user named under their deepest common
// directory.
func localTree(args []string) (*tree, error) {
	if len(args) == 0 {
		args = []string{"."}
	}
	var abs []string
	for _, p := range args {
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s: no such file or directory", p)
			}
			return nil, err
		}
		ap, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		abs = append(abs, ap)
	}
	root := abs[0]
	if info, err := os.Stat(root); err == nil && !info.IsDir() {
		root = filepath.Dir(root)
	}
	for _, p := range abs[1:] {
		for !within(root, p) {
			root = filepath.Dir(root)
		}
	}
	t := &tree{fsys: os.DirFS(root), root: root}
	for _, p := range abs {
		rel, _ := filepath.Rel(root, p)
		t.paths = append(t.paths, filepath.ToSlash(rel))
	}
	t.prefix = root
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, root); err == nil && !strings.HasPrefix(rel, "..") {
			t.prefix = rel
		}
	}
	return t, nil
}

func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// display rewrites the file names of res's findings from tree paths to the
// paths the user knows.
func (t *tree) display(res *schema.Result) {
	for i := range res.Findings {
		res.Findings[i].Pos.File = t.join(res.Findings[i].Pos.File)
	}
	for i := range res.Objects {
		res.Objects[i].Pos.File = t.join(res.Objects[i].Pos.File)
	}
}

func (t *tree) join(p string) string {
	if t.prefix == "." || t.prefix == "" {
		return p
	}
	return filepath.Join(t.prefix, filepath.FromSlash(p))
}
