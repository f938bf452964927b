package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/status"
)

// syncState follows the fetches asked of the agent from outside (webhooks,
// 'gitorch sync', peers that were asked) and the fetch cycles of the
// source loop, so that a caller can wait for a fetch that began after it
// asked.
type syncState struct {
	mu sync.Mutex
	// requested counts the syncs asked of this node; it is gossiped, and
	// peers fetch when it changes.
	requested uint64
	// seen is each peer's counter as last heard.
	seen map[string]uint64
	// started and done count fetch cycles; lastErr is the fetch error of
	// the last one done; changed is closed, and replaced, when one ends.
	started, done uint64
	lastErr       error
	changed       chan struct{}
}

func (s *syncState) changedLocked() chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

func (s *syncState) requestedCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requested
}

// fetchStarted and fetchDone bracket each fetch of the source loop.
func (a *Agent) fetchStarted() {
	a.syncs.mu.Lock()
	a.syncs.started++
	a.syncs.mu.Unlock()
}

func (a *Agent) fetchDone(err error) {
	s := &a.syncs
	s.mu.Lock()
	s.done++
	s.lastErr = err
	close(s.changedLocked())
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// RequestSync fetches now, and has every peer fetch too: the node's
// gossiped sync counter grows (a webhook, 'gitorch sync').
func (a *Agent) RequestSync() {
	a.syncs.mu.Lock()
	a.syncs.requested++
	a.syncs.mu.Unlock()
	a.Sync()
	a.publish()
}

// heardSyncRequests fetches when a peer's sync counter changed: a webhook
// or 'gitorch sync' reached that peer. Each node still fetches and
// validates for itself.
func (a *Agent) heardSyncRequests() {
	if a.cfg.Cluster == nil {
		return
	}
	states := a.cfg.Cluster.States()
	fetch := false
	a.syncs.mu.Lock()
	if a.syncs.seen == nil {
		a.syncs.seen = map[string]uint64{}
	}
	for name, st := range states {
		if name == a.cfg.Node.Name || st.SyncRequested == a.syncs.seen[name] {
			continue
		}
		// A counter that went back to zero is a restarted peer, not a
		// request.
		a.syncs.seen[name] = st.SyncRequested
		fetch = fetch || st.SyncRequested != 0
	}
	a.syncs.mu.Unlock()
	if fetch {
		a.Sync()
	}
}

// SyncResult is what a fetch asked for resulted in (POST /v1/sync).
type SyncResult struct {
	Node string `json:"node"`
	// Commit is the commit the ref names after the fetch; State says
	// whether this node runs it ("running") or refused it ("refused"),
	// Revision is its details (errors of a refusal among them).
	Commit   string           `json:"commit"`
	State    string           `json:"state"`
	Revision *status.Revision `json:"revision"`
}

// Sync states.
const (
	SyncRunning = "running"
	SyncRefused = "refused"
)

// SyncNow fetches now (peers too) and waits for the fetch to end, then
// says which revision results: running or refused. The fetch waited for
// is one that began after the call, so it sees what was pushed before.
// An error is a fetch that failed or ctx ending.
func (a *Agent) SyncNow(ctx context.Context) (SyncResult, error) {
	s := &a.syncs
	s.mu.Lock()
	target := s.started + 1
	s.mu.Unlock()
	a.RequestSync()
	var fetchErr error
	for {
		s.mu.Lock()
		done, ch := s.done, s.changedLocked()
		fetchErr = s.lastErr
		s.mu.Unlock()
		if done >= target {
			break
		}
		select {
		case <-ctx.Done():
			return SyncResult{}, fmt.Errorf("waiting for the fetch: %w", ctx.Err())
		case <-ch:
		}
	}
	if fetchErr != nil {
		return SyncResult{}, fmt.Errorf("fetch %s: %w", a.cfg.Source.URL(), fetchErr)
	}
	commit, err := a.cfg.Source.Resolve("")
	if err != nil {
		return SyncResult{}, err
	}
	res := SyncResult{Node: a.cfg.Node.Name, Commit: commit}
	a.mu.Lock()
	switch {
	case a.running != nil && a.running.Commit == commit:
		r := *a.running
		res.State, res.Revision = SyncRunning, &r
	case a.refused != nil && a.refused.Commit == commit:
		r := *a.refused
		res.State, res.Revision = SyncRefused, &r
	}
	a.mu.Unlock()
	if res.State == "" {
		return res, fmt.Errorf("revision %s was fetched but not loaded; see the agent's log", gitrev.Short(commit))
	}
	return res, nil
}

// postSync serves POST /v1/sync[?timeout=2m].
func (s *api) postSync(w http.ResponseWriter, r *http.Request) {
	if s.opts.Sync == nil {
		apiError(w, http.StatusNotFound, errors.New("this node does not sync on request"))
		return
	}
	timeout := 2 * time.Minute
	if t := r.URL.Query().Get("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			apiError(w, http.StatusBadRequest, fmt.Errorf("timeout %q: want a positive duration such as 2m", t))
			return
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	res, err := s.opts.Sync(ctx)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			code = http.StatusGatewayTimeout
		}
		apiError(w, code, err)
		return
	}
	writeJSON(w, res)
}

// isHookPath reports whether p is a webhook's path, which the API token
// does not guard (the receiver checks the hook's own secret; without one
// the path is a 404). Only a clean path of one more element qualifies, so
// that no other endpoint is reached through it.
func isHookPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/v1/hooks/")
	return ok && rest != "" && !strings.ContainsAny(rest, "/\\") && rest != "." && rest != ".."
}
