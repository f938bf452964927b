package webhook

import (
	"net/http"
	"testing"
)

// Parse reads what the Internet sends (after the signature, but a holder
// of the secret is not trusted to send sane JSON): it must never panic,
// and what it decides must follow from the ref it read.
func FuzzParse(f *testing.F) {
	f.Add("push", []byte(`{"ref":"refs/heads/main","after":"abc","repository":{"default_branch":"main"}}`), "main")
	f.Add("Push Hook", []byte(`{"ref":"refs/tags/v1","project":{"default_branch":"trunk"}}`), "")
	f.Add("ping", []byte(`{"zen":"Keep it logically awesome."}`), "main~2")
	f.Add("push", []byte(`{"ref":`), "x")
	f.Add("", []byte(``), "")
	f.Fuzz(func(t *testing.T, event string, body []byte, ref string) {
		for _, p := range Providers {
			h := http.Header{}
			h.Set("X-GitHub-Event", event)
			h.Set("X-Gitlab-Event", event)
			h.Set("X-Gitea-Event", event)
			ev, err := Parse(p, h, body)
			if err != nil {
				continue
			}
			if ev.Provider != p {
				t.Fatalf("provider %s became %s", p, ev.Provider)
			}
			a := Decide(ev, ref)
			if a == Fetch && !RefMatches(ev.Ref, ref, ev.DefaultBranch) {
				t.Fatalf("fetch for %q when following %q", ev.Ref, ref)
			}
			if a == Pong && ev.Kind != KindPing {
				t.Fatalf("pong for a %s", ev.Kind)
			}
		}
	})
}

// Verify must never panic on any header, and never accept a signature
// that is not the body's.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(ghPayload), ghSignature)
	f.Add([]byte(ghPayload), ghSignature[7:])
	f.Add([]byte(""), "sha256=")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		secret := []byte(ghSecret)
		want := Sign(secret, body)
		for _, p := range Providers {
			h := http.Header{}
			h.Set(signatureHeader(p), sig)
			if Verify(p, secret, h, body) != nil {
				continue
			}
			ok := false
			switch p {
			case GitLab:
				ok = sig == ghSecret
			case Gitea:
				ok = len(sig) == 64 && hexEqualFold(sig, want)
			default:
				ok = len(sig) == 71 && hexEqualFold(sig[7:], want)
			}
			if !ok {
				t.Fatalf("%s accepted %q for a body whose HMAC is %s", p, sig, want)
			}
		}
	})
}

func hexEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'F' {
			x += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
