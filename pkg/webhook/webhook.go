// Package webhook receives the push notifications of Git hosts (GitHub,
// GitLab, Gitea and a generic HMAC-signed form) and turns the ones that
// matter into a request to fetch now.
//
// It owns the security rules of a receiver that the Internet can reach:
// a delivery is authenticated with the shared secret before anything in
// it is parsed, its body is read with a cap (and never held beyond it),
// deliveries already seen are not acted on twice, and each source is rate
// limited. Deciding is pure (Verify, Parse, Decide); Receiver is the
// http.Handler around it. The package does not fetch: it calls the
// trigger it is given, which must not block (the agent's Sync coalesces
// requests, so a burst of hooks costs at most one fetch after the one
// running).
package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Provider is a kind of Git host, as named in the hook's path.
type Provider string

const (
	GitHub  Provider = "github"
	GitLab  Provider = "gitlab"
	Gitea   Provider = "gitea"
	Generic Provider = "generic"
)

// Providers are the providers served, in the order docs list them.
var Providers = []Provider{GitHub, GitLab, Gitea, Generic}

// Known reports whether p is a provider served.
func Known(p Provider) bool {
	for _, q := range Providers {
		if p == q {
			return true
		}
	}
	return false
}

// Verification errors (a 401).
var (
	ErrNoSignature  = errors.New("no signature")
	ErrBadSignature = errors.New("signature does not match")
)

// signatureHeader is the header carrying each provider's proof.
func signatureHeader(p Provider) string {
	switch p {
	case GitHub:
		return "X-Hub-Signature-256"
	case GitLab:
		return "X-Gitlab-Token"
	case Gitea:
		return "X-Gitea-Signature"
	default:
		return "X-Signature-256"
	}
}

// deliveryHeader is the header carrying each provider's delivery ID.
func deliveryHeader(p Provider) string {
	switch p {
	case GitHub:
		return "X-GitHub-Delivery"
	case GitLab:
		return "X-Gitlab-Event-UUID"
	case Gitea:
		return "X-Gitea-Delivery"
	default:
		return "X-Delivery-ID"
	}
}

// Sign is the HMAC-SHA256 of body with secret, in hex (what GitHub sends
// after "sha256=", and Gitea as is).
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks that body was sent by a holder of secret, by provider p's
// rule: GitHub and generic send "sha256=" and the HMAC-SHA256 of the body
// in hex, Gitea the HMAC alone, GitLab the secret itself. Comparisons are
// in constant time. An empty secret verifies nothing.
func Verify(p Provider, secret []byte, h http.Header, body []byte) error {
	if len(secret) == 0 {
		return errors.New("no webhook secret configured")
	}
	name := signatureHeader(p)
	got := h.Get(name)
	if got == "" {
		return fmt.Errorf("%w: header %s is missing", ErrNoSignature, name)
	}
	if p == GitLab {
		if subtle.ConstantTimeCompare([]byte(got), secret) != 1 {
			return fmt.Errorf("%w: %s", ErrBadSignature, name)
		}
		return nil
	}
	hexSig := got
	if p != Gitea {
		var ok bool
		if hexSig, ok = strings.CutPrefix(got, "sha256="); !ok {
			return fmt.Errorf("%w: %s must be sha256=<hex>", ErrBadSignature, name)
		}
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil || len(sig) != sha256.Size {
		return fmt.Errorf("%w: %s is not a hex SHA-256 HMAC", ErrBadSignature, name)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return fmt.Errorf("%w: %s", ErrBadSignature, name)
	}
	return nil
}

// Kind is what a delivery is about.
type Kind string

const (
	KindPing  Kind = "ping"
	KindPush  Kind = "push"
	KindOther Kind = "other"
)

// Event is what a verified delivery says.
type Event struct {
	Provider Provider
	Kind     Kind
	// Name is the provider's own name of the event (X-GitHub-Event ...).
	Name string
	// Ref is the ref pushed ("refs/heads/main"), After its new commit,
	// DefaultBranch the repository's default branch when the payload
	// says it; all empty when the payload does not say.
	Ref, After, DefaultBranch string
	// Delivery is the provider's ID of this delivery ("" if none).
	Delivery string
}

// pushPayload is the part of a push payload read: the three providers
// name these fields alike (GitLab's default branch is under project).
type pushPayload struct {
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Repository struct {
		DefaultBranch string `json:"default_branch"`
	} `json:"repository"`
	Project struct {
		DefaultBranch string `json:"default_branch"`
	} `json:"project"`
}

// Parse reads a verified delivery of provider p. Only push payloads are
// decoded; a body that is not JSON is an error for them.
func Parse(p Provider, h http.Header, body []byte) (Event, error) {
	ev := Event{Provider: p, Delivery: h.Get(deliveryHeader(p))}
	switch p {
	case GitHub:
		ev.Name = h.Get("X-GitHub-Event")
		switch ev.Name {
		case "ping":
			ev.Kind = KindPing
		case "push":
			ev.Kind = KindPush
		default:
			ev.Kind = KindOther
		}
	case GitLab:
		ev.Name = h.Get("X-Gitlab-Event")
		switch ev.Name {
		case "Push Hook", "Tag Push Hook":
			ev.Kind = KindPush
		default:
			ev.Kind = KindOther
		}
	case Gitea:
		ev.Name = h.Get("X-Gitea-Event")
		switch ev.Name {
		case "push":
			ev.Kind = KindPush
		default:
			ev.Kind = KindOther
		}
	default:
		// A generic hook is a request to fetch; a JSON body may name
		// the ref it is about.
		ev.Name, ev.Kind = "generic", KindPush
		if len(bytes.TrimSpace(body)) == 0 {
			return ev, nil
		}
	}
	if ev.Kind != KindPush {
		return ev, nil
	}
	var pl pushPayload
	if err := json.Unmarshal(body, &pl); err != nil {
		return ev, fmt.Errorf("%s %s payload: %w", p, ev.Name, err)
	}
	ev.Ref, ev.After = pl.Ref, pl.After
	ev.DefaultBranch = pl.Repository.DefaultBranch
	if ev.DefaultBranch == "" {
		ev.DefaultBranch = pl.Project.DefaultBranch
	}
	return ev, nil
}

// Action is what a receiver does with a delivery.
type Action int

const (
	// Ignore: another branch or event; answered 202.
	Ignore Action = iota
	// Pong: a ping, answered 200.
	Pong
	// Fetch: the followed ref may have moved.
	Fetch
)

// Decide says what to do with ev for an agent following ref (as given to
// --ref: a branch, a tag, "" for the remote's default branch, or a commit
// or expression that no push moves).
func Decide(ev Event, ref string) Action {
	switch ev.Kind {
	case KindPing:
		return Pong
	case KindPush:
		if RefMatches(ev.Ref, ref, ev.DefaultBranch) {
			return Fetch
		}
	}
	return Ignore
}

// RefMatches reports whether a push to pushed concerns an agent following
// ref. An unknown pushed ref (a generic hook without one) matches; ""
// follows the default branch, so it matches that, or anything when the
// payload does not name the default branch. A ref such as main~1 moves
// with main.
func RefMatches(pushed, ref, defaultBranch string) bool {
	if pushed == "" {
		return true
	}
	if i := strings.IndexAny(ref, "~^@"); i >= 0 {
		ref = ref[:i]
	}
	if ref == "" || ref == "HEAD" {
		if defaultBranch == "" {
			return true
		}
		ref = defaultBranch
	}
	return pushed == ref || pushed == "refs/heads/"+ref || pushed == "refs/tags/"+ref
}
