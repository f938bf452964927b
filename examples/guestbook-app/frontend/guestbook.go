package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gitorch/gitorch/examples/guestbook-app/kv"
)

// key is where the page keeps its entries, as the original's does.
const key = "messages"

// maxEntry is the longest entry the form takes, in bytes.
const maxEntry = 1000

// backends are the addresses (host:port) of the store: writes go to the
// master, reads to a replica.
type backends struct {
	master, replica string
}

// backendsFrom finds the backends as the original frontend does, by
// GET_HOSTS_FROM: "dns" (or unset) names the Services, "env" reads the
// service variables Kubernetes (and gitorch) set in every container.
func backendsFrom(getenv func(string) string) (backends, error) {
	switch from := getenv("GET_HOSTS_FROM"); from {
	case "", "dns":
		return backends{master: "redis-master:6379", replica: "redis-replica:6379"}, nil
	case "env":
		var b backends
		for _, s := range []struct {
			name string
			addr *string
		}{{"REDIS_MASTER", &b.master}, {"REDIS_REPLICA", &b.replica}} {
			host := getenv(s.name + "_SERVICE_HOST")
			if host == "" {
				return backends{}, fmt.Errorf("GET_HOSTS_FROM=env, but %s_SERVICE_HOST is not set (is the Service there?)", s.name)
			}
			port := getenv(s.name + "_SERVICE_PORT")
			if port == "" {
				port = "6379"
			}
			*s.addr = net.JoinHostPort(host, port)
		}
		return b, nil
	default:
		return backends{}, fmt.Errorf("GET_HOSTS_FROM=%q: want dns or env", from)
	}
}

type handler struct {
	b       backends
	host    string // shown on the page: which pod answered
	log     *slog.Logger
	timeout time.Duration
	mux     *http.ServeMux
}

func newHandler(b backends, host string, log *slog.Logger) *handler {
	h := &handler{b: b, host: host, log: log, timeout: 5 * time.Second, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /{$}", h.page)
	h.mux.HandleFunc("POST /{$}", h.add)
	h.mux.HandleFunc("GET /guestbook.php", h.api)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// do runs fn on a new connection to addr, within the handler's timeout.
func (h *handler) do(ctx context.Context, addr string, fn func(context.Context, *kv.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	c, err := kv.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

func (h *handler) get(ctx context.Context, k string) (string, error) {
	var v string
	err := h.do(ctx, h.b.replica, func(ctx context.Context, c *kv.Client) (err error) {
		v, _, err = c.Get(ctx, k)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read from %s: %w", h.b.replica, err)
	}
	return v, nil
}

// api is the original frontend's guestbook.php.
func (h *handler) api(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	k := q.Get("key")
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	if k == "" {
		reply(http.StatusBadRequest, map[string]string{"error": "key is missing"})
		return
	}
	switch q.Get("cmd") {
	case "set":
		err := h.do(r.Context(), h.b.master, func(ctx context.Context, c *kv.Client) error {
			return c.Set(ctx, k, q.Get("value"))
		})
		if err != nil {
			h.log.Warn("set", "key", k, "master", h.b.master, "err", err)
			reply(http.StatusBadGateway, map[string]string{"error": fmt.Sprintf("write to %s: %v", h.b.master, err)})
			return
		}
		reply(http.StatusOK, map[string]string{"message": "Updated"})
	case "get":
		v, err := h.get(r.Context(), k)
		if err != nil {
			h.log.Warn("get", "key", k, "err", err)
			reply(http.StatusBadGateway, map[string]string{"error": err.Error()})
			return
		}
		reply(http.StatusOK, map[string]string{"data": v})
	default:
		reply(http.StatusBadRequest, map[string]string{"error": "cmd is set or get"})
	}
}

// add appends the form's entry to the list, at the master: APPEND, so
// that two frontends adding at once both keep their entry.
func (h *handler) add(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4*maxEntry)
	entry := strings.TrimSpace(r.PostFormValue("entry"))
	switch {
	case entry == "":
		http.Error(w, "the entry is empty", http.StatusBadRequest)
		return
	case len(entry) > maxEntry:
		http.Error(w, fmt.Sprintf("an entry has at most %d bytes", maxEntry), http.StatusBadRequest)
		return
	}
	err := h.do(r.Context(), h.b.master, func(ctx context.Context, c *kv.Client) error {
		return c.Append(ctx, key, ","+entry)
	})
	if err != nil {
		h.log.Warn("add", "master", h.b.master, "err", err)
		http.Error(w, fmt.Sprintf("write to %s: %v", h.b.master, err), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// entries splits the stored list: comma-separated, empty parts skipped
// (the form's entries each start with a comma).
func entries(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Guestbook</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}li{margin:.3em 0}.err{color:#b00}</style>
</head><body>
<h1>Guestbook</h1>
<form method="post" action="/"><input name="entry" maxlength="1000" size="40" autofocus placeholder="Messages"> <button>Submit</button></form>
{{if .Err}}<p class="err">{{.Err}}</p>{{end}}
<ul>{{range .Entries}}<li>{{.}}</li>{{else}}<li><i>no entries yet</i></li>{{end}}</ul>
<p><small>served by {{.Host}}; reads from {{.Replica}}, writes to {{.Master}}</small></p>
</body></html>
`))

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	data := struct {
		Entries               []string
		Err                   string
		Host, Master, Replica string
	}{Host: h.host, Master: h.b.master, Replica: h.b.replica}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	v, err := h.get(r.Context(), key)
	if err != nil {
		data.Err = err.Error()
		w.WriteHeader(http.StatusBadGateway)
	}
	data.Entries = entries(v)
	pageTmpl.Execute(w, data)
}
