package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/status"
)

func TestAPIServesTheCluster(t *testing.T) {
	c := status.Cluster{Node: "n1", Quorum: true,
		Members: []status.Member{{Name: "n1", Status: status.MemberAlive, Self: true}, {Name: "n2", Status: status.MemberDead}},
		Pods:    []plan.PodStatus{{Namespace: "default", Name: "web-0", Node: "n2", Phase: plan.PhaseRunning}}}
	srv := httptest.NewServer(NewAPI(&staticStatus{st: onePod(), cluster: &c}, &switchLogs{}, APIOptions{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	var got status.Cluster
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Node != "n1" || len(got.Members) != 2 || got.Members[1].Status != status.MemberDead || len(got.Pods) != 1 || got.Pods[0].Node != "n2" {
		t.Fatalf("got %+v", got)
	}
}

func TestClusterLocator(t *testing.T) {
	c := status.Cluster{Node: "n1",
		Members: []status.Member{{Name: "n1", APIAddress: "10.0.0.1:7480"}, {Name: "n2", APIAddress: "10.0.0.2:7480"}, {Name: "n3"}},
		Pods: []plan.PodStatus{
			{Namespace: "default", Name: "a", Node: "n2"},
			{Namespace: "default", Name: "b", Node: "n3"},
			{Namespace: "shop", Name: "a", Node: "n4"},
		}}
	l := ClusterLocator{&staticStatus{cluster: &c}}
	for _, tc := range []struct {
		name, ns, pod string
		node, addr    string
		ok            bool
	}{
		{"a pod on a member with an API", "default", "a", "n2", "10.0.0.2:7480", true},
		{"a member without an API address", "default", "b", "n3", "", true},
		{"a node that is no member (any more)", "shop", "a", "n4", "", true},
		{"the namespace counts", "kube", "a", "", "", false},
		{"an unknown pod", "default", "z", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node, addr, ok := l.LocatePod(tc.ns, tc.pod)
			if node != tc.node || addr != tc.addr || ok != tc.ok {
				t.Fatalf("LocatePod(%s, %s) = %q, %q, %v; want %q, %q, %v", tc.ns, tc.pod, node, addr, ok, tc.node, tc.addr, tc.ok)
			}
		})
	}
}

// twoNodes serves n1, which runs no pod, and n2, which runs default/web
// and logs it to the file log; n1's cluster view places web on n2. Both
// require the token. reqs counts the requests each node received.
type twoNodes struct {
	n1, n2       *httptest.Server
	n1St, n2St   *staticStatus
	log          string
	reqs1, reqs2 atomic.Int32
	// got2 is the last request n2 received.
	got2 atomic.Pointer[http.Request]
}

func startTwoNodes(t *testing.T, token string) *twoNodes {
	t.Helper()
	tn := &twoNodes{log: filepath.Join(t.TempDir(), "0.log")}
	if err := os.WriteFile(tn.log, []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := APIOptions{Token: token, FollowPoll: 5 * time.Millisecond}
	web := onePod().Pods[0]
	web.Node = "n2"
	tn.n2St = &staticStatus{st: status.Node{Node: "n2", Pods: []plan.PodStatus{web}}}
	n2 := NewAPI(tn.n2St, &switchLogs{path: tn.log}, opts)
	tn.n2 = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tn.reqs2.Add(1)
		tn.got2.Store(r)
		n2.ServeHTTP(w, r)
	}))
	t.Cleanup(tn.n2.Close)
	tn.n1St = &staticStatus{st: status.Node{Node: "n1"}, cluster: &status.Cluster{Node: "n1",
		Members: []status.Member{{Name: "n1", Self: true}, {Name: "n2", APIAddress: strings.TrimPrefix(tn.n2.URL, "http://")}},
		Pods:    []plan.PodStatus{web}}}
	n1 := NewAPI(tn.n1St, &switchLogs{}, opts)
	tn.n1 = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tn.reqs1.Add(1)
		n1.ServeHTTP(w, r)
	}))
	t.Cleanup(tn.n1.Close)
	return tn
}

func getWithToken(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// Bounded, so that a request passed back and forth fails the test
	// rather than hang it.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// The logs of a pod on another node come from that node, asked with the
// cluster's token and the same query.
func TestAPIAsksTheNodeThatRunsThePodForItsLogs(t *testing.T) {
	tn := startTwoNodes(t, "s3cret")
	if err := os.WriteFile(tn.log, []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp := getWithToken(t, tn.n1.URL+"/v1/pods/default/web/logs?tail=2", "s3cret")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "two\nthree\n" {
		t.Fatalf("%s: %q, want 200 and the last two lines", resp.Status, b)
	}
	if n := tn.reqs2.Load(); n != 1 {
		t.Fatalf("n2 received %d requests, want 1", n)
	}
	if r := tn.got2.Load(); r.Header.Get(ProxiedHeader) != "n1" || r.Header.Get("Authorization") != "Bearer s3cret" {
		t.Fatalf("n2 received %s %q, Authorization %q; want n1's mark and the token", ProxiedHeader, r.Header.Get(ProxiedHeader), r.Header.Get("Authorization"))
	}
	// n2's errors reach the client as n2 said them.
	resp = getWithToken(t, tn.n1.URL+"/v1/pods/default/web/logs?container=nope", "s3cret")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "container nope is not valid for pod web") {
		t.Fatalf("%s: %s, want n2's 400", resp.Status, b)
	}
	// Without the token, n1 itself refuses, and n2 is not asked.
	before := tn.reqs2.Load()
	resp = getWithToken(t, tn.n1.URL+"/v1/pods/default/web/logs", "")
	resp.Body.Close()
	if resp.StatusCode != 401 || tn.reqs2.Load() != before {
		t.Fatalf("without a token: %s and %d requests to n2, want 401 and none", resp.Status, tn.reqs2.Load()-before)
	}
}

// Without a token of its own, a node passes on no credentials of the
// caller's.
func TestAPIForwardsNoCallerCredentials(t *testing.T) {
	tn := startTwoNodes(t, "")
	resp := getWithToken(t, tn.n1.URL+"/v1/pods/default/web/logs", "the caller's")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s", resp.Status)
	}
	if a := tn.got2.Load().Header.Get("Authorization"); a != "" {
		t.Fatalf("n2 received Authorization %q, want none", a)
	}
}

// Following a log through another node streams each line as it is
// written, and ends when the client goes away.
func TestAPIFollowsALogThroughAnotherNode(t *testing.T) {
	tn := startTwoNodes(t, "s3cret")
	resp := getWithToken(t, tn.n1.URL+"/v1/pods/default/web/logs?follow=true", "s3cret")
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s", resp.Status)
	}
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
	expect("one")
	for _, l := range []string{"two", "three"} {
		f, err := os.OpenFile(tn.log, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(f, l)
		f.Close()
		expect(l)
	}
	// The pod goes from n2: n2 ends the stream, and so does n1.
	tn.n2St.mu.Lock()
	tn.n2St.st.Pods = nil
	tn.n2St.mu.Unlock()
	select {
	case l, ok := <-lines:
		if ok {
			t.Fatalf("unexpected line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end with the pod")
	}
}

// Two nodes that each believe the other runs a pod answer 404 rather than
// pass the request back and forth.
func TestAPINeverForwardsAForwardedRequest(t *testing.T) {
	tn := startTwoNodes(t, "")
	// n2 lost the pod, and its view places it on n1.
	tn.n2St.mu.Lock()
	web := tn.n2St.st.Pods[0]
	tn.n2St.st.Pods = nil
	web.Node = "n1"
	tn.n2St.cluster = &status.Cluster{Node: "n2",
		Members: []status.Member{{Name: "n1", APIAddress: strings.TrimPrefix(tn.n1.URL, "http://")}, {Name: "n2", Self: true}},
		Pods:    []plan.PodStatus{web}}
	tn.n2St.mu.Unlock()
	resp := getWithToken(t, tn.n1.URL+"/v1/pods/default/web/logs", "")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(b), "pod default/web not found on node n2, where n1 believed it runs") {
		t.Fatalf("%s: %s, want n2's 404", resp.Status, b)
	}
	if n1, n2 := tn.reqs1.Load(), tn.reqs2.Load(); n1 != 1 || n2 != 1 {
		t.Fatalf("requests: n1 %d, n2 %d; want one each", n1, n2)
	}
}

func TestAPIPodOnAnUnreachableNodeIsABadGateway(t *testing.T) {
	// An address where nothing listens: a port just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	c := &status.Cluster{Node: "n1",
		Members: []status.Member{{Name: "n1"}, {Name: "n2", APIAddress: closed}, {Name: "n3"}},
		Pods: []plan.PodStatus{{Namespace: "default", Name: "on-2", Node: "n2"}, {Namespace: "default", Name: "on-3", Node: "n3"},
			{Namespace: "default", Name: "here", Node: "n1"}}}
	srv := httptest.NewServer(NewAPI(&staticStatus{st: status.Node{Node: "n1"}, cluster: c}, &switchLogs{}, APIOptions{}))
	defer srv.Close()
	for _, tc := range []struct {
		pod  string
		code int
		msg  string
	}{
		{"on-2", 502, "pod default/on-2 runs on node n2, whose API at " + closed + " does not answer: "},
		{"on-3", 502, "pod default/on-3 runs on node n3, which gives no API address"},
		// Placed here by the cluster view, but not (or no longer) run.
		{"here", 404, "pod default/here not found on any node"},
	} {
		resp := getWithToken(t, srv.URL+"/v1/pods/default/"+tc.pod+"/logs", "")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Error string }
		if resp.StatusCode != tc.code || json.Unmarshal(b, &e) != nil || !strings.HasPrefix(e.Error, tc.msg) {
			t.Errorf("%s: %s %s, want %d %q", tc.pod, resp.Status, b, tc.code, tc.msg)
		}
	}
}

// A member whose API address leads back to the node asked (a loopback
// address gossiped, say) is a 502 that says so, not a 404.
func TestAPIAddressLeadingBackIsABadGateway(t *testing.T) {
	st := &staticStatus{st: status.Node{Node: "n1"}}
	srv := httptest.NewServer(NewAPI(st, &switchLogs{}, APIOptions{}))
	defer srv.Close()
	st.mu.Lock()
	st.cluster = &status.Cluster{Node: "n1",
		Members: []status.Member{{Name: "n1"}, {Name: "n2", APIAddress: srv.URL}},
		Pods:    []plan.PodStatus{{Namespace: "default", Name: "web", Node: "n2"}}}
	st.mu.Unlock()
	resp := getWithToken(t, srv.URL+"/v1/pods/default/web/logs", "")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.Contains(string(b), "the API address of the node that runs it leads back to node n1") {
		t.Fatalf("%s: %s", resp.Status, b)
	}
}
