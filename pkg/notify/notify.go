// Package notify tells outside receivers what happened to a node: a JSON
// POST to each configured URL, signed with HMAC-SHA256 of the body as the
// generic webhook is, on revisions applied and refused and on workloads
// whose health changed. Deliveries are retried with back-off from a
// bounded queue per URL; Notify never blocks, so the reconcile loop never
// waits for a receiver: when a queue is full its oldest message is
// dropped and counted.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitorch/gitorch/pkg/backoff"
	"github.com/gitorch/gitorch/pkg/clock"
)

// Kinds of messages.
const (
	RevisionApplied   = "RevisionApplied"
	RevisionRefused   = "RevisionRefused"
	WorkloadUnhealthy = "WorkloadUnhealthy"
	WorkloadHealthy   = "WorkloadHealthy"
)

// Formats of the body.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Signature-256"

// Message is one notification, the JSON body of the default format.
type Message struct {
	Kind string    `json:"kind"`
	Time time.Time `json:"time"`
	Node string    `json:"node"`
	// Revision is the commit concerned (the one applied or refused, or
	// the one running).
	Revision string `json:"revision,omitempty"`
	// Workload is Kind/namespace/name for a health change.
	Workload string `json:"workload,omitempty"`
	// Ready and Total count the workload's pods on the node.
	Ready int `json:"ready,omitempty"`
	Total int `json:"total,omitempty"`
	// Text says it in one line, for people.
	Text string `json:"text"`
	// Errors are the refusal's.
	Errors []string `json:"errors,omitempty"`
}

// Config configures a Notifier.
type Config struct {
	URLs   []string
	Secret []byte // signs each body when set
	Format string // FormatJSON (default) or FormatSlack
	// QueueSize bounds the messages waiting per URL (default 100).
	QueueSize int
	// Attempts is how many times a message is tried (default 5);
	// Backoff spaces them (default 1 s doubling to 1 min).
	Attempts int
	Backoff  backoff.Backoff
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// Client sends the requests (default one that uses no proxy
	// settings beyond the environment's and Timeout).
	Client *http.Client
	Clock  clock.Clock
	Logger *slog.Logger
}

// Notifier delivers messages to every URL; Run delivers them.
type Notifier struct {
	cfg     Config
	targets []*target
	dropped atomic.Uint64
	sent    atomic.Uint64
	failed  atomic.Uint64
}

type target struct {
	url   string
	mu    sync.Mutex
	queue []Message
	ready chan struct{} // signalled when queue gains a message
}

// New checks cfg and returns a Notifier.
func New(cfg Config) (*Notifier, error) {
	switch cfg.Format {
	case "":
		cfg.Format = FormatJSON
	case FormatJSON, FormatSlack:
	default:
		return nil, fmt.Errorf("notify format %q: want %s or %s", cfg.Format, FormatJSON, FormatSlack)
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 100
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff.Initial == 0 {
		cfg.Backoff = backoff.Backoff{Initial: time.Second, Max: time.Minute}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	cfg.Clock = clock.OrReal(cfg.Clock)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg}
	for _, raw := range cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("notify URL %q: want an http or https URL", raw)
		}
		n.targets = append(n.targets, &target{url: raw, ready: make(chan struct{}, 1)})
	}
	return n, nil
}

// Notify queues m for every URL and returns at once. A full queue loses
// its oldest message.
func (n *Notifier) Notify(m Message) {
	for _, t := range n.targets {
		t.mu.Lock()
		if len(t.queue) >= n.cfg.QueueSize {
			t.queue = t.queue[1:]
			n.dropped.Add(1)
		}
		t.queue = append(t.queue, m)
		t.mu.Unlock()
		select {
		case t.ready <- struct{}{}:
		default:
		}
	}
}

// Dropped is how many messages full queues lost; Sent and Failed how
// many deliveries succeeded and how many gave up after every attempt.
func (n *Notifier) Dropped() uint64 { return n.dropped.Load() }
func (n *Notifier) Sent() uint64    { return n.sent.Load() }
func (n *Notifier) Failed() uint64  { return n.failed.Load() }

// Run delivers queued messages, one URL apart from another, until ctx
// ends.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range n.targets {
		wg.Go(func() { n.deliverLoop(ctx, t) })
	}
	wg.Wait()
}

func (n *Notifier) deliverLoop(ctx context.Context, t *target) {
	for {
		t.mu.Lock()
		var m Message
		have := len(t.queue) > 0
		if have {
			m, t.queue = t.queue[0], t.queue[1:]
		}
		t.mu.Unlock()
		if !have {
			select {
			case <-ctx.Done():
				return
			case <-t.ready:
			}
			continue
		}
		n.deliver(ctx, t.url, m)
	}
}

// deliver tries m until it is accepted, it is refused for good (4xx other
// than 408 and 429) or the attempts are spent.
func (n *Notifier) deliver(ctx context.Context, u string, m Message) {
	body, err := n.Body(m)
	if err != nil {
		n.cfg.Logger.Warn("notification", "url", u, "err", err)
		return
	}
	for attempt := 1; ; attempt++ {
		err := n.post(ctx, u, body)
		if err == nil {
			n.sent.Add(1)
			return
		}
		if ctx.Err() != nil {
			return
		}
		var perm permanent
		if errors.As(err, &perm) || attempt >= n.cfg.Attempts {
			n.failed.Add(1)
			n.cfg.Logger.Warn("notification not delivered", "url", u, "kind", m.Kind, "attempts", attempt, "err", err)
			return
		}
		t := n.cfg.Clock.NewTimer(n.cfg.Backoff.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

type permanent struct{ error }

func (n *Notifier) post(ctx context.Context, u string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return permanent{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gitorch-notify")
	if len(n.cfg.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(n.cfg.Secret, body))
	}
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return permanent{fmt.Errorf("receiver answered %s", resp.Status)}
	}
	return fmt.Errorf("receiver answered %s", resp.Status)
}

// Body is the request body of m in the configured format.
func (n *Notifier) Body(m Message) ([]byte, error) {
	if n.cfg.Format == FormatSlack {
		return json.Marshal(map[string]string{"text": slackText(m)})
	}
	return json.Marshal(m)
}

// slackText is m as one Slack message: the text, then the errors.
func slackText(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[gitorch %s] %s", m.Node, m.Text)
	for i, e := range m.Errors {
		if i == 5 {
			fmt.Fprintf(&b, "\n… and %d more", len(m.Errors)-i)
			break
		}
		b.WriteString("\n• " + e)
	}
	return b.String()
}

// Sign is the signature header's value for body: "sha256=" and the hex
// HMAC-SHA256 of body with secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
