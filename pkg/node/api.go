package node

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/clock"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/status"
)

// StatusSource gives the node's status and its view of the cluster;
// *Agent is one.
type StatusSource interface {
	Status() status.Node
	Cluster() status.Cluster
}

// LogSource finds container log files; *apply.Containerd is one.
type LogSource interface {
	// LogFile is the log of the current (or, with previous, the one
	// before) instance of a container; an error wrapping apply.ErrNotFound
	// when there is none.
	LogFile(namespace, pod, container string, previous bool) (string, error)
}

// APIOptions configure the HTTP API.
type APIOptions struct {
	// Token, when set, must be sent as "Authorization: Bearer TOKEN".
	Token string
	// FollowPoll is how often a followed log is checked for new bytes
	// (default 250 ms).
	FollowPoll time.Duration
	// Clock times the following of logs (default the real clock).
	Clock clock.Clock
	// Pods says which node runs a pod that is not on this one, and where
	// that node's API is, so that its logs are asked of it (default: the
	// StatusSource's Cluster view).
	Pods PodLocator
	// PeerTransport carries requests to other nodes' APIs (default one
	// that gives up connecting after 5 s).
	PeerTransport http.RoundTripper
	// RevisionFiles writes the running revision's files as a tar archive
	// and returns its commit (*Agent.RevisionFiles); nil: not served.
	RevisionFiles func(ctx context.Context, w io.Writer) (string, error)
	// Leave moves the node's pods to the others and takes the node out of
	// the cluster ('gitorch node leave'); nil: not served.
	Leave func(ctx context.Context) error
	// Events, Metrics and Ready serve GET /v1/events, /metrics and
	// /readyz (see observeRoutes); nil: not served (/readyz says ok).
	Events  EventSource
	Metrics http.Handler
	Ready   func(ctx context.Context) error
	// Sync fetches now and waits for the revision that results
	// (*Agent.SyncNow); nil: not served.
	Sync func(ctx context.Context) (SyncResult, error)
	// Hooks receives Git hosts' webhooks at /v1/hooks/{provider}; they
	// prove themselves with the webhook secret, not the token. nil: 404.
	Hooks http.Handler
}

// NewAPI serves the node's status and container logs:
//
//	GET /healthz                                  "ok"
//	GET /v1/status                                status.Node as JSON
//	GET /v1/cluster                               status.Cluster as JSON
//	GET /v1/pods/{namespace}/{name}/logs          a container's log as text
//	    ?container=C  &previous=true  &tail=N  &follow=true
//	GET /v1/revision/files                        the running revision's files, a tar archive
//	                                              (header Gitorch-Revision: the commit)
//	POST /v1/node/leave                           move the node's pods away and leave
//	GET /v1/events, /metrics, /readyz             see observeRoutes
//	POST /v1/sync?timeout=2m                      fetch now; SyncResult as JSON
//	POST /v1/hooks/{github,gitlab,gitea,generic}  webhooks (see pkg/webhook)
//
// The logs of a pod that runs on another node are asked of that node's
// API, with the same query and opts.Token, and streamed back.
//
// Errors are JSON: {"error": "..."}.
func NewAPI(status StatusSource, logs LogSource, opts APIOptions) http.Handler {
	if opts.FollowPoll <= 0 {
		opts.FollowPoll = 250 * time.Millisecond
	}
	opts.Clock = clock.OrReal(opts.Clock)
	if opts.Pods == nil {
		opts.Pods = ClusterLocator{status}
	}
	if opts.PeerTransport == nil {
		opts.PeerTransport = &http.Transport{
			// Peers are reached directly, never through $HTTP_PROXY.
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
		}
	}
	s := &api{status: status, logs: logs, opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /v1/status", s.getStatus)
	mux.HandleFunc("GET /v1/cluster", s.getCluster)
	mux.HandleFunc("GET /v1/pods/{namespace}/{name}/logs", s.getLogs)
	mux.HandleFunc("GET /v1/revision/files", s.getRevisionFiles)
	mux.HandleFunc("POST /v1/node/leave", s.postLeave)
	s.observeRoutes(mux)
	mux.HandleFunc("POST /v1/sync", s.postSync)
	if opts.Hooks != nil {
		mux.Handle("/v1/hooks/{provider}", opts.Hooks)
	}
	// The same paths without a method catch the other methods, so that
	// they get a 405 in JSON rather than the catch-all's 404.
	for _, p := range []string{"/healthz", "/v1/status", "/v1/cluster", "/v1/pods/{namespace}/{name}/logs", "/v1/revision/files"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "GET, HEAD")
			apiError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s: use GET", r.Method, r.URL.Path))
		})
	}
	mux.HandleFunc("/v1/sync", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		apiError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s: use POST", r.Method, r.URL.Path))
	})
	mux.HandleFunc("/v1/node/leave", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		apiError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed on %s: use POST", r.Method, r.URL.Path))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	if opts.Token == "" {
		return mux
	}
	want := []byte("Bearer " + opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !isHookPath(r.URL.Path) && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gitorch"`)
			apiError(w, http.StatusUnauthorized, errors.New("a valid bearer token is required"))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

type api struct {
	status StatusSource
	logs   LogSource
	opts   APIOptions
}

func apiError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

func (s *api) getStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.status.Status())
}

func (s *api) getCluster(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.status.Cluster())
}

func (s *api) getRevisionFiles(w http.ResponseWriter, r *http.Request) {
	if s.opts.RevisionFiles == nil {
		apiError(w, http.StatusNotFound, errors.New("this node does not serve its revision's files"))
		return
	}
	// The archive is built first, so that an error is still a JSON answer.
	var buf bytes.Buffer
	commit, err := s.opts.RevisionFiles(r.Context(), &buf)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Gitorch-Revision", commit)
	w.Write(buf.Bytes())
}

func (s *api) postLeave(w http.ResponseWriter, r *http.Request) {
	if s.opts.Leave == nil {
		apiError(w, http.StatusNotFound, errors.New("this node cannot leave: it is not in a cluster"))
		return
	}
	ctx := r.Context()
	if t := r.URL.Query().Get("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			apiError(w, http.StatusBadRequest, fmt.Errorf("timeout %q: want a positive duration such as 5m", t))
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := s.opts.Leave(ctx); err != nil {
		apiError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, map[string]any{"node": s.status.Status().Node, "left": true})
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		apiError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// findPod returns the pod's status, or false.
func (s *api) findPod(ns, name string) (plan.PodStatus, bool) {
	for _, p := range s.status.Status().Pods {
		if p.Namespace == ns && p.Name == name {
			return p, true
		}
	}
	return plan.PodStatus{}, false
}

func (s *api) getLogs(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	q := r.URL.Query()
	pod, ok := s.findPod(ns, name)
	if !ok {
		s.peerLogs(w, r, ns, name)
		return
	}
	container := q.Get("container")
	var names []string
	for _, c := range pod.Containers {
		names = append(names, c.Name)
	}
	if container == "" {
		var app []string
		for _, c := range pod.Containers {
			if !c.Init {
				app = append(app, c.Name)
			}
		}
		if len(app) != 1 {
			apiError(w, http.StatusBadRequest, fmt.Errorf("a container name must be specified for pod %s, choose one of: [%s]", name, strings.Join(names, " ")))
			return
		}
		container = app[0]
	} else if !contains(names, container) {
		apiError(w, http.StatusBadRequest, fmt.Errorf("container %s is not valid for pod %s, choose one of: [%s]", container, name, strings.Join(names, " ")))
		return
	}
	previous, _ := strconv.ParseBool(q.Get("previous"))
	follow, _ := strconv.ParseBool(q.Get("follow"))
	tail := -1
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < -1 {
			apiError(w, http.StatusBadRequest, fmt.Errorf("tail %q: want a number of lines", t))
			return
		}
		tail = n
	}
	path, err := s.logs.LogFile(ns, name, container, previous)
	if err != nil && !previous {
		for _, c := range pod.Containers {
			if c.Name == container && c.State == plan.StateWaiting {
				apiError(w, http.StatusBadRequest, fmt.Errorf("container %q in pod %q is waiting to start: %s", container, name, c.Reason))
				return
			}
		}
	}
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, apply.ErrNotFound) {
			code = http.StatusNotFound
			if previous {
				err = fmt.Errorf("previous terminated container %q in pod %q not found", container, name)
			}
		}
		apiError(w, code, err)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		apiError(w, http.StatusNotFound, fmt.Errorf("log of container %s: %w", container, err))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	offset, err := writeTail(w, f, tail)
	if err != nil || !follow || previous {
		return
	}
	s.follow(r.Context(), w, ns, name, container, path, f, offset)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// writeTail copies the file to w, only its last n lines when n ≥ 0, and
// returns the offset it read to.
func writeTail(w io.Writer, f *os.File, n int) (int64, error) {
	if n < 0 {
		return io.Copy(w, f)
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	// Read backwards in blocks until n+1 newlines are found (the last
	// byte may itself be a newline).
	const block = 32 << 10
	var buf []byte
	start := size
	for start > 0 {
		step := int64(block)
		if start < step {
			step = start
		}
		start -= step
		chunk := make([]byte, step)
		if _, err := f.ReadAt(chunk, start); err != nil && err != io.EOF {
			return 0, err
		}
		buf = append(chunk, buf...)
		if bytes.Count(buf, []byte{'\n'}) > n {
			break
		}
	}
	lines := bytes.SplitAfter(buf, []byte{'\n'})
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		if _, err := w.Write(l); err != nil {
			return 0, err
		}
	}
	return size, nil
}

// follow streams what is appended to the log until the client goes away
// or the pod is gone. A file that shrinks was rotated (copied and
// truncated): reading starts again at its beginning. When the container
// restarts, what its old instance wrote last is sent, then its new
// instance's log follows. f stays the caller's to close.
func (s *api) follow(ctx context.Context, w http.ResponseWriter, ns, name, container, path string, f *os.File, offset int64) {
	fl, _ := w.(http.Flusher)
	flush := func() {
		if fl != nil {
			fl.Flush()
		}
	}
	flush()
	t := s.opts.Clock.NewTicker(s.opts.FollowPoll)
	defer t.Stop()
	buf := make([]byte, 32<<10)
	var opened *os.File // a later instance's log, opened here
	defer func() {
		if opened != nil {
			opened.Close()
		}
	}()
	var ok bool
	for {
		if offset, ok = copyNew(w, flush, f, offset, buf); !ok {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if _, there := s.findPod(ns, name); !there {
			// Its containers are stopped: send their last words.
			copyNew(w, flush, f, offset, buf)
			return
		}
		p, err := s.logs.LogFile(ns, name, container, false)
		if err != nil || p == path {
			continue
		}
		nf, err := os.Open(p)
		if err != nil {
			continue
		}
		// The old instance may have written since the last look; a
		// crashing one's last lines are the ones that matter.
		if _, ok = copyNew(w, flush, f, offset, buf); !ok {
			nf.Close()
			return
		}
		if opened != nil {
			opened.Close()
		}
		opened, f, path, offset = nf, nf, p, 0
	}
}

// copyNew sends what f holds past offset, and returns the offset it read
// to; false when the client or the file failed. A file shorter than
// offset was truncated: it is read from its start.
func copyNew(w io.Writer, flush func(), f *os.File, offset int64, buf []byte) (int64, bool) {
	for {
		fi, err := f.Stat()
		if err != nil {
			return offset, false
		}
		if fi.Size() < offset {
			offset = 0
		}
		if fi.Size() == offset {
			return offset, true
		}
		n, err := f.ReadAt(buf, offset)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return offset, false
			}
			offset += int64(n)
			flush()
		}
		if err != nil && err != io.EOF {
			return offset, false
		}
	}
}
