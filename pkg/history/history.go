// Package history reads a workload's history from Git: the commits that
// changed its pod template, and the commit that restores an earlier one
// (gitorch rollout history and undo). Git stays the only record: nothing
// is kept elsewhere, and undo adds a commit, never rewrites one.
//
// It works on a local clone (a working tree), reads commits from its
// object store and writes only the one manifest file it restores.
package history

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/schema"
)

// Ref names a workload as kubectl writes it: deployment/web.
type Ref struct {
	Kind, Namespace, Name string
}

// kinds maps kubectl's names and short names to kinds.
var kinds = map[string]string{
	"deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
	"statefulset": "StatefulSet", "statefulsets": "StatefulSet", "sts": "StatefulSet",
	"daemonset": "DaemonSet", "daemonsets": "DaemonSet", "ds": "DaemonSet",
	"replicaset": "ReplicaSet", "replicasets": "ReplicaSet", "rs": "ReplicaSet",
	"replicationcontroller": "ReplicationController", "replicationcontrollers": "ReplicationController", "rc": "ReplicationController",
	"job": "Job", "jobs": "Job",
}

// ParseRef parses KIND/NAME (deployment/web, deploy/web, ds/agent, ...),
// in namespace (empty: default).
func ParseRef(s, namespace string) (Ref, error) {
	k, name, ok := strings.Cut(s, "/")
	kind := kinds[strings.ToLower(k)]
	if !ok || name == "" || strings.Contains(name, "/") || kind == "" {
		return Ref{}, fmt.Errorf("workload %q: want KIND/NAME, such as deployment/web, statefulset/db, daemonset/agent or job/once", s)
	}
	if namespace == "" {
		namespace = "default"
	}
	return Ref{Kind: kind, Namespace: namespace, Name: name}, nil
}

// String is the workload as kubectl writes it.
func (r Ref) String() string { return strings.ToLower(r.Kind) + "/" + r.Name }

// Change is one commit that changed the workload's template.
type Change struct {
	Commit  string
	Author  string // "Name <email>"
	Time    time.Time
	Subject string
	// TemplateHash of the template the commit gave the workload; empty
	// when the commit removed the workload.
	TemplateHash string
	// File holding the workload, relative to the manifest directory.
	File string
}

// Repo is a local clone and the directory of manifests in it.
type Repo struct {
	repo *git.Repository
	root string // the working tree
	dir  string // the manifest directory, slash-separated, relative to root ("" for root)
}

// Open opens the clone that holds dir, a directory of manifests.
func Open(dir string) (*Repo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	repo, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("%s: not in a Git working tree: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	root := wt.Filesystem.Root()
	rel, err := filepath.Rel(root, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("%s is outside the working tree %s", dir, root)
	}
	rel = filepath.ToSlash(rel)
	if rel == "." {
		rel = ""
	}
	return &Repo{repo: repo, root: root, dir: rel}, nil
}

// maxFileSize: larger files of the manifest directory are not read (a
// manifest is a few KiB).
const maxFileSize = 4 << 20

// found is a workload as one commit has it.
type found struct {
	hash     string
	file     string
	template *corev1.PodTemplateSpec
}

// at loads the manifests of commit c and finds ref among them; a nil
// found when the commit does not have it.
func (r *Repo) at(c *object.Commit, ref Ref) (*found, error) {
	fsys, err := r.files(c)
	if err != nil || fsys == nil {
		return nil, err
	}
	return find(fsys, ref)
}

// files are the files of the manifest directory at commit c, nil if it
// has none (regular files only: symbolic links and submodules are left
// out, as the agent leaves them out).
func (r *Repo) files(c *object.Commit) (fstest.MapFS, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, err
	}
	if r.dir != "" {
		tree, err = tree.Tree(r.dir)
		if errors.Is(err, object.ErrDirectoryNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	fsys := fstest.MapFS{}
	err = tree.Files().ForEach(func(f *object.File) error {
		if f.Mode != filemode.Regular && f.Mode != filemode.Executable || f.Size > maxFileSize {
			return nil
		}
		b, err := f.Contents()
		if err != nil {
			return err
		}
		fsys[f.Name] = &fstest.MapFile{Data: []byte(b), Mode: 0o644}
		return nil
	})
	return fsys, err
}

// find loads fsys and returns ref's template in it, or nil.
func find(fsys fs.FS, ref Ref) (*found, error) {
	res, err := schema.Load(fsys, schema.Options{})
	if err != nil {
		return nil, err
	}
	for _, o := range res.Objects {
		if o.Kind != ref.Kind || o.Namespace != ref.Namespace || o.Name != ref.Name {
			continue
		}
		t := template(o.Obj)
		if t == nil {
			return nil, nil
		}
		return &found{hash: plan.TemplateHash(t), file: o.Pos.File, template: t}, nil
	}
	return nil, nil
}

func template(o any) *corev1.PodTemplateSpec {
	switch o := o.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *appsv1.DaemonSet:
		return &o.Spec.Template
	case *appsv1.ReplicaSet:
		return &o.Spec.Template
	case *corev1.ReplicationController:
		return o.Spec.Template
	case *batchv1.Job:
		return &o.Spec.Template
	}
	return nil
}

// Log lists the commits, newest first, that changed ref's template, along
// first parents from HEAD, looking at most at maxCommits commits. The
// first is the template HEAD has.
func (r *Repo) Log(ctx context.Context, ref Ref, maxCommits int) ([]Change, error) {
	head, err := r.repo.Head()
	if err != nil {
		return nil, fmt.Errorf("HEAD: %w", err)
	}
	c, err := r.repo.CommitObject(head.Hash())
	if err != nil {
		return nil, err
	}
	// The manifests of each commit along first parents; a commit whose
	// manifest directory is the same tree as its child's is not loaded
	// again.
	type point struct {
		c *object.Commit
		f *found
	}
	var points []point
	var lastTree plumbing.Hash
	var last *found
	for n := 0; c != nil && n < maxCommits; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tree, err := c.Tree()
		if err != nil {
			return nil, err
		}
		dirHash := tree.Hash
		if r.dir != "" {
			if t, err := tree.Tree(r.dir); err == nil {
				dirHash = t.Hash
			} else {
				dirHash = plumbing.ZeroHash
			}
		}
		f := last
		if n == 0 || dirHash != lastTree {
			if f, err = r.at(c, ref); err != nil {
				return nil, fmt.Errorf("commit %s: %w", c.Hash.String()[:12], err)
			}
		}
		points = append(points, point{c, f})
		lastTree, last = dirHash, f
		if c.NumParents() == 0 {
			break
		}
		if c, err = c.Parent(0); err != nil {
			return nil, err
		}
	}
	var out []Change
	for i, p := range points {
		var older *found
		if i+1 < len(points) {
			older = points[i+1].f
		}
		if sameTemplate(p.f, older) {
			continue
		}
		if p.f == nil && i+1 == len(points) {
			continue // before the workload existed
		}
		ch := Change{Commit: p.c.Hash.String(), Author: p.c.Author.Name + " <" + p.c.Author.Email + ">",
			Time: p.c.Author.When, Subject: subject(p.c.Message)}
		if p.f != nil {
			ch.TemplateHash, ch.File = p.f.hash, p.f.file
		}
		out = append(out, ch)
	}
	return out, nil
}

func sameTemplate(a, b *found) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.hash == b.hash
}

func subject(msg string) string {
	s, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	return s
}

// Undo is what Undo wrote.
type Undo struct {
	// Commit is the new commit; Message its message.
	Commit, Message string
	// File is the manifest rewritten, relative to the working tree.
	File string
	// From is the template hash HEAD had, To the one restored, as of
	// Source, the commit whose template it is.
	From, To, Source string
}

// ErrNothingToUndo: the workload's template never changed, or already is
// the one asked for.
var ErrNothingToUndo = errors.New("nothing to undo")

// Undo writes a commit on HEAD that restores ref's template as it was
// after commit to (empty: before the last change of it), and returns it.
// Only spec.template of the workload's YAML document changes; the other
// documents of the file keep their text. The working tree must be clean.
func (r *Repo) Undo(ctx context.Context, ref Ref, to string, maxCommits int) (*Undo, error) {
	wt, err := r.repo.Worktree()
	if err != nil {
		return nil, err
	}
	st, err := wt.Status()
	if err != nil {
		return nil, err
	}
	for name, fst := range st {
		if fst.Worktree != git.Untracked && (fst.Worktree != git.Unmodified || fst.Staging != git.Unmodified) {
			return nil, fmt.Errorf("the working tree has changes (%s); commit or stash them first, so that the undo commit holds only the undo", name)
		}
	}
	head, err := r.repo.Head()
	if err != nil {
		return nil, fmt.Errorf("HEAD: %w", err)
	}
	headCommit, err := r.repo.CommitObject(head.Hash())
	if err != nil {
		return nil, err
	}
	cur, err := r.at(headCommit, ref)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, fmt.Errorf("%s is not in the manifests at HEAD", ref)
	}
	var src *object.Commit
	if to == "" {
		changes, err := r.Log(ctx, ref, maxCommits)
		if err != nil {
			return nil, err
		}
		if len(changes) < 2 || changes[1].TemplateHash == "" {
			return nil, fmt.Errorf("%s: %w: its template has no earlier version in the last %d commits", ref, ErrNothingToUndo, maxCommits)
		}
		to = changes[1].Commit
	}
	h, err := r.repo.ResolveRevision(plumbing.Revision(to))
	if err != nil {
		return nil, fmt.Errorf("--to-revision %s: %w", to, err)
	}
	if src, err = r.repo.CommitObject(*h); err != nil {
		return nil, err
	}
	old, err := r.at(src, ref)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return nil, fmt.Errorf("%s is not in the manifests at %s", ref, src.Hash.String()[:12])
	}
	if old.hash == cur.hash {
		return nil, fmt.Errorf("%s: %w: HEAD already has the template of %s", ref, ErrNothingToUndo, src.Hash.String()[:12])
	}
	oldText, err := fileAt(src, path.Join(r.dir, old.file))
	if err != nil {
		return nil, err
	}
	file := path.Join(r.dir, cur.file)
	disk := filepath.Join(r.root, filepath.FromSlash(file))
	curText, err := fileAt(headCommit, file)
	if err != nil {
		return nil, err
	}
	newText, err := restoreTemplate(curText, cur.file, oldText, old.file, ref)
	if err != nil {
		return nil, err
	}
	if err := writeFile(disk, newText); err != nil {
		return nil, err
	}
	undo := func() { _ = writeFile(disk, curText) }
	// HEAD with the file rewritten must load, and give the workload the
	// old template.
	fsys, err := r.files(headCommit)
	if err != nil {
		undo()
		return nil, err
	}
	fsys[cur.file] = &fstest.MapFile{Data: newText, Mode: 0o644}
	got, err := find(fsys, ref)
	if err != nil || got == nil || got.hash != old.hash {
		undo()
		if err == nil {
			err = errors.New("the rewritten manifest does not give the old template")
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if _, err := wt.Add(file); err != nil {
		undo()
		return nil, err
	}
	msg := fmt.Sprintf("Roll back %s to its template of %s\n\nRestores spec.template of %s %s/%s as commit %s (%q) left it:\ntemplate %s, replacing %s.\n",
		ref, src.Hash.String()[:12], ref.Kind, ref.Namespace, ref.Name, src.Hash.String()[:12], subject(src.Message), old.hash, cur.hash)
	commit, err := wt.Commit(msg, &git.CommitOptions{})
	if err != nil {
		undo()
		_, _ = wt.Remove(file)
		_ = wt.Reset(&git.ResetOptions{Commit: headCommit.Hash, Mode: git.MixedReset})
		return nil, fmt.Errorf("commit: %w (set user.name and user.email with git config)", err)
	}
	return &Undo{Commit: commit.String(), Message: msg, File: file, From: cur.hash, To: old.hash, Source: src.Hash.String()}, nil
}

// Push pushes HEAD's branch to its remote (origin).
func (r *Repo) Push(ctx context.Context) error {
	err := r.repo.PushContext(ctx, &git.PushOptions{})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return err
}

func fileAt(c *object.Commit, name string) ([]byte, error) {
	f, err := c.File(name)
	if err != nil {
		return nil, fmt.Errorf("%s at %s: %w", name, c.Hash.String()[:12], err)
	}
	s, err := f.Contents()
	return []byte(s), err
}
