package kv

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// start runs a server on a loopback port until the test ends and
// returns it and its address.
func start(t *testing.T) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, l.Addr().String()
}

// follow makes s follow the master at addr until the test ends.
func follow(t *testing.T, s *Server, addr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Follow(ctx, addr, 20*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func dial(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls get until it returns want, for at most 10 s.
func eventually(t *testing.T, what string, want string, get func() (string, error)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := get()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, %v; want %q", what, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCommands(t *testing.T) {
	_, addr := start(t)
	c := dial(t, addr)
	cx := ctx(t)
	if _, ok, err := c.Get(cx, "messages"); err != nil || ok {
		t.Fatalf("GET of a missing key = ok %v, %v; want a null", ok, err)
	}
	if err := c.Set(cx, "messages", "hello"); err != nil {
		t.Fatal(err)
	}
	if err := c.Append(cx, "messages", ",world"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.Get(cx, "messages"); err != nil || !ok || v != "hello,world" {
		t.Fatalf("GET = %q, %v, %v; want hello,world", v, ok, err)
	}
	// Values are binary-safe: CRLF inside a value is data.
	if err := c.Set(cx, "crlf", "a\r\nb"); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := c.Get(cx, "crlf"); v != "a\r\nb" {
		t.Errorf("GET crlf = %q", v)
	}
	for _, tc := range []struct {
		args []string
		want Reply
	}{
		{[]string{"PING"}, Reply{Kind: '+', Str: "PONG"}},
		{[]string{"ping", "x"}, Reply{Kind: '$', Str: "x"}},
		{[]string{"ECHO", "hi"}, Reply{Kind: '$', Str: "hi"}},
		{[]string{"EXISTS", "messages", "nothing", "crlf"}, Reply{Kind: ':', Int: 2}},
		{[]string{"DEL", "crlf", "nothing"}, Reply{Kind: ':', Int: 1}},
		{[]string{"EXISTS", "crlf"}, Reply{Kind: ':', Int: 0}},
		{[]string{"APPEND", "new", "abc"}, Reply{Kind: ':', Int: 3}},
	} {
		got, err := c.Do(cx, tc.args...)
		if err != nil || got != tc.want {
			t.Errorf("%q = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	for _, args := range [][]string{{"FLUSHALL"}, {"GET"}, {"SET", "k"}, {"DEL"}} {
		_, err := c.Do(cx, args...)
		var se ServerError
		if !errors.As(err, &se) || !strings.HasPrefix(string(se), "ERR ") {
			t.Errorf("%q: err = %v, want an ERR reply", args, err)
		}
	}
	rep, err := c.Do(cx, "INFO")
	if err != nil || !strings.Contains(rep.Str, "role:master\r\n") {
		t.Errorf("INFO = %q, %v; want role:master", rep.Str, err)
	}
}

// TestProtocolError: a peer that does not send RESP gets an error reply
// and the connection is closed, and the server serves others.
func TestProtocolError(t *testing.T) {
	_, addr := start(t)
	for _, garbage := range []string{"GET x\r\n", "*2\r\n$3\r\nGET\r\n$999999999\r\n", "*1\r\n$4\r\nPINGxx"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(garbage))
		if cw, ok := c.(*net.TCPConn); ok {
			cw.CloseWrite()
		}
		rep, err := ReadReply(bufio.NewReader(c))
		if err != nil || rep.Kind != '-' {
			t.Errorf("%q: reply %+v, %v; want an error reply", garbage, rep, err)
		}
		c.Close()
	}
	if _, err := dial(t, addr).Do(ctx(t), "PING"); err != nil {
		t.Errorf("PING after protocol errors: %v", err)
	}
}

func TestReplicaFollowsMaster(t *testing.T) {
	_, maddr := start(t)
	m := dial(t, maddr)
	cx := ctx(t)
	if err := m.Set(cx, "before", "synced"); err != nil {
		t.Fatal(err)
	}
	replica, raddr := start(t)
	if replica.Ready() != true {
		t.Fatal("a server that follows nobody is not ready")
	}
	follow(t, replica, maddr)
	r := dial(t, raddr)
	get := func(key string) func() (string, error) {
		return func() (string, error) {
			v, _, err := r.Get(cx, key)
			return v, err
		}
	}
	// The data set from before the replica came, then each write after.
	eventually(t, "replica's before", "synced", get("before"))
	if !replica.Ready() {
		t.Error("a replica that synced is not ready")
	}
	if err := m.Set(cx, "messages", "one"); err != nil {
		t.Fatal(err)
	}
	if err := m.Append(cx, "messages", ",two"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica's messages", "one,two", get("messages"))
	if _, err := m.Do(cx, "DEL", "before"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "EXISTS before on the replica", "0", func() (string, error) {
		rep, err := r.Do(cx, "EXISTS", "before")
		return strconv.FormatInt(rep.Int, 10), err
	})

	// A replica refuses writes, as Redis's does.
	var se ServerError
	if err := r.Set(cx, "messages", "lost"); !errors.As(err, &se) || !strings.HasPrefix(string(se), "READONLY") {
		t.Errorf("SET on a replica: %v, want READONLY", err)
	}
	rep, err := r.Do(cx, "INFO")
	if err != nil || !strings.Contains(rep.Str, "role:slave\r\n") || !strings.Contains(rep.Str, "master_link_status:up\r\n") {
		t.Errorf("replica's INFO = %q, %v", rep.Str, err)
	}
	// A replica is no master to follow.
	other := NewServer(nil)
	if err := other.followOnce(cx, raddr); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Errorf("following a replica: %v, want a refusal", err)
	}
}

// TestReplicaResyncs: when its master goes away and another comes at the
// address, the replica reports its link down, then takes the new master's
// data set in place of the old one.
func TestReplicaResyncs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := l.Addr().String()
	first := NewServer(nil)
	mctx, stopFirst := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- first.Serve(mctx, l) }()
	cx := ctx(t)
	m := dial(t, maddr)
	if err := m.Set(cx, "messages", "old"); err != nil {
		t.Fatal(err)
	}
	m.Close()

	replica, raddr := start(t)
	follow(t, replica, maddr)
	r := dial(t, raddr)
	get := func() (string, error) { v, _, err := r.Get(cx, "messages"); return v, err }
	eventually(t, "replica's messages", "old", get)

	stopFirst()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	ready := func() (string, error) {
		if replica.Ready() {
			return "ready", nil
		}
		return "not ready", nil
	}
	eventually(t, "replica without a master", "not ready", ready)

	l2, err := net.Listen("tcp", maddr)
	if err != nil {
		t.Fatal(err)
	}
	second := NewServer(nil)
	sctx, stopSecond := context.WithCancel(context.Background())
	served2 := make(chan error, 1)
	go func() { served2 <- second.Serve(sctx, l2) }()
	defer func() { stopSecond(); <-served2 }()
	m2 := dial(t, maddr)
	if err := m2.Set(cx, "messages", "new"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica's messages after the new master", "new", get)
	eventually(t, "replica with its new master", "ready", ready)
}

// TestServeEndsWhenAcceptFails: a listener closed under Serve makes it
// return an error, closing the connections it had, not wait for them.
func TestServeEndsWhenAcceptFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- NewServer(nil).Serve(context.Background(), l) }()
	c := dial(t, l.Addr().String())
	if _, err := c.Do(ctx(t), "PING"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Serve returned nil after its listener failed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its listener was closed")
	}
	if _, err := c.Do(ctx(t), "PING"); err == nil {
		t.Error("a connection outlived Serve")
	}
}
