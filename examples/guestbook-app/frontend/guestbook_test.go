package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/examples/guestbook-app/kv"
)

// store runs a kv server on a loopback port until the test ends.
func store(t *testing.T) (*kv.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := kv.NewServer(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, l.Addr().String()
}

func frontend(t *testing.T, b backends) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(newHandler(b, "frontend-test", slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv
}

// call GETs path of srv and decodes its JSON body.
func call(t *testing.T, srv *httptest.Server, path string) (int, map[string]string) {
	t.Helper()
	res, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return res.StatusCode, body
}

func direct(t *testing.T, addr string) *kv.Client {
	t.Helper()
	c, err := kv.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestWritesToMasterReadsFromReplica: with two independent stores as
// master and "replica", set lands in the first and get reads the second.
func TestWritesToMasterReadsFromReplica(t *testing.T) {
	_, master := store(t)
	_, replica := store(t)
	ctx := context.Background()
	if err := direct(t, replica).Set(ctx, "messages", "from the replica"); err != nil {
		t.Fatal(err)
	}
	srv := frontend(t, backends{master: master, replica: replica})
	code, body := call(t, srv, "/guestbook.php?cmd=set&key=messages&value="+url.QueryEscape("hello, world"))
	if code != 200 || body["message"] != "Updated" {
		t.Fatalf("set: %d %v", code, body)
	}
	if v, _, _ := direct(t, master).Get(ctx, "messages"); v != "hello, world" {
		t.Errorf("master holds %q, want the value set", v)
	}
	code, body = call(t, srv, "/guestbook.php?cmd=get&key=messages")
	if code != 200 || body["data"] != "from the replica" {
		t.Errorf("get: %d %v, want the replica's value", code, body)
	}
	code, body = call(t, srv, "/guestbook.php?cmd=get&key=nothing")
	if code != 200 || body["data"] != "" {
		t.Errorf("get of a missing key: %d %v, want empty data", code, body)
	}
	for _, q := range []string{"cmd=get", "cmd=del&key=messages", "key=messages"} {
		if code, body := call(t, srv, "/guestbook.php?"+q); code != 400 || body["error"] == "" {
			t.Errorf("%s: %d %v, want 400 with an error", q, code, body)
		}
	}
}

// TestGuestbookWithAReplica: the whole path, a frontend on a master and a
// replica that follows it: what is set through the frontend is read back
// through it, and entries added with the form appear on the page.
func TestGuestbookWithAReplica(t *testing.T) {
	_, master := store(t)
	replica, raddr := store(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { replica.Follow(ctx, master, 20*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := frontend(t, backends{master: master, replica: raddr})

	if code, body := call(t, srv, "/guestbook.php?cmd=set&key=messages&value=first"); code != 200 {
		t.Fatalf("set: %d %v", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := call(t, srv, "/guestbook.php?cmd=get&key=messages")
		if body["data"] == "first" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("get = %v, want first", body)
		}
		time.Sleep(10 * time.Millisecond)
	}

	noRedirect := *srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, e := range []string{"second", "<b>third</b>"} {
		res, err := noRedirect.PostForm(srv.URL+"/", url.Values{"entry": {e}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("post %q: %s", e, res.Status)
		}
	}
	res, err := noRedirect.PostForm(srv.URL+"/", url.Values{"entry": {"  "}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("an empty entry: %s, want 400", res.Status)
	}

	want := "<li>first</li><li>second</li><li>&lt;b&gt;third&lt;/b&gt;</li>"
	for {
		res, err := srv.Client().Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 200 && strings.Contains(string(page), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("page (%s) does not list %s:\n%s", res.Status, want, page)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBackendDown: without a store the API answers 502 with the reason,
// the page says it, and /healthz stays 200.
func TestBackendDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	l.Close()
	srv := frontend(t, backends{master: gone, replica: gone})
	for _, q := range []string{"cmd=set&key=messages&value=x", "cmd=get&key=messages"} {
		code, body := call(t, srv, "/guestbook.php?"+q)
		if code != http.StatusBadGateway || !strings.Contains(body["error"], gone) {
			t.Errorf("%s: %d %v, want 502 naming %s", q, code, body, gone)
		}
	}
	res, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(string(page), "read from "+gone) {
		t.Errorf("page: %s\n%s", res.Status, page)
	}
	res, err = srv.Client().Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("/healthz: %s", res.Status)
	}
}

func TestBackendsFrom(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    backends
		wantErr bool
	}{
		{"dns by default", nil, backends{"redis-master:6379", "redis-replica:6379"}, false},
		{"dns", map[string]string{"GET_HOSTS_FROM": "dns"}, backends{"redis-master:6379", "redis-replica:6379"}, false},
		{"env", map[string]string{"GET_HOSTS_FROM": "env", "REDIS_MASTER_SERVICE_HOST": "10.96.0.5", "REDIS_REPLICA_SERVICE_HOST": "fd00::7", "REDIS_REPLICA_SERVICE_PORT": "7000"},
			backends{"10.96.0.5:6379", "[fd00::7]:7000"}, false},
		{"env without the replica's Service", map[string]string{"GET_HOSTS_FROM": "env", "REDIS_MASTER_SERVICE_HOST": "10.96.0.5"}, backends{}, true},
		{"unknown source", map[string]string{"GET_HOSTS_FROM": "file"}, backends{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := backendsFrom(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("= %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
