package node

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
)

type staticStatus struct {
	mu sync.Mutex
	st NodeStatus
}

func (s *staticStatus) Status() NodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
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

func onePod() NodeStatus {
	return NodeStatus{Node: "n1", Pods: []PodStatus{{Namespace: "default", Name: "web", Phase: PhaseRunning,
		Containers: []ContainerStatus{{Name: "app", State: StateRunning}}}}}
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
