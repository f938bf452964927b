package source

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// Every fetch adds a pack to the cache, and every object lookup searches
// the packs in turn, so reading slows down as fetches accumulate. When
// there are more than compactAbove packs, Fetch merges all but the largest
// into one. The merged packs are deleted compactGrace later, so that
// snapshots taken before the merge, which read through their own list of
// packs, stay readable in the meantime.
var (
	compactAbove = 32
	compactGrace = time.Hour
)

type packInfo struct {
	hash plumbing.Hash
	size int64
}

func (r *Repo) packPath(h plumbing.Hash, ext string) string {
	return filepath.Join(r.dir, "objects", "pack", "pack-"+h.String()+"."+ext)
}

// compact merges small packs and deletes packs merged more than
// compactGrace ago. The caller holds r.mu and the directory lock.
func (r *Repo) compact(now time.Time) error {
	if r.merged == nil {
		r.merged = map[plumbing.Hash]time.Time{}
	}
	changed := false
	for h, at := range r.merged {
		if now.Sub(at) < compactGrace {
			continue
		}
		if err := r.st.DeleteOldObjectPackAndIndex(h, time.Time{}); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete merged pack %s: %w", h, err)
		}
		delete(r.merged, h)
		changed = true
	}
	packs, err := r.st.ObjectPacks()
	if err != nil {
		return err
	}
	var live []packInfo
	for _, h := range packs {
		if _, ok := r.merged[h]; ok {
			continue
		}
		fi, err := os.Stat(r.packPath(h, "pack"))
		if err != nil {
			return err
		}
		live = append(live, packInfo{h, fi.Size()})
	}
	if len(live) > compactAbove {
		sort.Slice(live, func(i, j int) bool { return live[i].size > live[j].size })
		small := live[1:]
		if err := r.mergePacks(small); err != nil {
			return err
		}
		for _, p := range small {
			r.merged[p.hash] = now
		}
		r.log.Debug("merged packs", "packs", len(small))
		changed = true
	}
	if !changed {
		return nil
	}
	// The open store still lists the packs it found when it was opened.
	r.closeStorage()
	st := r.storage(cache.DefaultMaxSize)
	repo, err := git.Open(st, nil)
	if err != nil {
		_ = st.Close()
		return err
	}
	r.st, r.repo = st, repo
	return nil
}

// mergePacks writes one pack holding every object of packs. Objects are
// read through the whole store, so deltas against objects elsewhere are
// resolved and the new pack stands on its own.
func (r *Repo) mergePacks(packs []packInfo) error {
	var hashes []plumbing.Hash
	for _, p := range packs {
		hs, err := r.packObjects(p.hash)
		if err != nil {
			return err
		}
		hashes = append(hashes, hs...)
	}
	if len(hashes) == 0 {
		return nil
	}
	w, err := r.st.PackfileWriter()
	if err != nil {
		return err
	}
	if _, err := packfile.NewEncoder(w, r.st, false).Encode(hashes, 10); err != nil {
		_ = w.Close()
		return fmt.Errorf("merge packs: %w", err)
	}
	return w.Close()
}

func (r *Repo) packObjects(h plumbing.Hash) ([]plumbing.Hash, error) {
	f, err := os.Open(r.packPath(h, "idx"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(f).Decode(idx); err != nil {
		return nil, fmt.Errorf("pack index %s: %w", h, err)
	}
	entries, err := idx.Entries()
	if err != nil {
		return nil, err
	}
	defer entries.Close()
	var out []plumbing.Hash
	for {
		e, err := entries.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e.Hash)
	}
}
