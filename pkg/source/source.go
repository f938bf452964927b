package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Config says which repository, revision and directory to read, and how.
type Config struct {
	// URL is the remote: a local path, file://, git://, http(s)://,
	// ssh://user@host/path or user@host:path.
	URL string
	// Ref is the default revision for Resolve and Snapshot, written as Git
	// users write revisions (see Resolve). Empty means the remote's HEAD
	// (its default branch).
	Ref string
	// Path is the directory inside the repository that snapshots are rooted
	// at. Empty means the repository root. It may not be absolute or
	// contain "..".
	Path string
	// Auth holds credentials and host trust.
	Auth Auth
	// Verify, when set, refuses to snapshot a commit that is not signed by
	// one of its keys.
	Verify *Keyring
}

// Repo is the local cache of one remote. Its methods are safe for
// concurrent use; snapshots stay readable while a fetch runs.
type Repo struct {
	cfg    Config
	remote remote
	auth   transport.AuthMethod
	dir    string
	log    *slog.Logger

	mu      sync.Mutex
	st      *filesystem.Storage // nil after Close
	repo    *git.Repository
	corrupt error                       // set when a read found the cache damaged
	merged  map[plumbing.Hash]time.Time // packs merged into another, and when
	reclone []string                    // why the cache was re-cloned, oldest first
}

const (
	remoteName = "origin"
	originHead = plumbing.ReferenceName("refs/remotes/origin/HEAD")
)

// Refs the cache keeps: every branch (forced, so a force push is followed
// and deleted branches are pruned), every tag, and the remote's HEAD.
var fetchSpecs = []config.RefSpec{
	"+refs/heads/*:refs/remotes/origin/*",
	"+refs/tags/*:refs/tags/*",
	"+HEAD:refs/remotes/origin/HEAD",
}

// Open prepares the cache for cfg.URL under dataDir (one directory per
// remote, named by a hash of the URL) and checks the cache it finds there;
// a damaged cache is removed and started afresh, and the reason is logged
// and listed by Reclones. Open does not contact the remote: call Fetch.
// A nil log discards messages.
func Open(dataDir string, cfg Config, log *slog.Logger) (*Repo, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if dataDir == "" {
		return nil, errors.New("no data directory")
	}
	p, err := CleanPath(cfg.Path)
	if err != nil {
		return nil, err
	}
	cfg.Path = p
	rem, err := parseRemote(cfg.URL, &cfg.Auth)
	if err != nil {
		return nil, err
	}
	cfg.URL = rem.url
	auth, err := authMethod(rem, cfg.Auth)
	if err != nil {
		return nil, scrub(fmt.Errorf("%s: %w", rem.display, err), cfg.Auth.secrets())
	}
	sum := sha256.Sum256([]byte(rem.url))
	root, err := filepath.Abs(filepath.Join(dataDir, "git"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	r := &Repo{
		cfg:    cfg,
		remote: rem,
		auth:   auth,
		dir:    filepath.Join(root, hex.EncodeToString(sum[:12])),
		log:    log.With("repo", rem.display),
	}
	unlock, err := r.lockDir(context.Background())
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := r.openCache(); err != nil {
		return nil, err
	}
	return r, nil
}

// Dir is the cache directory of this remote.
func (r *Repo) Dir() string { return r.dir }

// URL is the remote's URL without credentials, for messages.
func (r *Repo) URL() string { return r.remote.display }

// Reclones lists why the cache was found damaged and re-cloned since Open,
// oldest first.
func (r *Repo) Reclones() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reclone...)
}

// storage opens the cache's object store. Keeping a few pack files open
// saves an open and close per object read; BoundOS keeps every path inside
// the cache directory.
func (r *Repo) storage(cacheSize cache.FileSize) *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(r.dir, osfs.WithBoundOS()), cache.NewObjectLRU(cacheSize),
		filesystem.Options{MaxOpenDescriptors: 16})
}

// Close releases the cache's open files. Snapshots stay readable.
func (r *Repo) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st == nil {
		return nil
	}
	err := r.st.Close()
	r.st, r.repo = nil, nil
	return err
}

// closeStorage releases the open files of the current store, if any.
func (r *Repo) closeStorage() {
	if r.st != nil {
		_ = r.st.Close()
		r.st, r.repo = nil, nil
	}
}

// openCache opens the existing cache, checks it, and starts a fresh one
// when there is none or it is damaged.
func (r *Repo) openCache() error {
	if _, err := os.Stat(filepath.Join(r.dir, "HEAD")); err == nil {
		st := r.storage(cache.DefaultMaxSize)
		repo, err := git.Open(st, nil)
		if err == nil {
			err = checkRefs(repo)
		}
		if err == nil {
			r.st, r.repo = st, repo
			return nil
		}
		_ = st.Close()
		r.noteReclone(err)
	}
	return r.initCache()
}

func (r *Repo) noteReclone(reason error) {
	msg := reason.Error()
	r.reclone = append(r.reclone, msg)
	r.log.Warn("git cache is damaged; removing it and cloning again", "dir", r.dir, "reason", msg)
}

// initCache replaces whatever is at r.dir with an empty bare repository
// whose origin is the remote.
func (r *Repo) initCache() error {
	r.closeStorage()
	if err := removeAside(r.dir); err != nil {
		return fmt.Errorf("remove damaged cache: %w", err)
	}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return err
	}
	st := r.storage(cache.DefaultMaxSize)
	repo, err := git.Init(st, nil)
	if err != nil {
		_ = st.Close()
		return fmt.Errorf("create cache %s: %w", r.dir, err)
	}
	r.st = st
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: remoteName, URLs: []string{r.remote.url}, Fetch: fetchSpecs}); err != nil {
		return fmt.Errorf("create cache %s: %w", r.dir, err)
	}
	r.repo = repo
	r.corrupt = nil
	r.merged = nil
	return nil
}

// removeAside renames dir out of the way before deleting it, so that a
// crash half-way never leaves something that looks like a repository.
func removeAside(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	trash := fmt.Sprintf("%s.removing-%d", dir, time.Now().UnixNano())
	if err := os.Rename(dir, trash); err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

// checkRefs reads every ref's commit and root tree: a missing or damaged
// pack, loose object or ref shows up here.
func checkRefs(repo *git.Repository) error {
	refs, err := repo.References()
	if err != nil {
		return fmt.Errorf("%w: list refs: %v", ErrCorrupt, err)
	}
	defer refs.Close()
	var bad error
	_ = refs.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference {
			return nil
		}
		c, err := commitOf(repo, ref.Hash())
		if err == nil {
			_, err = c.Tree()
		}
		if err != nil {
			bad = fmt.Errorf("%w: %s (%s): %v", ErrCorrupt, ref.Name(), ref.Hash(), err)
			return err
		}
		return nil
	})
	return bad
}

// commitOf peels tags down to the commit they name.
func commitOf(repo *git.Repository, h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		obj, err := repo.Object(plumbing.AnyObject, h)
		if err != nil {
			return nil, err
		}
		switch o := obj.(type) {
		case *object.Commit:
			return o, nil
		case *object.Tag:
			h = o.Target
		default:
			return nil, fmt.Errorf("%s is a %s, not a commit", h, obj.Type())
		}
	}
	return nil, fmt.Errorf("%s: tag chain too long", h)
}

// lockDir takes an exclusive lock on the cache, shared with other gitorch
// processes using the same data directory, until unlock is called.
func (r *Repo) lockDir(ctx context.Context) (unlock func(), err error) {
	f, err := os.OpenFile(r.dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock cache: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock cache: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock cache %s: %w", r.dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Fetch brings the cache up to date with the remote: the first call clones,
// later ones fetch only what is new. Branches follow force pushes. When
// the remote cannot be reached the error wraps ErrUnreachable and the
// cache keeps what it had, so earlier revisions stay readable. A cache
// found damaged is re-cloned (see Reclones).
func (r *Repo) Fetch(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.repo == nil {
		return errClosed
	}
	unlock, err := r.lockDir(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if r.corrupt != nil {
		r.noteReclone(r.corrupt)
		if err := r.initCache(); err != nil {
			return err
		}
	}
	err = r.fetch(ctx)
	if err == nil {
		if cerr := r.compact(time.Now()); cerr != nil {
			// The fetch itself succeeded; reads are only slower.
			r.log.Warn("could not merge the cache's packs", "err", cerr)
		}
		return nil
	}
	if IsRetryable(err) || errors.Is(err, ErrAuth) || errors.Is(err, ErrHostKey) || errors.Is(err, ErrTLS) || errors.Is(err, ErrRepoNotFound) || ctx.Err() != nil {
		return err
	}
	// Not the remote's fault: the cache may be damaged.
	if cerr := checkRefs(r.repo); cerr == nil {
		return err
	} else {
		r.noteReclone(cerr)
	}
	if ierr := r.initCache(); ierr != nil {
		return ierr
	}
	return r.fetch(ctx)
}

func (r *Repo) fetch(ctx context.Context) error {
	start := time.Now()
	opts := &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   fetchSpecs,
		Auth:       r.auth,
		Tags:       git.NoTags, // tags come from the refspec
		Force:      true,
		Prune:      true,
		CABundle:   r.cfg.Auth.CABundle,
	}
	err := r.repo.FetchContext(ctx, opts)
	var noHead git.NoMatchingRefSpecError
	if errors.As(err, &noHead) {
		// The remote's HEAD names a branch that does not exist: fetch the
		// branches and tags, and forget the default branch.
		opts.RefSpecs = fetchSpecs[:2]
		err = r.repo.FetchContext(ctx, opts)
		if rerr := r.repo.Storer.RemoveReference(originHead); rerr != nil && err == nil {
			err = rerr
		}
	}
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err != nil {
		return r.errorf(classifyRemote(err), "fetch %s", r.remote.display)
	}
	r.log.Debug("fetched", "took", time.Since(start))
	return nil
}

// errorf wraps err with context and hides credentials.
func (r *Repo) errorf(err error, format string, args ...any) error {
	return scrub(fmt.Errorf(format+": %w", append(args, err)...), r.cfg.Auth.secrets())
}

// CleanPath checks a repository subdirectory given by the user and returns
// it in canonical form ("" for the root). Absolute paths and paths that
// leave the repository are refused with ErrInvalidPath.
func CleanPath(p string) (string, error) {
	if p == "" || p == "." || p == "/" {
		return "", nil
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return "", fmt.Errorf("%w: %q: give a directory relative to the repository root", ErrInvalidPath, p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q leaves the repository", ErrInvalidPath, p)
		}
	}
	c := path.Clean(p)
	if c == "." {
		return "", nil
	}
	if c == ".git" || strings.HasPrefix(c, ".git/") {
		return "", fmt.Errorf("%w: %q is inside .git", ErrInvalidPath, p)
	}
	return c, nil
}
