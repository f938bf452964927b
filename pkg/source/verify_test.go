package source

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gitorch/gitorch/internal/testenv"
)

// gpgKey generates a signing key in the isolated GNUPGHOME and returns its
// fingerprint and armored public key.
func gpgKey(t *testing.T, email string) (fpr, armored string) {
	t.Helper()
	testenv.RequireBinary(t, "gpg")
	testenv.RequireBinary(t, "gpgconf")
	runCmd(t, "", "gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", "Signer <"+email+">", "ed25519", "sign", "never")
	t.Cleanup(func() { _ = exec.Command("gpgconf", "--kill", "gpg-agent").Run() })
	for _, line := range strings.Split(runCmd(t, "", "gpg", "--batch", "--with-colons", "--list-keys", email), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		t.Fatalf("no fingerprint for %s", email)
	}
	return fpr, runCmd(t, "", "gpg", "--batch", "--armor", "--export", fpr)
}

// TestSignatures signs commits with the real gpg and ssh-keygen (through
// git commit -S) and checks which ones a keyring accepts.
func TestSignatures(t *testing.T) {
	isolate(t)
	testenv.RequireBinary(t, "ssh-keygen")
	ctx := context.Background()
	up := newUpstream(t)
	trusted, trustedKey := gpgKey(t, "trusted@example.com")
	stranger, _ := gpgKey(t, "stranger@example.com")
	_, _, sshTrustedPath := sshKeygen(t, "")
	_, _, sshStrangerPath := sshKeygen(t, "")

	pgp := func(fpr string) []string { return []string{"-S" + fpr} }
	commits := map[string]string{}
	commits["pgp-trusted"] = up.commit("pgp trusted", map[string]string{"a.yaml": "1\n"}, pgp(trusted)...)
	commits["pgp-stranger"] = up.commit("pgp stranger", map[string]string{"a.yaml": "2\n"}, pgp(stranger)...)
	commits["unsigned"] = up.commit("unsigned", map[string]string{"a.yaml": "3\n"})
	gitCmd(t, up.work, "config", "gpg.format", "ssh")
	gitCmd(t, up.work, "config", "user.signingkey", sshTrustedPath)
	commits["ssh-trusted"] = up.commit("ssh trusted", map[string]string{"a.yaml": "4\n"}, "-S")
	gitCmd(t, up.work, "config", "user.signingkey", sshStrangerPath)
	commits["ssh-stranger"] = up.commit("ssh stranger", map[string]string{"a.yaml": "5\n"}, "-S")
	gitCmd(t, up.work, "config", "--unset", "gpg.format")
	up.push("main")

	// Tamper with signed commits: same signature, different message.
	for _, name := range []string{"pgp-trusted", "ssh-trusted"} {
		raw := gitCmd(t, up.work, "cat-file", "commit", commits[name])
		forged := strings.Replace(raw, strings.ReplaceAll(name, "-", " "), "forged", 1)
		cmd := exec.Command("git", "hash-object", "-t", "commit", "-w", "--stdin")
		cmd.Dir = up.work
		cmd.Stdin = strings.NewReader(forged + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		h := strings.TrimSpace(string(out))
		gitCmd(t, up.work, "push", "-q", "origin", h+":refs/heads/forged-"+name)
		commits["forged-"+name] = h
	}

	sshPub, err := os.ReadFile(sshTrustedPath + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	ringText := "# deployers\n" + trustedKey + "\n" + "ops@example.com " + string(sshPub)
	ring, err := ParseKeyring([]byte(ringText))
	if err != nil {
		t.Fatal(err)
	}
	if ring.Len() != 2 {
		t.Fatalf("keyring has %d keys, want 2", ring.Len())
	}

	d := startGitDaemon(t, up.root)
	r := openRepo(t, t.TempDir(), Config{URL: d.url("repo.git"), Verify: ring})
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]error{
		"pgp-trusted":        nil,
		"ssh-trusted":        nil,
		"unsigned":           ErrUnsigned,
		"pgp-stranger":       ErrUnknownSigner,
		"ssh-stranger":       ErrUnknownSigner,
		"forged-pgp-trusted": ErrBadSignature,
		"forged-ssh-trusted": ErrBadSignature,
	} {
		s, err := r.Snapshot(ctx, commits[name])
		if want == nil {
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if s.Signer == "" {
				t.Errorf("%s: no signer reported", name)
			}
			t.Logf("%s: signed by %s", name, s.Signer)
			continue
		}
		if !errors.Is(err, want) || !strings.Contains(err.Error(), commits[name]) {
			t.Errorf("%s: %v, want %v naming the commit", name, err, want)
		}
	}

	// Without a keyring nothing is checked.
	r = openRepo(t, t.TempDir(), Config{URL: d.url("repo.git")})
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Snapshot(ctx, commits["unsigned"]); err != nil {
		t.Errorf("unsigned without keyring: %v", err)
	}

	if _, err := ParseKeyring([]byte("# nothing\n")); err == nil {
		t.Error("empty keyring accepted")
	}
	if _, err := ParseKeyring([]byte("not a key\n")); err == nil {
		t.Error("garbage keyring accepted")
	}
}
