package node

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/events"
	"github.com/gitorch/gitorch/pkg/status"
)

func getEventList(t *testing.T, h http.Handler, target string) events.List {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	req.Header.Set("Authorization", "Bearer tok")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
	}
	var l events.List
	if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAPIClusterEventsMergesEveryAliveMember(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	peerRing := events.NewRing(0)
	peerRing.Add(events.Event{Time: t0.Add(time.Second), Node: "n2", Reason: "Started"})
	n2 := httptest.NewServer(NewAPI(&staticStatus{st: status.Node{Node: "n2"}}, nil, APIOptions{Token: "tok", Events: peerRing}))
	defer n2.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneAddr := strings.TrimPrefix(gone.URL, "http://")
	gone.Close()

	ownRing := events.NewRing(0)
	ownRing.Add(events.Event{Time: t0, Node: "n1", Reason: "Applied"})
	ownRing.Add(events.Event{Time: t0.Add(2 * time.Second), Node: "n1", Reason: "Killing"})
	st := &staticStatus{st: status.Node{Node: "n1"}, cluster: &status.Cluster{Members: []status.Member{
		{Name: "n1", Self: true, Status: "alive"},
		{Name: "n2", Status: "alive", APIAddress: strings.TrimPrefix(n2.URL, "http://")},
		{Name: "n3", Status: "alive", APIAddress: goneAddr},
		{Name: "n4", Status: "dead", APIAddress: goneAddr},
		{Name: "n5", Status: "alive"},
	}}}
	api := NewAPI(st, nil, APIOptions{Token: "tok", Events: ownRing})

	if l := getEventList(t, api, "/v1/events"); len(l.Events) != 2 || l.Unreachable != nil {
		t.Fatalf("this node's events: %+v, want its own 2", l)
	}
	l := getEventList(t, api, "/v1/events?cluster=true")
	var got []string
	for _, e := range l.Events {
		got = append(got, e.Node+":"+e.Reason)
	}
	if strings.Join(got, " ") != "n1:Applied n2:Started n1:Killing" {
		t.Fatalf("cluster events %v: want both nodes' merged by time", got)
	}
	if len(l.Unreachable) != 2 || l.Unreachable[0].Node != "n3" || l.Unreachable[1].Node != "n5" || l.Unreachable[0].Error == "" {
		t.Fatalf("unreachable %+v: want n3 (not answering) and n5 (no address), not the dead n4", l.Unreachable)
	}
}

func TestAPIEventsAfterAndWait(t *testing.T) {
	ring := events.NewRing(0)
	ring.Add(events.Event{Reason: "one"})
	api := NewAPI(&staticStatus{st: status.Node{Node: "n1"}}, nil, APIOptions{Token: "tok", Events: ring})
	done := make(chan events.List)
	go func() { done <- getEventList(t, api, "/v1/events?after=1&wait=1m") }()
	// The request waits for an event after the first; poll until it is
	// waiting, then add one.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ring.Add(events.Event{Reason: "two"})
		select {
		case l := <-done:
			if len(l.Events) == 0 || l.Events[0].Seq != 2 {
				t.Fatalf("after=1: %+v, want from event 2", l.Events)
			}
			return
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiting request did not return")
		}
	}
}
