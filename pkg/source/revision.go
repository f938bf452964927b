package source

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Resolve turns rev into a full commit SHA. rev is written as Git users
// write revisions (gitrevisions(7)): a name — a branch, origin/BRANCH, a
// tag (annotated tags are peeled), refs/heads/X, refs/tags/X,
// refs/remotes/origin/X, HEAD or @ (the remote's HEAD, its default
// branch), a full commit SHA or an abbreviated one of at least 4
// characters that names one commit of the cache — followed by any of ~N,
// ^N (N at most 2), ^{}, ^{commit} and ^{/REGEXP} (the newest commit
// reachable whose message matches). Empty rev means Config.Ref, and empty
// Ref the remote's HEAD. A name that is both a branch and a tag, or an
// abbreviated SHA that matches several commits, is refused as ambiguous.
// A revision that names nothing wraps ErrRefNotFound and says what was
// not found.
func (r *Repo) Resolve(rev string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.resolve(rev)
	if err != nil {
		return "", err
	}
	return c.Hash.String(), nil
}

// errClosed is returned by a Repo's methods after Close.
var errClosed = errors.New("source: repository cache is closed")

func (r *Repo) resolve(rev string) (*object.Commit, error) {
	if r.repo == nil {
		return nil, errClosed
	}
	if rev == "" {
		rev = r.cfg.Ref
	}
	shown := rev
	if shown == "" {
		shown = "HEAD"
	}
	name, suffix := splitRevision(rev)
	if err := checkSuffix(suffix); err != nil {
		return nil, &revisionError{rev: shown, msg: err.Error()}
	}
	c, err := r.resolveName(shown, name)
	if err != nil || suffix == "" {
		return c, err
	}
	// With the name resolved to a SHA, go-git walks the rest as Git does.
	h, err := r.repo.ResolveRevision(plumbing.Revision(c.Hash.String() + suffix))
	if err != nil {
		return nil, r.notFound(shown, r.walkHint(c, name, suffix, err))
	}
	return r.commit(*h, rev)
}

// revisionError is a revision that names no commit of the cache.
type revisionError struct{ rev, msg string }

func (e *revisionError) Error() string { return fmt.Sprintf("revision %q: %s", e.rev, e.msg) }
func (e *revisionError) Unwrap() error { return ErrRefNotFound }

func (r *Repo) notFound(rev, why string) error {
	return &revisionError{rev: rev, msg: "not found in " + r.remote.display + ": " + why}
}

// splitRevision cuts rev into the name it starts with and the suffix that
// walks from there. Git's ref names cannot contain ~, ^, : or @{
// (git-check-ref-format(1)), so the name ends at the first of them.
func splitRevision(rev string) (name, suffix string) {
	i := strings.IndexAny(rev, "~^:")
	if j := strings.Index(rev, "@{"); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	if i < 0 {
		return rev, ""
	}
	return rev[:i], rev[i:]
}

// checkSuffix accepts the suffixes that name a commit from a commit and
// that go-git's ResolveRevision walks: ~N, ^N (N ≤ 2), ^{}, ^{commit} and
// ^{/REGEXP}. It refuses the others rather than let them be ignored.
func checkSuffix(s string) error {
	for s != "" {
		switch {
		case strings.HasPrefix(s, "@{"):
			return errors.New("@{...} (reflogs, dates, upstreams) is not supported: the cache keeps no reflog; name a branch, tag or commit")
		case s[0] == ':':
			return errors.New("REV:PATH names a file, not a commit; give the directory with --path")
		case strings.HasPrefix(s, "^{"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return fmt.Errorf("%q: no closing }", s)
			}
			inner := s[2:end]
			if inner != "" && inner != "commit" && !strings.HasPrefix(inner, "/") {
				return fmt.Errorf("^{%s}: only ^{}, ^{commit} and ^{/REGEXP} name a commit", inner)
			}
			s = s[end+1:]
		case s[0] == '~' || s[0] == '^':
			n := 1
			for n < len(s) && s[n] >= '0' && s[n] <= '9' {
				n++
			}
			if s[0] == '^' && n > 1 {
				if v, err := strconv.Atoi(s[1:n]); err != nil || v > 2 {
					return fmt.Errorf("%s: only ^, ^1 and ^2 (a merge's second parent) are supported", s[:n])
				}
			}
			s = s[n:]
		default:
			return fmt.Errorf("%q: not a revision suffix (~N, ^N, ^{/REGEXP})", s)
		}
	}
	return nil
}

// walkHint explains why walking suffix from c (named name) failed.
func (r *Repo) walkHint(c *object.Commit, name, suffix string, err error) string {
	if !errors.Is(err, io.EOF) {
		return err.Error()
	}
	if name == "" || name == "@" {
		name = "HEAD"
	}
	n := 0
	for p := c; p.NumParents() > 0; n++ {
		next, err := p.Parent(0)
		if err != nil {
			break
		}
		p = next
	}
	hint := fmt.Sprintf("%s (%.12s) has %d ancestors along first parents", name, c.Hash, n)
	if n == 1 {
		hint = fmt.Sprintf("%s (%.12s) has 1 ancestor", name, c.Hash)
	}
	if strings.Contains(suffix, "^2") {
		hint += "; ^2 needs a merge commit"
	}
	return hint
}

// resolveName resolves the name revision rev starts with.
func (r *Repo) resolveName(rev, name string) (*object.Commit, error) {
	if name == "" || name == "HEAD" || name == "@" || name == "origin/HEAD" {
		ref, err := r.repo.Reference(originHead, true)
		if err != nil {
			return nil, r.notFound(rev, "it has no default branch (HEAD), or it was not fetched yet; give a branch, tag or commit"+r.available())
		}
		return r.commit(ref.Hash(), "HEAD")
	}
	if isFullSHA(name) {
		c, err := r.commit(plumbing.NewHash(name), name)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, r.notFound(rev, "commit "+name+" is in no branch or tag fetched from it")
		}
		return c, err
	}
	refs, err := r.lookupRef(name)
	if err != nil {
		return nil, err
	}
	switch len(refs) {
	case 1:
		return r.commit(refs[0].Hash(), name)
	case 0:
	default:
		return nil, &revisionError{rev: rev, msg: fmt.Sprintf("%q is both a branch and a tag of %s; say refs/heads/%s or refs/tags/%s", name, r.remote.display, name, name)}
	}
	// As git does, a name is a ref first and an abbreviated SHA second.
	if len(name) >= 4 && isHex(name) {
		commits, err := r.commitsWithPrefix(strings.ToLower(name))
		if err != nil {
			return nil, err
		}
		switch len(commits) {
		case 1:
			return commits[0], nil
		case 0:
		default:
			var shas []string
			for _, c := range commits {
				shas = append(shas, c.Hash.String()[:12])
			}
			return nil, &revisionError{rev: rev, msg: fmt.Sprintf("the abbreviated SHA %s is ambiguous in %s: commits %s start with it; give more characters", name, r.remote.display, list(shas))}
		}
	}
	return nil, r.notFound(rev, fmt.Sprintf("no branch, tag or commit is named %q%s", name, r.available()))
}

func (r *Repo) commit(h plumbing.Hash, name string) (*object.Commit, error) {
	c, err := commitOf(r.repo, h)
	if err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) && name != h.String() {
			r.corrupt = fmt.Errorf("%w: %s points to missing object %s", ErrCorrupt, name, h)
			return nil, r.corrupt
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// lookupRef finds the refs of the cache that name may stand for: the
// branch and the tag of that name, or the one ref a full ref name or
// origin/BRANCH names.
func (r *Repo) lookupRef(name string) ([]*plumbing.Reference, error) {
	var candidates []plumbing.ReferenceName
	switch {
	case strings.HasPrefix(name, "refs/heads/"):
		candidates = []plumbing.ReferenceName{plumbing.ReferenceName("refs/remotes/origin/" + strings.TrimPrefix(name, "refs/heads/"))}
	case strings.HasPrefix(name, "refs/tags/"), strings.HasPrefix(name, "refs/remotes/origin/"):
		candidates = []plumbing.ReferenceName{plumbing.ReferenceName(name)}
	default:
		candidates = []plumbing.ReferenceName{
			plumbing.ReferenceName("refs/remotes/origin/" + name),
			plumbing.ReferenceName("refs/tags/" + name),
		}
		if b, ok := strings.CutPrefix(name, remoteName+"/"); ok {
			// origin/main, as the user's clone calls the remote's main.
			candidates = append(candidates, plumbing.ReferenceName("refs/remotes/origin/"+b))
		}
	}
	var found []*plumbing.Reference
	seen := map[plumbing.ReferenceName]bool{}
	for _, n := range candidates {
		if n == originHead || seen[n] {
			continue
		}
		seen[n] = true
		ref, err := r.repo.Reference(n, true)
		if err == nil {
			found = append(found, ref)
		} else if !errors.Is(err, plumbing.ErrReferenceNotFound) {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
	}
	return found, nil
}

// commitsWithPrefix lists the commits (and tags, peeled) whose SHA starts
// with the hex digits prefix.
func (r *Repo) commitsWithPrefix(prefix string) ([]*object.Commit, error) {
	b, err := hex.DecodeString(prefix[:len(prefix)&^1])
	if err != nil {
		return nil, err
	}
	hashes, err := r.st.HashesWithPrefix(b)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", prefix, err)
	}
	var out []*object.Commit
	seen := map[plumbing.Hash]bool{}
	for _, h := range hashes {
		if !strings.HasPrefix(h.String(), prefix) {
			continue
		}
		c, err := commitOf(r.repo, h)
		if err != nil || seen[c.Hash] {
			continue // a tree or a blob
		}
		seen[c.Hash] = true
		out = append(out, c)
	}
	return out, nil
}

// available lists some branches and tags, for error messages.
func (r *Repo) available() string {
	var branches, tags []string
	refs, err := r.repo.References()
	if err != nil {
		return ""
	}
	_ = refs.ForEach(func(ref *plumbing.Reference) error {
		n := ref.Name().String()
		switch {
		case n == originHead.String():
		case strings.HasPrefix(n, "refs/remotes/origin/"):
			branches = append(branches, strings.TrimPrefix(n, "refs/remotes/origin/"))
		case strings.HasPrefix(n, "refs/tags/"):
			tags = append(tags, strings.TrimPrefix(n, "refs/tags/"))
		}
		return nil
	})
	if len(branches)+len(tags) == 0 {
		return " (nothing fetched yet)"
	}
	return " (branches: " + list(branches) + "; tags: " + list(tags) + ")"
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	sort.Strings(names)
	const max = 10
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(", and %d more", len(names)-max)
	}
	return strings.Join(names, ", ")
}

func isFullSHA(s string) bool { return len(s) == 40 && isHex(s) }

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}
