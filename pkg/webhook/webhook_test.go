package webhook

import (
	"errors"
	"net/http"
	"testing"
)

// GitHub's documented example (docs.github.com, "Validating webhook
// deliveries").
const (
	ghSecret    = "It's a Secret to Everybody"
	ghPayload   = "Hello, World!"
	ghSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestVerify(t *testing.T) {
	secret := []byte(ghSecret)
	body := []byte(ghPayload)
	giteaSig := ghSignature[len("sha256="):]
	flipped := []byte(ghPayload)
	flipped[0] ^= 1
	flippedSig := []byte(ghSignature)
	flippedSig[len(flippedSig)-1] = '0'
	for _, tc := range []struct {
		name string
		p    Provider
		h    http.Header
		body []byte
		want error
	}{
		{"GitHub's documented vector", GitHub, hdr("X-Hub-Signature-256", ghSignature), body, nil},
		{"generic uses GitHub's form", Generic, hdr("X-Signature-256", ghSignature), body, nil},
		{"Gitea sends the bare hex", Gitea, hdr("X-Gitea-Signature", giteaSig), body, nil},
		{"GitLab sends the secret", GitLab, hdr("X-Gitlab-Token", ghSecret), body, nil},
		{"a flipped byte of the body", GitHub, hdr("X-Hub-Signature-256", ghSignature), flipped, ErrBadSignature},
		{"a flipped byte of the signature", GitHub, hdr("X-Hub-Signature-256", string(flippedSig)), body, ErrBadSignature},
		{"no signature", GitHub, hdr(), body, ErrNoSignature},
		{"the old SHA-1 header only", GitHub, hdr("X-Hub-Signature", "sha1=abc"), body, ErrNoSignature},
		{"a signature without its sha256= prefix", GitHub, hdr("X-Hub-Signature-256", giteaSig), body, ErrBadSignature},
		{"a short signature", GitHub, hdr("X-Hub-Signature-256", "sha256=7571"), body, ErrBadSignature},
		{"not hex", Generic, hdr("X-Signature-256", "sha256=zz"), body, ErrBadSignature},
		{"GitHub's header sent to Gitea", Gitea, hdr("X-Hub-Signature-256", ghSignature), body, ErrNoSignature},
		{"Gitea's header sent to GitHub", GitHub, hdr("X-Gitea-Signature", giteaSig), body, ErrNoSignature},
		{"GitLab's token sent to generic", Generic, hdr("X-Gitlab-Token", ghSecret), body, ErrNoSignature},
		{"a wrong GitLab token", GitLab, hdr("X-Gitlab-Token", ghSecret+"x"), body, ErrBadSignature},
		{"Gitea given GitHub's prefixed form", Gitea, hdr("X-Gitea-Signature", ghSignature), body, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.p, secret, tc.h, tc.body)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	if err := Verify(GitHub, nil, hdr("X-Hub-Signature-256", Sign(nil, body)), body); err == nil {
		t.Fatal("an empty secret verified a delivery")
	}
	if got := "sha256=" + Sign(secret, body); got != ghSignature {
		t.Fatalf("Sign = %s, want %s", got, ghSignature)
	}
}

func TestParseAndDecide(t *testing.T) {
	push := `{"ref":"refs/heads/main","after":"abc","repository":{"default_branch":"main"}}`
	for _, tc := range []struct {
		name string
		p    Provider
		h    http.Header
		body string
		ref  string
		want Action
	}{
		{"a GitHub ping", GitHub, hdr("X-GitHub-Event", "ping"), `{"zen":"x"}`, "main", Pong},
		{"a GitHub push to the branch", GitHub, hdr("X-GitHub-Event", "push"), push, "main", Fetch},
		{"a GitHub push to the branch, given in full", GitHub, hdr("X-GitHub-Event", "push"), push, "refs/heads/main", Fetch},
		{"a GitHub push to another branch", GitHub, hdr("X-GitHub-Event", "push"), `{"ref":"refs/heads/dev"}`, "main", Ignore},
		{"a GitHub issue event", GitHub, hdr("X-GitHub-Event", "issues"), `{}`, "main", Ignore},
		{"the default branch when no ref is set", GitHub, hdr("X-GitHub-Event", "push"), push, "", Fetch},
		{"not the default branch when no ref is set", GitHub, hdr("X-GitHub-Event", "push"), `{"ref":"refs/heads/dev","repository":{"default_branch":"main"}}`, "", Ignore},
		{"a ref relative to the branch", GitHub, hdr("X-GitHub-Event", "push"), push, "main~1", Fetch},
		{"a pushed tag followed", GitHub, hdr("X-GitHub-Event", "push"), `{"ref":"refs/tags/v1"}`, "v1", Fetch},
		{"a GitLab push", GitLab, hdr("X-Gitlab-Event", "Push Hook"), `{"ref":"refs/heads/main","project":{"default_branch":"main"}}`, "", Fetch},
		{"a GitLab merge request", GitLab, hdr("X-Gitlab-Event", "Merge Request Hook"), `{}`, "main", Ignore},
		{"a Gitea push", Gitea, hdr("X-Gitea-Event", "push"), push, "main", Fetch},
		{"a Gitea push elsewhere", Gitea, hdr("X-Gitea-Event", "push"), `{"ref":"refs/heads/x"}`, "main", Ignore},
		{"a generic hook without a body", Generic, hdr(), ``, "main", Fetch},
		{"a generic hook naming another ref", Generic, hdr(), `{"ref":"refs/heads/x"}`, "main", Ignore},
		{"a push to a commit-pinned agent", GitHub, hdr("X-GitHub-Event", "push"), push, "0123456789abcdef0123456789abcdef01234567", Ignore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := Parse(tc.p, tc.h, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := Decide(ev, tc.ref); got != tc.want {
				t.Fatalf("Decide(%+v, %q) = %v, want %v", ev, tc.ref, got, tc.want)
			}
		})
	}
	if _, err := Parse(GitHub, hdr("X-GitHub-Event", "push"), []byte(`{"ref":`)); err == nil {
		t.Fatal("a truncated push payload parsed")
	}
}

func TestSeenSetForgetsTheOldest(t *testing.T) {
	s := newSeenSet(2)
	if !s.add("a") || !s.add("b") || s.add("a") {
		t.Fatal("a and b are new, a again is not")
	}
	s.add("c") // pushes a out
	if !s.add("a") || s.add("c") {
		t.Fatal("after c, a was forgotten and c remembered")
	}
}
