package node

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/status"
)

type staticStatus struct {
	mu sync.Mutex
	st status.Node
	// cluster is the view of the cluster; nil: the node alone.
	cluster *status.Cluster
}

func (s *staticStatus) Status() status.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

func (s *staticStatus) Cluster() status.Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cluster != nil {
		return *s.cluster
	}
	return status.SingleNode(s.st)
}

// switchLogs serves one log file per container, which the test can point
// elsewhere (a restart).
type switchLogs struct {
	mu   sync.Mutex
	path string
}

func (l *switchLogs) LogFile(_, _, _ string, previous bool) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if previous || l.path == "" {
		return "", apply.ErrNotFound
	}
	return l.path, nil
}

func (l *switchLogs) set(p string) { l.mu.Lock(); l.path = p; l.mu.Unlock() }

func onePod() status.Node {
	return status.Node{Node: "n1", Pods: []plan.PodStatus{{Namespace: "default", Name: "web", Phase: plan.PhaseRunning,
		Containers: []plan.ContainerStatus{{Name: "app", State: plan.StateRunning}}}}}
}

func TestAPIRequiresTheTokenWhenSet(t *testing.T) {
	srv := httptest.NewServer(NewAPI(&staticStatus{st: onePod()}, &switchLogs{}, APIOptions{Token: "s3cret"}))
	defer srv.Close()
	get := func(path, auth string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/v1/status", "", 401},
		{"/v1/status", "Bearer wrong", 401},
		{"/v1/status", "Bearer s3cret", 200},
		{"/healthz", "", 200},
		{"/v1/nothing", "Bearer s3cret", 404},
	} {
		if got := get(c.path, c.auth); got != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.auth, got, c.want)
		}
	}
}

// Following a log streams what is appended, starts over when the file is
// truncated (rotation), goes on with the next instance's file after a
// restart, and ends when the pod is gone.
func TestAPIFollowsALogThroughRotationAndRestart(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "0.log"), filepath.Join(dir, "1.log")
	if err := os.WriteFile(first, []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	status := &staticStatus{st: onePod()}
	logs := &switchLogs{path: first}
	srv := httptest.NewServer(NewAPI(status, logs, APIOptions{FollowPoll: 5 * time.Millisecond}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/pods/default/web/logs?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got, ok := <-lines:
			if !ok || got != want {
				t.Fatalf("line %q (open %v), want %q", got, ok, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no line %q within 5s", want)
		}
	}
	appendTo := func(p, s string) {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(f, s)
		f.Close()
	}
	expect("one")
	appendTo(first, "two\n")
	expect("two")
	// Rotation: copied away and truncated in place.
	if err := os.Truncate(first, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(first, "three\n")
	expect("three")
	// A restart: the new instance logs to a new file.
	appendTo(second, "four\n")
	logs.set(second)
	expect("four")
	// The pod goes: the stream ends.
	status.mu.Lock()
	status.st.Pods = nil
	status.mu.Unlock()
	select {
	case l, ok := <-lines:
		if ok {
			t.Fatalf("unexpected line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end with the pod")
	}
}

func TestAPITail(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "0.log")
	var b strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewAPI(&staticStatus{st: onePod()}, &switchLogs{path: p}, APIOptions{}))
	defer srv.Close()
	for _, c := range []struct {
		tail string
		want string
	}{
		{"2", "line 9998\nline 9999\n"},
		{"0", ""},
	} {
		resp, err := http.Get(srv.URL + "/v1/pods/default/web/logs?tail=" + c.tail)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != c.want {
			t.Errorf("tail=%s: %q, want %q", c.tail, got, c.want)
		}
	}
}

// steppedLogs gives the first path to the request's first look, then
// answers each later look with the next path the test sends, so the test
// decides when the container restarts.
type steppedLogs struct {
	first string
	looks atomic.Int32
	next  chan string
}

func (l *steppedLogs) LogFile(_, _, _ string, previous bool) (string, error) {
	if previous {
		return "", apply.ErrNotFound
	}
	if l.looks.Add(1) == 1 {
		return l.first, nil
	}
	p, ok := <-l.next
	if !ok {
		return "", apply.ErrNotFound
	}
	return p, nil
}

// What an instance writes just before it is replaced reaches the client
// before the new instance's log: a crashing container's last lines are
// the ones that explain it.
func TestAPIFollowKeepsTheLastLinesOfARestartedInstance(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "0.log"), filepath.Join(dir, "1.log")
	if err := os.WriteFile(first, []byte("starting\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	status := &staticStatus{st: onePod()}
	logs := &steppedLogs{first: first, next: make(chan string)}
	srv := httptest.NewServer(NewAPI(status, logs, APIOptions{FollowPoll: time.Millisecond}))
	defer srv.Close()
	defer close(logs.next)
	resp, err := http.Get(srv.URL + "/v1/pods/default/web/logs?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != "starting" {
		t.Fatalf("first line %q, want starting", sc.Text())
	}
	// The API now waits for its next look at the log's path. Meanwhile
	// the instance dies with a message, and a new one starts.
	f, err := os.OpenFile(first, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "panic: out of cheese\n")
	f.Close()
	if err := os.WriteFile(second, []byte("starting again\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs.next <- second
	status.mu.Lock()
	status.st.Pods = nil
	status.mu.Unlock()
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	want := []string{"panic: out of cheese", "starting again"}
	if !slices.Equal(got, want) {
		t.Fatalf("after the first line: %q, want %q", got, want)
	}
}

func TestAPIErrorsSayWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "0.log")
	if err := os.WriteFile(p, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := status.Node{Node: "n1", Pods: []plan.PodStatus{
		{Namespace: "default", Name: "web", Containers: []plan.ContainerStatus{
			{Name: "init", Init: true, State: plan.StateTerminated},
			{Name: "app", State: plan.StateRunning}}},
		{Namespace: "default", Name: "two", Containers: []plan.ContainerStatus{
			{Name: "a", State: plan.StateRunning}, {Name: "b", State: plan.StateRunning}}},
		{Namespace: "default", Name: "pull", Containers: []plan.ContainerStatus{
			{Name: "app", State: plan.StateWaiting, Reason: "ImagePullBackOff"}}},
	}}
	srv := httptest.NewServer(NewAPI(&staticStatus{st: st}, &switchLogs{path: p}, APIOptions{}))
	defer srv.Close()
	pullSrv := httptest.NewServer(NewAPI(&staticStatus{st: st}, &switchLogs{}, APIOptions{}))
	defer pullSrv.Close()
	for _, c := range []struct {
		name, method, url string
		code              int
		body              string // the error, or the body when 2xx
	}{
		{"the only app container needs no name", "GET", srv.URL + "/v1/pods/default/web/logs", 200, "hello\n"},
		{"several containers need a name", "GET", srv.URL + "/v1/pods/default/two/logs", 400,
			"a container name must be specified for pod two, choose one of: [a b]"},
		{"an unknown container is listed against the pod's", "GET", srv.URL + "/v1/pods/default/two/logs?container=c", 400,
			"container c is not valid for pod two, choose one of: [a b]"},
		{"an unknown pod", "GET", srv.URL + "/v1/pods/shop/web/logs", 404, "pod shop/web not found on any node"},
		{"a bad tail", "GET", srv.URL + "/v1/pods/default/web/logs?tail=many", 400, `tail "many": want a number of lines`},
		{"no previous instance", "GET", srv.URL + "/v1/pods/default/web/logs?previous=true", 404,
			`previous terminated container "app" in pod "web" not found`},
		{"a waiting container has no log yet", "GET", pullSrv.URL + "/v1/pods/default/pull/logs", 400,
			`container "app" in pod "pull" is waiting to start: ImagePullBackOff`},
		{"another method", "POST", srv.URL + "/v1/status", 405, "method POST not allowed on /v1/status: use GET"},
		{"another method on the cluster", "DELETE", srv.URL + "/v1/cluster", 405, "method DELETE not allowed on /v1/cluster: use GET"},
		{"an unknown path", "GET", srv.URL + "/v2/status", 404, "no such endpoint: GET /v2/status"},
		{"health", "GET", srv.URL + "/healthz", 200, "ok\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, c.url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, c.code, b)
			}
			if c.code/100 == 2 {
				if string(b) != c.body {
					t.Fatalf("body %q, want %q", b, c.body)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(b, &e); err != nil || e.Error != c.body {
				t.Fatalf("body %s, want {\"error\": %q}", b, c.body)
			}
		})
	}
}

func TestAPILeaveAndRevisionFiles(t *testing.T) {
	st := &staticStatus{st: status.Node{Node: "n1"}}
	// Without the functions, neither is served.
	bare := httptest.NewServer(NewAPI(st, &switchLogs{}, APIOptions{}))
	defer bare.Close()
	for _, tc := range []struct{ method, path string }{{"POST", "/v1/node/leave"}, {"GET", "/v1/revision/files"}} {
		req, _ := http.NewRequest(tc.method, bare.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s %s without it: %s", tc.method, tc.path, resp.Status)
		}
	}
	var left atomic.Value
	srv := httptest.NewServer(NewAPI(st, &switchLogs{}, APIOptions{
		Leave: func(ctx context.Context) error {
			d, _ := ctx.Deadline()
			left.Store(time.Until(d).Round(time.Minute))
			return nil
		},
		RevisionFiles: func(_ context.Context, w io.Writer) (string, error) {
			tw := tar.NewWriter(w)
			tw.WriteHeader(&tar.Header{Name: "web.yaml", Mode: 0o644, Size: 5})
			tw.Write([]byte("kind:"))
			return "abc", tw.Close()
		},
	}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/node/leave?timeout=5m", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"left": true`) || left.Load() != 5*time.Minute {
		t.Fatalf("leave: %s %s, deadline in %v", resp.Status, b, left.Load())
	}
	resp, _ = http.Post(srv.URL+"/v1/node/leave?timeout=soon", "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("leave with a bad timeout: %s", resp.Status)
	}
	resp, err = http.Get(srv.URL + "/v1/revision/files")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h, err := tar.NewReader(resp.Body).Next()
	if err != nil || h.Name != "web.yaml" || resp.Header.Get("Gitorch-Revision") != "abc" {
		t.Fatalf("revision files: %v %v %q", h, err, resp.Header.Get("Gitorch-Revision"))
	}
}
