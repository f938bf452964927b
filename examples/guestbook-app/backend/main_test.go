package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/examples/guestbook-app/kv"
)

func serve(t *testing.T, s *kv.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

// TestCheck: the readiness check passes for a master and for a replica
// that follows one, and fails, saying why, for a replica whose master is
// not there and for no server at all.
func TestCheck(t *testing.T) {
	master := serve(t, kv.NewServer(nil))
	if err := checkServer(master); err != nil {
		t.Errorf("master: %v", err)
	}

	// A master address that refuses connections: a port just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := l.Addr().String()
	l.Close()
	if err := checkServer(nowhere); err == nil {
		t.Error("no server: check passed")
	}

	follow := func(s *kv.Server, addr string) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Follow(ctx, addr, 20*time.Millisecond); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	orphan := kv.NewServer(nil)
	follow(orphan, nowhere)
	orphanAddr := serve(t, orphan)
	if err := checkServer(orphanAddr); err == nil || !strings.Contains(err.Error(), "link to the master is down") {
		t.Errorf("replica without its master: %v, want link down", err)
	}

	replica := kv.NewServer(nil)
	follow(replica, master)
	replicaAddr := serve(t, replica)
	deadline := time.Now().Add(10 * time.Second)
	for err := checkServer(replicaAddr); err != nil; err = checkServer(replicaAddr) {
		if time.Now().After(deadline) {
			t.Fatalf("replica of a live master: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
