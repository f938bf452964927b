package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"golang.org/x/time/rate"

	"github.com/gitorch/gitorch/pkg/clock"
)

// DefaultMaxBody is the largest body read (1 MiB; GitHub caps payloads at
// 25 MB, but a push of a manifests repository is a few KiB).
const DefaultMaxBody = 1 << 20

// Defaults of the per-source rate limit and of the deliveries remembered.
const (
	DefaultRate       = 10 // requests per second
	DefaultBurst      = 60
	DefaultDeliveries = 4096
)

// maxSources bounds the rate limiters kept; past it, the idle ones are
// dropped.
const maxSources = 4096

// Config configures a Receiver.
type Config struct {
	// Secret authenticates deliveries; it must not be empty.
	Secret []byte
	// Ref is the ref the agent follows (see Decide).
	Ref string
	// MaxBody caps the body (default DefaultMaxBody).
	MaxBody int64
	// Rate and Burst limit the requests of each source address (defaults
	// DefaultRate per second, DefaultBurst at once).
	Rate  rate.Limit
	Burst int
	// Deliveries is how many delivery IDs are remembered to refuse
	// replays (default DefaultDeliveries).
	Deliveries int
	// Trigger is called, without blocking, for every delivery that asks
	// for a fetch.
	Trigger func(Event)
	// Clock times the rate limit (default the real clock).
	Clock  clock.Clock
	Logger *slog.Logger
}

// Result is how a delivery ended, as answered and counted.
type Result string

const (
	ResultFetch        Result = "fetch"
	ResultPong         Result = "pong"
	ResultIgnored      Result = "ignored"
	ResultDuplicate    Result = "duplicate"
	ResultUnauthorized Result = "unauthorized"
	ResultTooLarge     Result = "too-large"
	ResultRateLimited  Result = "rate-limited"
	ResultBadRequest   Result = "bad-request"
)

// Receiver serves POST {prefix}/{provider}; mount it on a mux with the
// provider as the last path element.
type Receiver struct {
	cfg   Config
	clock clock.Clock
	log   *slog.Logger

	mu      sync.Mutex
	sources map[string]*rate.Limiter
	seen    *seenSet
	counts  map[Result]uint64
}

// New returns a receiver; the secret must be set.
func New(cfg Config) (*Receiver, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: no secret: a receiver without one would accept anyone's hooks")
	}
	if cfg.Trigger == nil {
		return nil, errors.New("webhook: no trigger")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Deliveries <= 0 {
		cfg.Deliveries = DefaultDeliveries
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Receiver{
		cfg: cfg, clock: clock.OrReal(cfg.Clock), log: cfg.Logger,
		sources: map[string]*rate.Limiter{}, seen: newSeenSet(cfg.Deliveries), counts: map[Result]uint64{},
	}, nil
}

// Counts are the deliveries received so far, by result.
func (rc *Receiver) Counts() map[Result]uint64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[Result]uint64, len(rc.counts))
	for k, v := range rc.counts {
		out[k] = v
	}
	return out
}

// ServeHTTP handles one delivery: rate limit, body cap, signature, replay,
// then the event. Nothing of the body is parsed before the signature
// holds, and nothing is fetched for a delivery that fails any step.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := Provider(r.PathValue("provider"))
	if p == "" {
		p = Provider(path(r.URL.Path))
	}
	if !Known(p) {
		answer(w, http.StatusNotFound, "", fmt.Sprintf("no webhook receiver for %q: use one of github, gitlab, gitea, generic", p))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		answer(w, http.StatusMethodNotAllowed, "", "webhooks are POSTed")
		return
	}
	res, code, msg, ev := rc.handle(p, r)
	rc.mu.Lock()
	rc.counts[res]++
	rc.mu.Unlock()
	if res == ResultRateLimited {
		w.Header().Set("Retry-After", "1")
	}
	if res == ResultTooLarge {
		// The rest of the body is not read: the connection closes.
		w.Header().Set("Connection", "close")
	}
	answer(w, code, res, msg)
	if res == ResultFetch {
		rc.cfg.Trigger(ev)
	}
	rc.log.Debug("webhook", "provider", p, "result", res, "delivery", ev.Delivery, "event", ev.Name, "ref", ev.Ref, "from", r.RemoteAddr)
}

func (rc *Receiver) handle(p Provider, r *http.Request) (Result, int, string, Event) {
	if !rc.allow(source(r)) {
		return ResultRateLimited, http.StatusTooManyRequests, "too many requests from this address", Event{}
	}
	if r.ContentLength > rc.cfg.MaxBody {
		return ResultTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes: the limit is %d", r.ContentLength, rc.cfg.MaxBody), Event{}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, rc.cfg.MaxBody+1))
	if err != nil {
		return ResultBadRequest, http.StatusBadRequest, "reading the body: " + err.Error(), Event{}
	}
	if int64(len(body)) > rc.cfg.MaxBody {
		return ResultTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over the limit of %d bytes", rc.cfg.MaxBody), Event{}
	}
	if err := Verify(p, rc.cfg.Secret, r.Header, body); err != nil {
		return ResultUnauthorized, http.StatusUnauthorized, err.Error(), Event{}
	}
	ev, err := Parse(p, r.Header, body)
	if err != nil {
		return ResultBadRequest, http.StatusBadRequest, err.Error(), ev
	}
	// Replays are refused only once the delivery is authentic, so that
	// nobody can make the receiver forget or pre-empt real IDs.
	if ev.Delivery != "" && !rc.firstSight(p, ev.Delivery) {
		return ResultDuplicate, http.StatusOK, "delivery " + ev.Delivery + " was received already", ev
	}
	switch Decide(ev, rc.cfg.Ref) {
	case Pong:
		return ResultPong, http.StatusOK, "pong", ev
	case Fetch:
		return ResultFetch, http.StatusOK, "fetching", ev
	}
	what := ev.Name
	if ev.Kind == KindPush {
		what = "push to " + ev.Ref
	}
	return ResultIgnored, http.StatusAccepted, fmt.Sprintf("ignored: %s does not concern ref %q", what, rc.cfg.Ref), ev
}

// allow takes a token from the bucket of source src.
func (rc *Receiver) allow(src string) bool {
	now := rc.clock.Now()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	l := rc.sources[src]
	if l == nil {
		if len(rc.sources) >= maxSources {
			for k, o := range rc.sources {
				// A full bucket is an idle source.
				if o.TokensAt(now) >= float64(rc.cfg.Burst) {
					delete(rc.sources, k)
				}
			}
			if len(rc.sources) >= maxSources {
				return false
			}
		}
		l = rate.NewLimiter(rc.cfg.Rate, rc.cfg.Burst)
		rc.sources[src] = l
	}
	return l.AllowN(now, 1)
}

func (rc *Receiver) firstSight(p Provider, id string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.seen.add(string(p) + "\x00" + id)
}

// source is the address a request came from (proxies' headers are not
// trusted: anyone can send them).
func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func path(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

func answer(w http.ResponseWriter, code int, res Result, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	body := map[string]string{}
	if code >= 400 {
		body["error"] = msg
	} else {
		body["message"] = msg
	}
	if res != "" {
		body["result"] = string(res)
	}
	_ = json.NewEncoder(w).Encode(body)
}

// seenSet remembers the last n keys added.
type seenSet struct {
	set  map[string]struct{}
	ring []string
	next int
}

func newSeenSet(n int) *seenSet {
	return &seenSet{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

// add reports whether k is new, and remembers it.
func (s *seenSet) add(k string) bool {
	if _, ok := s.set[k]; ok {
		return false
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.set, old)
	}
	s.ring[s.next] = k
	s.set[k] = struct{}{}
	s.next = (s.next + 1) % len(s.ring)
	return true
}
