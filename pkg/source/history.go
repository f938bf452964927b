package source

import (
	"context"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// IsAncestor reports whether revision a is an ancestor of revision b, or
// the same commit: whether moving from a to b is a fast-forward. Both are
// resolved as by Resolve.
func (r *Repo) IsAncestor(a, b string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ca, err := r.resolve(a)
	if err != nil {
		return false, err
	}
	cb, err := r.resolve(b)
	if err != nil {
		return false, err
	}
	ok, err := ca.IsAncestor(cb)
	if err != nil {
		return false, fmt.Errorf("is %s an ancestor of %s: %w", a, b, err)
	}
	return ok, nil
}

// Commit describes one commit of the history.
type Commit struct {
	Revision string // full SHA
	Author   string // "Name <email>"
	Time     time.Time
	Subject  string
}

// CommitsTouching lists the commits reachable from revision to but not from
// revision from (empty from: the whole history of to) that changed anything
// under dir (empty: anywhere), newest first. Like git log -- dir, a merge
// is listed only when dir differs from every one of its parents.
func (r *Repo) CommitsTouching(ctx context.Context, from, to, dir string) ([]Commit, error) {
	dir, err := CleanPath(dir)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cto, err := r.resolve(to)
	if err != nil {
		return nil, err
	}
	hidden := map[plumbing.Hash]bool{}
	if from != "" {
		cfrom, err := r.resolve(from)
		if err != nil {
			return nil, err
		}
		err = object.NewCommitPreorderIter(cfrom, nil, nil).ForEach(func(c *object.Commit) error {
			hidden[c.Hash] = true
			return ctx.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", from, err)
		}
	}
	dirHash := map[plumbing.Hash]plumbing.Hash{}
	hashAt := func(c *object.Commit) (plumbing.Hash, error) {
		if h, ok := dirHash[c.Hash]; ok {
			return h, nil
		}
		tree, err := c.Tree()
		if err != nil {
			return plumbing.ZeroHash, err
		}
		h := tree.Hash
		if dir != "" {
			h = plumbing.ZeroHash
			if e, err := tree.FindEntry(dir); err == nil {
				h = e.Hash
			}
		}
		dirHash[c.Hash] = h
		return h, nil
	}
	var out []Commit
	iter := object.NewCommitIterCTime(cto, hidden, nil)
	err = iter.ForEach(func(c *object.Commit) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := hashAt(c)
		if err != nil {
			return err
		}
		touched := h != plumbing.ZeroHash || dir == ""
		if err := c.Parents().ForEach(func(p *object.Commit) error {
			ph, err := hashAt(p)
			if err != nil {
				return err
			}
			if ph == h {
				touched = false
				return storer.ErrStop
			}
			return nil
		}); err != nil {
			return err
		}
		if touched {
			out = append(out, Commit{
				Revision: c.Hash.String(),
				Author:   c.Author.String(),
				Time:     c.Committer.When,
				Subject:  firstLine(c.Message),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history %s..%s: %w", from, to, err)
	}
	return out, nil
}
