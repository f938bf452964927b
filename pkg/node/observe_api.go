package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gitorch/gitorch/pkg/events"
)

// EventSource gives a node's events; *Agent is one.
type EventSource interface {
	// Events are those numbered above after, oldest first, and a
	// channel closed when the next one is recorded.
	Events(after uint64) ([]events.Event, <-chan struct{})
}

// peerEventsTimeout bounds how long a node waits for a peer's events.
const peerEventsTimeout = 3 * time.Second

// maxEventsWait bounds ?wait= on GET /v1/events.
const maxEventsWait = time.Minute

// observeRoutes serves events, metrics and readiness:
//
//	GET /v1/events     this node's events, events.List as JSON
//	    ?after=SEQ     only those numbered above SEQ
//	    &wait=30s      when there are none yet, wait (at most 1 min) for one
//	    ?cluster=true  every alive member's events, merged by time
//	GET /metrics       Prometheus metrics (text format)
//	GET /readyz        200 "ok", or 503 with the reason
func (s *api) observeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/events", s.getEvents)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Metrics == nil {
			apiError(w, http.StatusNotFound, errors.New("this node serves no metrics"))
			return
		}
		s.opts.Metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.opts.Ready != nil {
			if err := s.opts.Ready(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %v\n", err)
				return
			}
		}
		io.WriteString(w, "ok\n")
	})
	for _, p := range []string{"/v1/events", "/metrics", "/readyz"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "GET, HEAD")
			apiError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s: use GET", r.Method, r.URL.Path))
		})
	}
}

func (s *api) getEvents(w http.ResponseWriter, r *http.Request) {
	if s.opts.Events == nil {
		apiError(w, http.StatusNotFound, errors.New("this node records no events"))
		return
	}
	q := r.URL.Query()
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			apiError(w, http.StatusBadRequest, fmt.Errorf("after %q: want an event number", v))
			return
		}
		after = n
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			apiError(w, http.StatusBadRequest, fmt.Errorf("wait %q: want a duration such as 30s", v))
			return
		}
		wait = min(d, maxEventsWait)
	}
	cluster, _ := strconv.ParseBool(q.Get("cluster"))
	if cluster && r.Header.Get(ProxiedHeader) == "" {
		writeJSON(w, s.clusterEvents(r.Context()))
		return
	}
	evs, changed := s.opts.Events.Events(after)
	if len(evs) == 0 && wait > 0 {
		t := s.opts.Clock.NewTimer(wait)
		select {
		case <-changed:
			evs, _ = s.opts.Events.Events(after)
		case <-t.C():
		case <-r.Context().Done():
		}
		t.Stop()
	}
	if evs == nil {
		evs = []events.Event{}
	}
	writeJSON(w, events.List{Events: evs})
}

// clusterEvents asks every other alive member for its events, in
// parallel, and merges them with this node's.
func (s *api) clusterEvents(ctx context.Context) events.List {
	own, _ := s.opts.Events.Events(0)
	c := s.status.Cluster()
	var (
		mu    sync.Mutex
		lists = [][]events.Event{own}
		out   events.List
		wg    sync.WaitGroup
	)
	for _, m := range c.Members {
		if m.Self || m.Status != "alive" {
			continue
		}
		wg.Go(func() {
			evs, err := s.peerEvents(ctx, m.APIAddress)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.Unreachable = append(out.Unreachable, events.Unreachable{Node: m.Name, Error: err.Error()})
				return
			}
			lists = append(lists, evs)
		})
	}
	wg.Wait()
	out.Events = events.Merge(lists...)
	if out.Events == nil {
		out.Events = []events.Event{}
	}
	slices.SortFunc(out.Unreachable, func(a, b events.Unreachable) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// peerEvents GETs the events of the node whose API is at addr.
func (s *api) peerEvents(ctx context.Context, addr string) ([]events.Event, error) {
	if addr == "" {
		return nil, errors.New("the node gives no API address")
	}
	base, err := peerURL(addr)
	if err != nil {
		return nil, fmt.Errorf("API address %q: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, peerEventsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base.String(), "/")+"/v1/events", nil)
	if err != nil {
		return nil, err
	}
	if s.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.Token)
	}
	req.Header.Set(ProxiedHeader, s.status.Status().Node)
	resp, err := s.opts.PeerTransport.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("its API at %s does not answer: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("its API at %s answered %s", addr, resp.Status)
	}
	var l events.List
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&l); err != nil {
		return nil, fmt.Errorf("its API at %s: bad answer: %v", addr, err)
	}
	return l.Events, nil
}
