package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/backoff"
)

// received is what a test receiver got.
type received struct {
	mu     sync.Mutex
	bodies [][]byte
	sigs   []string
}

func (r *received) add(body []byte, sig string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, body)
	r.sigs = append(r.sigs, sig)
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func run(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("notifier did not stop")
		}
	})
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSignedJSONBody(t *testing.T) {
	var got received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.add(b, r.Header.Get(SignatureHeader))
	}))
	defer srv.Close()
	secret := []byte("It's a Secret to Everybody")
	n := run(t, Config{URLs: []string{srv.URL}, Secret: secret})
	n.Notify(Message{Kind: RevisionRefused, Node: "n1", Revision: "abc", Text: "revision abc refused", Errors: []string{"a.yaml:1:1: bad"}})
	waitFor(t, "a delivery", func() bool { return got.count() == 1 })
	if want := Sign(secret, got.bodies[0]); got.sigs[0] != want {
		t.Fatalf("signature %q, want %q", got.sigs[0], want)
	}
	var m Message
	if err := json.Unmarshal(got.bodies[0], &m); err != nil || m.Kind != RevisionRefused || len(m.Errors) != 1 {
		t.Fatalf("body %s (%v): want the message as JSON", got.bodies[0], err)
	}
}

func TestSignMatchesGitHubsVector(t *testing.T) {
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := Sign([]byte("It's a Secret to Everybody"), []byte("Hello, World!")); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestRetriesAfterServerErrors(t *testing.T) {
	var calls atomic.Int32
	var got received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusInternalServerError)
			return
		}
		got.add(b, "")
	}))
	defer srv.Close()
	n := run(t, Config{URLs: []string{srv.URL}, Backoff: backoff.Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
	n.Notify(Message{Kind: RevisionApplied, Text: "applied"})
	waitFor(t, "a delivery after two 500s", func() bool { return got.count() == 1 })
	if c := calls.Load(); c != 3 || n.Sent() != 1 {
		t.Fatalf("%d calls, %d sent: want 3 calls and 1 sent", c, n.Sent())
	}
}

func TestGivesUpOnAClientError(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	n := run(t, Config{URLs: []string{srv.URL}, Backoff: backoff.Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
	n.Notify(Message{Kind: RevisionApplied})
	waitFor(t, "the delivery to fail", func() bool { return n.Failed() == 1 })
	if c := calls.Load(); c != 1 {
		t.Fatalf("%d calls: a 403 is not retried", c)
	}
}

func TestAHungReceiverBlocksNothing(t *testing.T) {
	release := make(chan struct{})
	var hung received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.add(nil, "")
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	var fine received
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fine.add(b, "")
	}))
	defer ok.Close()
	n := run(t, Config{URLs: []string{srv.URL, ok.URL}, QueueSize: 10, Timeout: time.Hour})
	n.Notify(Message{Text: "first"})
	waitFor(t, "the hung receiver to be called", func() bool { return hung.count() == 1 })
	for range 100 {
		n.Notify(Message{Text: "more"})
	}
	// The hung receiver's queue holds 10 of the 100: at least 90 are
	// dropped (the other receiver's queue may lose some of the burst
	// too), and the other receiver still gets what comes next.
	if d := n.Dropped(); d < 90 {
		t.Fatalf("dropped %d, want at least 90", d)
	}
	n.Notify(Message{Text: "last"})
	waitFor(t, "the other receiver to get the last message", func() bool {
		fine.mu.Lock()
		defer fine.mu.Unlock()
		return len(fine.bodies) > 0 && strings.Contains(string(fine.bodies[len(fine.bodies)-1]), `"last"`)
	})
}

func TestSlackBody(t *testing.T) {
	n, err := New(Config{Format: FormatSlack})
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Body(Message{Node: "n1", Text: "revision 1a2b3c4 refused", Errors: []string{"web.yaml:3:5: Deployment/default/web: spec.replicas: want a number"}})
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	text, _ := body["text"].(string)
	if len(body) != 1 || !strings.HasPrefix(text, "[gitorch n1] revision 1a2b3c4 refused\n") || !strings.Contains(text, "spec.replicas") {
		t.Fatalf("slack body %s: want {\"text\": ...} with the node, the text and the errors", b)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Format: "xml"}, {URLs: []string{"ftp://x"}}, {URLs: []string{"http://"}}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
