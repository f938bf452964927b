package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/clock/clocktest"
)

type fixture struct {
	rc       *Receiver
	mux      *http.ServeMux
	triggers atomic.Int64
	last     atomic.Pointer[Event]
}

func newFixture(t testing.TB, cfg Config) *fixture {
	f := &fixture{}
	if cfg.Secret == nil {
		cfg.Secret = []byte(ghSecret)
	}
	if cfg.Ref == "" {
		cfg.Ref = "main"
	}
	cfg.Trigger = func(ev Event) {
		f.triggers.Add(1)
		f.last.Store(&ev)
	}
	rc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.rc = rc
	f.mux = http.NewServeMux()
	f.mux.Handle("/v1/hooks/{provider}", rc)
	return f
}

// post sends a delivery through the mux and returns the status and the
// result the receiver names.
func (f *fixture) post(p Provider, h http.Header, body []byte) (int, Result) {
	r := httptest.NewRequest(http.MethodPost, "/v1/hooks/"+string(p), bytes.NewReader(body))
	r.RemoteAddr = "127.0.0.1:40000"
	for k, v := range h {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	var out struct {
		Result Result `json:"result"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out.Result
}

func signed(p Provider, secret string, body []byte, kv ...string) http.Header {
	h := hdr(kv...)
	switch p {
	case GitHub:
		h.Set("X-Hub-Signature-256", "sha256="+Sign([]byte(secret), body))
	case Generic:
		h.Set("X-Signature-256", "sha256="+Sign([]byte(secret), body))
	case Gitea:
		h.Set("X-Gitea-Signature", Sign([]byte(secret), body))
	case GitLab:
		h.Set("X-Gitlab-Token", secret)
	}
	return h
}

var pushMain = []byte(`{"ref":"refs/heads/main","after":"0123","repository":{"default_branch":"main"}}`)

func TestReceiverNeedsASecret(t *testing.T) {
	if _, err := New(Config{Trigger: func(Event) {}}); err == nil {
		t.Fatal("a receiver without a secret was made")
	}
}

func TestReceiverAnswers(t *testing.T) {
	f := newFixture(t, Config{})
	for i, tc := range []struct {
		name    string
		p       Provider
		h       http.Header
		body    []byte
		code    int
		result  Result
		fetches int64
	}{
		{"a GitHub ping", GitHub, signed(GitHub, ghSecret, []byte(`{}`), "X-GitHub-Event", "ping"), []byte(`{}`), 200, ResultPong, 0},
		{"a GitHub push to main", GitHub, signed(GitHub, ghSecret, pushMain, "X-GitHub-Event", "push"), pushMain, 200, ResultFetch, 1},
		{"a GitHub push elsewhere", GitHub, signed(GitHub, ghSecret, []byte(`{"ref":"refs/heads/dev"}`), "X-GitHub-Event", "push"), []byte(`{"ref":"refs/heads/dev"}`), 202, ResultIgnored, 1},
		{"a GitHub star", GitHub, signed(GitHub, ghSecret, []byte(`{}`), "X-GitHub-Event", "star"), []byte(`{}`), 202, ResultIgnored, 1},
		{"a push without a signature", GitHub, hdr("X-GitHub-Event", "push"), pushMain, 401, ResultUnauthorized, 1},
		{"a push signed with another secret", GitHub, signed(GitHub, "guess", pushMain, "X-GitHub-Event", "push"), pushMain, 401, ResultUnauthorized, 1},
		{"a GitHub delivery sent to the GitLab path", GitLab, signed(GitHub, ghSecret, pushMain, "X-Gitlab-Event", "Push Hook"), pushMain, 401, ResultUnauthorized, 1},
		{"a GitLab push", GitLab, signed(GitLab, ghSecret, pushMain, "X-Gitlab-Event", "Push Hook"), pushMain, 200, ResultFetch, 2},
		{"a Gitea push", Gitea, signed(Gitea, ghSecret, pushMain, "X-Gitea-Event", "push"), pushMain, 200, ResultFetch, 3},
		{"a generic hook", Generic, signed(Generic, ghSecret, nil), nil, 200, ResultFetch, 4},
		{"a signed push that is not JSON", GitHub, signed(GitHub, ghSecret, []byte("{"), "X-GitHub-Event", "push"), []byte("{"), 400, ResultBadRequest, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.h.Set("X-Delivery-ID", strconv.Itoa(i))
			code, res := f.post(tc.p, tc.h, tc.body)
			if code != tc.code || res != tc.result {
				t.Errorf("answer %d %s, want %d %s", code, res, tc.code, tc.result)
			}
			if got := f.triggers.Load(); got != tc.fetches {
				t.Errorf("%d fetches triggered, want %d", got, tc.fetches)
			}
		})
	}
	if ev := f.last.Load(); ev == nil || ev.Provider != Generic {
		t.Errorf("last event %+v, want the generic one", ev)
	}
	r := httptest.NewRequest(http.MethodGet, "/v1/hooks/github", nil)
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", w.Code)
	}
	if code, _ := f.post("bitbucket", signed(GitHub, ghSecret, pushMain), pushMain); code != 404 {
		t.Errorf("an unknown provider: %d, want 404", code)
	}
}

func TestReceiverRefusesReplays(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		p  Provider
		id string
		kv []string
	}{
		{GitHub, "X-GitHub-Delivery", []string{"X-GitHub-Event", "push"}},
		{GitLab, "X-Gitlab-Event-UUID", []string{"X-Gitlab-Event", "Push Hook"}},
		{Gitea, "X-Gitea-Delivery", []string{"X-Gitea-Event", "push"}},
		{Generic, "X-Delivery-ID", nil},
	} {
		before := f.triggers.Load()
		h := signed(tc.p, ghSecret, pushMain, tc.kv...)
		h.Set(tc.id, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		for range 3 {
			f.post(tc.p, h, pushMain)
		}
		if code, res := f.post(tc.p, h, pushMain); code != 200 || res != ResultDuplicate {
			t.Errorf("%s replay: %d %s, want 200 duplicate", tc.p, code, res)
		}
		if got := f.triggers.Load() - before; got != 1 {
			t.Errorf("%s: one delivery sent 4 times triggered %d fetches, want 1", tc.p, got)
		}
	}
	// An unsigned request does not burn a real delivery's ID.
	h := hdr("X-GitHub-Event", "push", "X-GitHub-Delivery", "future")
	f.post(GitHub, h, pushMain)
	h = signed(GitHub, ghSecret, pushMain, "X-GitHub-Event", "push", "X-GitHub-Delivery", "future")
	if _, res := f.post(GitHub, h, pushMain); res != ResultFetch {
		t.Errorf("a real delivery after a forged one with its ID: %s, want fetch", res)
	}
}

func TestReceiverRateLimitsPerSource(t *testing.T) {
	clk := clocktest.New(time.Unix(1e9, 0))
	f := newFixture(t, Config{Rate: 1, Burst: 3, Clock: clk})
	send := func(from string) int {
		r := httptest.NewRequest(http.MethodPost, "/v1/hooks/generic", nil)
		r.RemoteAddr = from
		r.Header = signed(Generic, ghSecret, nil)
		w := httptest.NewRecorder()
		f.mux.ServeHTTP(w, r)
		return w.Code
	}
	for i := range 3 {
		if code := send("192.0.2.1:1000"); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if code := send("192.0.2.1:1001"); code != http.StatusTooManyRequests {
		t.Fatalf("4th request at once: %d, want 429", code)
	}
	if code := send("192.0.2.2:1000"); code != 200 {
		t.Fatalf("another source: %d, want 200", code)
	}
	clk.Advance(time.Second)
	if code := send("192.0.2.1:1000"); code != 200 {
		t.Fatalf("a second later: %d, want 200", code)
	}
	if c := f.rc.Counts(); c[ResultRateLimited] != 1 || c[ResultFetch] != 5 {
		t.Fatalf("counts %v", c)
	}
}

// countingReader is an endless body that counts what was read of it.
type countingReader struct{ n atomic.Int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	c.n.Add(int64(len(p)))
	return len(p), nil
}

func TestReceiverCapsTheBody(t *testing.T) {
	f := newFixture(t, Config{MaxBody: 1 << 10})
	// Declared too large: refused before a byte is read.
	body := &countingReader{}
	r := httptest.NewRequest(http.MethodPost, "/v1/hooks/github", io.LimitReader(body, 100<<20))
	r.ContentLength = 100 << 20
	r.Header = signed(GitHub, ghSecret, nil, "X-GitHub-Event", "push")
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || body.n.Load() != 0 {
		t.Fatalf("declared 100 MiB: %d after reading %d bytes, want 413 after none", w.Code, body.n.Load())
	}
	// Undeclared (chunked): read up to the cap and one byte more.
	body = &countingReader{}
	r = httptest.NewRequest(http.MethodPost, "/v1/hooks/github", body)
	r.ContentLength = -1
	r.Header = signed(GitHub, ghSecret, nil, "X-GitHub-Event", "push")
	w = httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || body.n.Load() > 1<<10+512 {
		t.Fatalf("endless body: %d after reading %d bytes, want 413 after at most the cap", w.Code, body.n.Load())
	}
	// At the cap exactly: accepted.
	exact := bytes.Repeat([]byte(" "), 1<<10)
	if code, res := f.post(Generic, signed(Generic, ghSecret, exact), exact); code != 200 || res != ResultFetch {
		t.Fatalf("a body of exactly the cap: %d %s", code, res)
	}
	if f.triggers.Load() != 1 {
		t.Fatalf("%d fetches, want only the one of the body within the cap", f.triggers.Load())
	}
}

// TestReceiverRefusesAHugeStream sends 100 MiB over a real connection, as
// CVE-2024-40634's attacker did, and checks that it is refused with 413
// and that the server allocated far less than the body (the figures are
// logged).
func TestReceiverRefusesAHugeStream(t *testing.T) {
	f := newFixture(t, Config{})
	srv := httptest.NewServer(f.mux)
	defer srv.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rss0 := rssKiB(t)
	body := &countingReader{}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/hooks/github", io.LimitReader(body, 100<<20))
	req.Header = signed(GitHub, ghSecret, nil, "X-GitHub-Event", "push")
	resp, err := srv.Client().Do(req)
	if err != nil {
		// The server may close before the client is done writing.
		if !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
			t.Fatal(err)
		}
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("100 MiB body: %s, want 413", resp.Status)
		}
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("100 MiB body: %d MiB sent before the server closed, %d KiB allocated, RSS %+d KiB", body.n.Load()>>20, alloc>>10, rssKiB(t)-rss0)
	if alloc > 16<<20 {
		t.Fatalf("refusing the body allocated %d MiB", alloc>>20)
	}
	if f.triggers.Load() != 0 {
		t.Fatal("a refused body triggered a fetch")
	}
}

func rssKiB(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var n int
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &n)
			return n
		}
	}
	return 0
}
