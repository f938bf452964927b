package node_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/webhook"
)

// gatedSource is a memSource that counts fetches, can fail them, and can
// hold them until the test lets them go.
type gatedSource struct {
	*memSource
	fetches atomic.Int64
	fail    atomic.Pointer[error]
	mu      sync.Mutex
	gate    chan struct{} // nil: fetches do not wait
	entered chan struct{}
}

func newGatedSource(m *memSource) *gatedSource {
	return &gatedSource{memSource: m, entered: make(chan struct{}, 100)}
}

func (s *gatedSource) Fetch(ctx context.Context) error {
	s.fetches.Add(1)
	s.entered <- struct{}{}
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := s.fail.Load(); err != nil {
		return *err
	}
	return nil
}

func (s *gatedSource) hold() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *gatedSource) release() {
	s.mu.Lock()
	close(s.gate)
	s.gate = nil
	s.mu.Unlock()
}

func (s *gatedSource) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-s.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no fetch began")
	}
}

func startGated(t *testing.T, n *fakeNode, src *gatedSource) *node.Agent {
	t.Helper()
	ag, err := node.New(node.Config{
		Node:   plan.Node{Name: "n1", Allocatable: plan.Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}},
		Source: src, Runtime: n.rt, DataDir: n.dataDir,
		PollInterval: time.Hour, Resync: time.Hour, Clock: n.clk, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ag.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ag
}

func TestSyncNowReportsTheResultingRevision(t *testing.T) {
	n := newFakeNode(t)
	src := newGatedSource(n.src)
	first := n.src.commit(web(1, "busybox:1.36"))
	ag := startGated(t, n, src)
	if _, err := ag.WaitRevision(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	// A new commit, with the poll an hour away: SyncNow runs it.
	second := n.src.commit(web(2, "busybox:1.36"))
	res, err := ag.SyncNow(t.Context())
	if err != nil || res.State != node.SyncRunning || res.Commit != second || res.Revision.Commit != second {
		t.Fatalf("SyncNow = %+v, %v; want %s running", res, err, second)
	}
	// An invalid one is refused, with its errors.
	bad := n.src.commit(map[string]string{"web.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: -1}\n"})
	res, err = ag.SyncNow(t.Context())
	if err != nil || res.State != node.SyncRefused || res.Commit != bad || len(res.Revision.Errors) == 0 {
		t.Fatalf("SyncNow = %+v, %v; want %s refused with errors", res, err, bad)
	}
	// A fetch that fails is an error.
	e := errors.New("remote hung up")
	src.fail.Store(&e)
	if _, err := ag.SyncNow(t.Context()); err == nil || !strings.Contains(err.Error(), "remote hung up") {
		t.Fatalf("SyncNow with a failing fetch: %v", err)
	}
}

// TestSyncNowWaitsForAFetchThatBeganAfterIt: a fetch running when the
// sync is asked for may have missed the push, so the sync waits for the
// next one.
func TestSyncNowWaitsForAFetchThatBeganAfterIt(t *testing.T) {
	n := newFakeNode(t)
	src := newGatedSource(n.src)
	n.src.commit(web(1, "busybox:1.36"))
	src.hold()
	ag := startGated(t, n, src)
	src.waitEntered(t) // the first fetch runs, held
	second := n.src.commit(web(2, "busybox:1.36"))
	got := make(chan node.SyncResult, 1)
	go func() {
		res, _ := ag.SyncNow(context.Background())
		got <- res
	}()
	src.release()
	res := <-got
	if res.Commit != second || src.fetches.Load() != 2 {
		t.Fatalf("SyncNow = %+v after %d fetches; want %s after 2", res, src.fetches.Load(), second)
	}
}

// TestBurstOfHooksFetchesAtMostTwice sends 50 signed hooks through the
// API while a fetch runs: they cost one more fetch, not 50.
func TestBurstOfHooksFetchesAtMostTwice(t *testing.T) {
	n := newFakeNode(t)
	src := newGatedSource(n.src)
	first := n.src.commit(web(1, "busybox:1.36"))
	ag := startGated(t, n, src)
	if _, err := ag.WaitRevision(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	src.waitEntered(t)
	secret := "s3cret"
	rc, err := webhook.New(webhook.Config{Secret: []byte(secret), Ref: "main", Burst: 100,
		Trigger: func(webhook.Event) { ag.RequestSync() }})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(node.NewAPI(ag, nil, node.APIOptions{Token: "api-token", Hooks: rc}))
	defer api.Close()
	base := src.fetches.Load()
	src.hold()
	body := `{"ref":"refs/heads/main"}`
	for i := range 50 {
		req, _ := http.NewRequest(http.MethodPost, api.URL+"/v1/hooks/github", strings.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "d"+string(rune('A'+i)))
		req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.Sign([]byte(secret), []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("hook %d: %s (the API token must not be asked of hooks)", i, resp.Status)
		}
		if i == 0 {
			src.waitEntered(t) // the first hook's fetch runs, held
		}
	}
	src.release()
	src.waitEntered(t) // the one fetch the other 49 coalesced into
	// Were the hooks queued rather than coalesced, the fetches would
	// follow at once: watch for a while that none does.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got := src.fetches.Load() - base; got > 2 {
			t.Fatalf("50 hooks caused %d fetches, want at most 2", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c := rc.Counts(); c[webhook.ResultFetch] != 50 {
		t.Fatalf("receiver counts %v, want 50 fetch results", c)
	}
}

func TestAPIGuardsTheRestWhileHooksPass(t *testing.T) {
	rc, err := webhook.New(webhook.Config{Secret: []byte("s"), Trigger: func(webhook.Event) {}})
	if err != nil {
		t.Fatal(err)
	}
	n := newFakeNode(t)
	n.src.commit(web(1, "busybox:1.36"))
	ag, _ := n.start(t)
	for _, tc := range []struct {
		hooks  http.Handler
		method string
		path   string
		want   int
	}{
		{rc, "POST", "/v1/hooks/github", http.StatusUnauthorized}, // the receiver's own 401: no signature
		{rc, "POST", "/v1/hooks/../status", http.StatusUnauthorized},
		{rc, "POST", "/v1/hooks/github/x", http.StatusUnauthorized},
		{rc, "POST", "/v1/sync", http.StatusUnauthorized},
		{nil, "POST", "/v1/hooks/github", http.StatusNotFound}, // without a secret, no hooks
		{nil, "GET", "/v1/status", http.StatusUnauthorized},
	} {
		h := node.NewAPI(ag, nil, node.APIOptions{Token: "tok", Hooks: tc.hooks})
		r := httptest.NewRequest(tc.method, "/", nil)
		r.URL.Path = tc.path
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s %s (hooks %v): %d, want %d: %s", tc.method, tc.path, tc.hooks != nil, w.Code, tc.want, w.Body)
		}
		if tc.path == "/v1/hooks/github" && tc.hooks != nil && !strings.Contains(w.Body.String(), "X-Hub-Signature-256") {
			t.Errorf("the hook's 401 came from the token check: %s", w.Body)
		}
	}
	// Without a secret and without a token, the hooks are not there either.
	h := node.NewAPI(ag, nil, node.APIOptions{})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/hooks/github", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("hooks without a secret: %d, want 404", w.Code)
	}
}

// TestHookFansOutThroughGossip: a sync asked of one node makes the others
// fetch, even when nothing changed (so no revision gossip is involved).
func TestHookFansOutThroughGossip(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(web(3, "busybox:1.36"))
	srcs := map[string]*gatedSource{}
	agents := map[string]*node.Agent{}
	for _, name := range []string{"n1", "n2", "n3"} {
		srcs[name] = newGatedSource(c.src)
		agents[name] = startOnBus(t, c, name, srcs[name])
	}
	waitFor(t, "3 pods running", func() bool { return c.total() == 3 })
	before := map[string]int64{}
	for name, s := range srcs {
		before[name] = s.fetches.Load()
	}
	agents["n1"].RequestSync()
	waitFor(t, "every node fetched", func() bool {
		for name, s := range srcs {
			if s.fetches.Load() <= before[name] {
				return false
			}
		}
		return true
	})
}

// startOnBus starts an agent of c on src (fakeCluster.start, with a
// source of the test's).
func startOnBus(t *testing.T, c *fakeCluster, name string, src node.Source) *node.Agent {
	cn := c.nodes[name]
	meta := gossip.Meta{CPUMilli: 4000, MemoryBytes: 8 << 30}
	ag, err := node.New(node.Config{
		Node:   plan.Node{Name: name, Allocatable: plan.Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110}},
		Source: src, Runtime: cn.rt, DataDir: c.dirs[name],
		PollInterval: time.Hour, Resync: time.Hour, Clock: c.clk, Logger: testLogger(t),
		Cluster: view{c.bus, name}, Meta: meta,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.bus.mu.Lock()
	c.bus.agents[name] = ag
	m := c.bus.member[name]
	m.Meta = meta
	c.bus.member[name] = m
	c.bus.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ag.Run(ctx); close(done) }()
	cn.ag = ag
	t.Cleanup(func() {
		c.bus.mu.Lock()
		delete(c.bus.agents, name)
		c.bus.mu.Unlock()
		cancel()
		<-done
	})
	return ag
}

// fanOut asks n1 for a sync and returns how long until every other node
// of nodes has fetched (their status' last fetch moved).
func fanOut(t testing.TB, nodes map[string]*gossipNode) time.Duration {
	before := map[string]time.Time{}
	for name, n := range nodes {
		before[name] = n.ag.Status().Source.LastFetch
	}
	start := time.Now()
	nodes["n1"].ag.RequestSync()
	deadline := start.Add(30 * time.Second)
	for {
		all := true
		for name, n := range nodes {
			if name != "n1" && !n.ag.Status().Source.LastFetch.After(before[name]) {
				all = false
			}
		}
		if all {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatal("the other nodes did not fetch within 30 s of a sync asked of n1")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGossipClusterSyncFansOut: over real gossip, a sync asked of one node
// (a webhook) makes the others fetch though nothing changed.
func TestGossipClusterSyncFansOut(t *testing.T) {
	key, _ := gossip.GenerateKey()
	src := newMemSource()
	src.commit(web(3, "busybox:1.36"))
	nodes := startGossipCluster(t, src, decodeKey(t, key), "n1", "n2", "n3")
	waitForLong(t, 30*time.Second, "3 pods", func() bool { r := running(nodes); return r["n1"]+r["n2"]+r["n3"] == 3 })
	// 20 rounds, for the figures in the log (no assertion on time).
	var ds []time.Duration
	for range 20 {
		ds = append(ds, fanOut(t, nodes))
	}
	slices.Sort(ds)
	t.Logf("the other two nodes fetched, after a sync asked of n1: median %v, p99 %v (20 rounds)", ds[10], ds[19])
}
