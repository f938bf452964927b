package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Snapshot is one revision's files under the configured path, read from
// Git's object store.
type Snapshot struct {
	// Revision is the full commit SHA.
	Revision string
	// Path is the directory inside the repository that FS is rooted at
	// ("" for the root).
	Path string
	// Time is the commit's committer time; FS reports it as every file's
	// modification time.
	Time time.Time
	// Subject is the first line of the commit message.
	Subject string
	// Signer names the key that signed the commit, when Config.Verify is
	// set.
	Signer string
	// FS holds the files. It implements fs.ReadDirFS, fs.ReadFileFS and
	// fs.StatFS, and BlobHash(name) (string, error), which returns the Git
	// blob hash of a file without reading it; it is safe for concurrent use,
	// and never follows symbolic links or submodules.
	FS fs.FS
	// Skipped lists the symbolic links and submodules under Path, which FS
	// leaves out.
	Skipped []Skipped

	closer io.Closer
}

// Close releases the pack files the snapshot keeps open (at most 16). It is
// optional, since the garbage collector closes them too, and FS fails
// after it.
func (s *Snapshot) Close() error {
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}

// Skipped is an entry of the tree that a Snapshot's FS does not serve.
type Skipped struct {
	Name   string // slash-separated, relative to the Snapshot's Path
	Reason error  // ErrSymlink or ErrSubmodule
	Target string // a symbolic link's target, as stored
}

func (s Skipped) String() string {
	if s.Target != "" {
		return fmt.Sprintf("%s: %v (-> %s)", s.Name, s.Reason, s.Target)
	}
	return fmt.Sprintf("%s: %v", s.Name, s.Reason)
}

// Snapshot resolves rev (see Resolve), verifies its signature when
// Config.Verify is set, and returns the files under Config.Path at that
// commit. The FS stays valid while the Repo fetches.
func (r *Repo) Snapshot(ctx context.Context, rev string) (*Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.resolve(rev)
	if err != nil {
		return nil, err
	}
	name := rev
	if name == "" {
		name = r.cfg.Ref
	}
	snap := &Snapshot{
		Revision: c.Hash.String(),
		Path:     r.cfg.Path,
		Time:     c.Committer.When,
		Subject:  firstLine(c.Message),
	}
	if r.cfg.Verify != nil {
		signer, err := r.cfg.Verify.VerifyCommit(c)
		if err != nil {
			return nil, fmt.Errorf("refusing commit %s of %s: %w", c.Hash, r.remote.display, err)
		}
		snap.Signer = signer
	}
	// The FS reads through its own storage: go-git's storage is not safe
	// for concurrent use, and a later fetch only adds packs (by rename) and
	// deletes merged ones compactGrace after the merge, so this one stays
	// consistent.
	st := r.storage(16 * cache.MiByte)
	commit, err := object.GetCommit(st, c.Hash)
	var tree *object.Tree
	if err == nil {
		tree, err = commit.Tree()
	}
	if err != nil {
		_ = st.Close()
		r.corrupt = fmt.Errorf("%w: read commit %s: %v", ErrCorrupt, c.Hash, err)
		return nil, r.corrupt
	}
	ok := false
	defer func() {
		if !ok {
			_ = st.Close()
		}
	}()
	if r.cfg.Path != "" {
		e, err := tree.FindEntry(r.cfg.Path)
		if err != nil || e.Mode != filemode.Dir {
			return nil, fmt.Errorf("%w: %q is not a directory at commit %s of %s", ErrPathNotFound, r.cfg.Path, c.Hash, r.remote.display)
		}
		if tree, err = object.GetTree(st, e.Hash); err != nil {
			r.corrupt = fmt.Errorf("%w: read tree %s: %v", ErrCorrupt, e.Hash, err)
			return nil, r.corrupt
		}
	}
	tfs := &treeFS{s: st, root: tree, modTime: c.Committer.When}
	if snap.Skipped, err = tfs.skipped(ctx); err != nil {
		return nil, fmt.Errorf("commit %s: %w", c.Hash, err)
	}
	snap.FS = tfs
	snap.closer = tfs
	ok = true
	r.log.Debug("snapshot", "rev", name, "commit", snap.Revision, "path", r.cfg.Path)
	return snap, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimLeft(s, "\n"), "\n")
	return strings.TrimSpace(s)
}

// treeFS is an fs.FS over a Git tree object.
type treeFS struct {
	mu     sync.Mutex // go-git storage is not safe for concurrent use
	s      *filesystem.Storage
	closed bool
	trees  map[plumbing.Hash]*object.Tree // decoded trees; they never change
	// index finds an entry of a large tree by name: a lookup in a
	// directory of thousands of files would otherwise scan it.
	index   map[*object.Tree]map[string]int
	root    *object.Tree
	modTime time.Time
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
)

// Close releases the storage's open files.
func (t *treeFS) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	return t.s.Close()
}

// skipped walks the tree for symbolic links and submodules.
func (t *treeFS) skipped(ctx context.Context) ([]Skipped, error) {
	var out []Skipped
	var walk func(tree *object.Tree, dir string) error
	walk = func(tree *object.Tree, dir string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, e := range tree.Entries {
			name := path.Join(dir, e.Name)
			switch e.Mode {
			case filemode.Dir:
				sub, err := t.tree(e.Hash)
				if err != nil {
					return fmt.Errorf("%w: read tree %s: %v", ErrCorrupt, name, err)
				}
				if err := walk(sub, name); err != nil {
					return err
				}
			case filemode.Symlink:
				target, err := t.readBlob(e.Hash, 4096)
				if err != nil {
					return fmt.Errorf("%w: read %s: %v", ErrCorrupt, name, err)
				}
				out = append(out, Skipped{Name: name, Reason: ErrSymlink, Target: string(target)})
			case filemode.Submodule:
				out = append(out, Skipped{Name: name, Reason: ErrSubmodule})
			}
		}
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := walk(t.root, ""); err != nil {
		return nil, err
	}
	return out, nil
}

// tree decodes a tree object once. The caller holds t.mu.
func (t *treeFS) tree(h plumbing.Hash) (*object.Tree, error) {
	if tree, ok := t.trees[h]; ok {
		return tree, nil
	}
	tree, err := object.GetTree(t.s, h)
	if err != nil {
		return nil, err
	}
	if t.trees == nil {
		t.trees = map[plumbing.Hash]*object.Tree{}
	}
	t.trees[h] = tree
	return tree, nil
}

func (t *treeFS) readBlob(h plumbing.Hash, limit int64) ([]byte, error) {
	b, err := object.GetBlob(t.s, h)
	if err != nil {
		return nil, err
	}
	rd, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	if limit > 0 {
		return io.ReadAll(io.LimitReader(rd, limit))
	}
	buf := bytes.NewBuffer(make([]byte, 0, b.Size))
	_, err = io.Copy(buf, rd)
	return buf.Bytes(), err
}

// node is a looked-up name: a directory (tree set) or a regular file.
type node struct {
	name  string
	tree  *object.Tree
	entry object.TreeEntry
}

// lookup finds name, refusing to pass through links and submodules.
// The caller holds t.mu.
func (t *treeFS) lookup(op, name string) (node, error) {
	if !fs.ValidPath(name) {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if t.closed {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrClosed}
	}
	if name == "." {
		return node{name: ".", tree: t.root}, nil
	}
	tree := t.root
	parts := strings.Split(name, "/")
	for i, part := range parts {
		if tree == nil {
			return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		entry := t.entry(tree, part)
		if entry == nil {
			return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		switch entry.Mode {
		case filemode.Symlink:
			return node{}, &fs.PathError{Op: op, Path: name, Err: ErrSymlink}
		case filemode.Submodule:
			return node{}, &fs.PathError{Op: op, Path: name, Err: ErrSubmodule}
		case filemode.Dir:
			sub, err := t.tree(entry.Hash)
			if err != nil {
				return node{}, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%w: %v", ErrCorrupt, err)}
			}
			tree = sub
			if i == len(parts)-1 {
				return node{name: part, tree: sub, entry: *entry}, nil
			}
		default:
			if i != len(parts)-1 {
				return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
			return node{name: part, entry: *entry}, nil
		}
	}
	return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
}

// entry finds name among the entries of tree. The caller holds t.mu.
func (t *treeFS) entry(tree *object.Tree, name string) *object.TreeEntry {
	if len(tree.Entries) <= 32 {
		for j := range tree.Entries {
			if tree.Entries[j].Name == name {
				return &tree.Entries[j]
			}
		}
		return nil
	}
	idx, ok := t.index[tree]
	if !ok {
		idx = make(map[string]int, len(tree.Entries))
		for j := range tree.Entries {
			if _, dup := idx[tree.Entries[j].Name]; !dup {
				idx[tree.Entries[j].Name] = j
			}
		}
		if t.index == nil {
			t.index = map[*object.Tree]map[string]int{}
		}
		t.index[tree] = idx
	}
	if j, ok := idx[name]; ok {
		return &tree.Entries[j]
	}
	return nil
}

func (t *treeFS) info(n node) (fileInfo, error) {
	if n.tree != nil {
		return fileInfo{name: n.name, mode: fs.ModeDir | 0o555, modTime: t.modTime}, nil
	}
	size, err := t.s.EncodedObjectSize(n.entry.Hash)
	if err != nil {
		return fileInfo{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	mode := fs.FileMode(0o444)
	if n.entry.Mode == filemode.Executable {
		mode = 0o555
	}
	return fileInfo{name: n.name, size: size, mode: mode, modTime: t.modTime}, nil
}

// Open implements fs.FS. A file's content is read into memory when opened.
func (t *treeFS) Open(name string) (fs.File, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.lookup("open", name)
	if err != nil {
		return nil, err
	}
	fi, err := t.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if n.tree != nil {
		entries, err := t.dirEntries(n.tree)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &dirFile{info: fi, entries: entries}, nil
	}
	data, err := t.readBlob(n.entry.Hash, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: %v", ErrCorrupt, err)}
	}
	return &file{info: fi, Reader: bytes.NewReader(data)}, nil
}

// ReadFile implements fs.ReadFileFS.
func (t *treeFS) ReadFile(name string) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.lookup("read", name)
	if err != nil {
		return nil, err
	}
	if n.tree != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	data, err := t.readBlob(n.entry.Hash, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w: %v", ErrCorrupt, err)}
	}
	return data, nil
}

// ReadDir implements fs.ReadDirFS. Links and submodules are left out.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if n.tree == nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	entries, err := t.dirEntries(n.tree)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return entries, nil
}

// BlobHash returns the Git blob hash of the regular file name, without
// reading it: a cache of what a file's content gives (pkg/schema's) keys
// on it.
func (t *treeFS) BlobHash(name string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.lookup("hash", name)
	if err != nil {
		return "", err
	}
	if n.tree != nil {
		return "", &fs.PathError{Op: "hash", Path: name, Err: errors.New("is a directory")}
	}
	return n.entry.Hash.String(), nil
}

// Stat implements fs.StatFS.
func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	fi, err := t.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fi, nil
}

// dirEntries lists a tree sorted by name, as fs.ReadDir requires (Git
// sorts directories as if their names ended in "/"). Sizes are looked up
// only when Info is called: walking a tree does not need them.
func (t *treeFS) dirEntries(tree *object.Tree) ([]fs.DirEntry, error) {
	out := make([]fs.DirEntry, 0, len(tree.Entries))
	for _, e := range tree.Entries {
		if e.Mode == filemode.Symlink || e.Mode == filemode.Submodule {
			continue
		}
		out = append(out, &dirEntry{t: t, entry: e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

type dirEntry struct {
	t     *treeFS
	entry object.TreeEntry
}

func (d *dirEntry) Name() string { return d.entry.Name }
func (d *dirEntry) IsDir() bool  { return d.entry.Mode == filemode.Dir }
func (d *dirEntry) Type() fs.FileMode {
	if d.IsDir() {
		return fs.ModeDir
	}
	return 0
}

func (d *dirEntry) Info() (fs.FileInfo, error) {
	n := node{name: d.entry.Name, entry: d.entry}
	if d.IsDir() {
		// The entry is enough to describe a directory.
		n.tree = &object.Tree{}
	}
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	if d.t.closed {
		return nil, &fs.PathError{Op: "stat", Path: d.entry.Name, Err: fs.ErrClosed}
	}
	return d.t.info(n)
}

func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }

type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return fi.modTime }
func (fi fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi fileInfo) Sys() any           { return nil }

type file struct {
	info fileInfo
	*bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Close() error               { return nil }

type dirFile struct {
	info    fileInfo
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return rest[:n], nil
}
