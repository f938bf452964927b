package source

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gitorch/gitorch/internal/testenv"
)

// TestHTTP fetches through git http-backend behind net/http/cgi with basic
// auth, over HTTP and HTTPS with a custom CA.
func TestHTTP(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"a.yaml": "a\n"})
	up.push("main")

	base, _ := startHTTP(t, up.root, "alice", "s3cret-pass", false)
	url := base + "/repo.git"
	r := openRepo(t, t.TempDir(), Config{URL: url, Auth: Auth{Username: "alice", Password: "s3cret-pass"}})
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if s := mustSnapshot(t, r, "main"); s.Revision != c1 {
		t.Errorf("http: %s", s.Revision)
	}

	// Credentials in the URL are used, and stored nowhere.
	withCreds := strings.Replace(url, "://", "://alice:s3cret-pass@", 1)
	data := t.TempDir()
	r = openRepo(t, data, Config{URL: withCreds})
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if r.URL() != url {
		t.Errorf("URL() = %q, want %q", r.URL(), url)
	}
	cfg, err := os.ReadFile(filepath.Join(r.Dir(), "config"))
	if err != nil || strings.Contains(string(cfg), "s3cret") {
		t.Errorf("credentials stored in the cache config: %v\n%s", err, cfg)
	}

	// Wrong password: an authentication error that does not show it.
	r = openRepo(t, t.TempDir(), Config{URL: strings.Replace(url, "://", "://alice:wrong-pass@", 1)})
	err = r.Fetch(ctx)
	if !errors.Is(err, ErrAuth) || IsRetryable(err) {
		t.Errorf("wrong password: %v, want ErrAuth", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-pass") {
		t.Errorf("error shows the password: %v", err)
	}
	r = openRepo(t, t.TempDir(), Config{URL: url})
	if err := r.Fetch(ctx); !errors.Is(err, ErrAuth) {
		t.Errorf("no credentials: %v, want ErrAuth", err)
	}

	// A token is the basic auth password of x-access-token.
	tokBase, _ := startHTTP(t, up.root, "x-access-token", "tok-123456", false)
	r = openRepo(t, t.TempDir(), Config{URL: tokBase + "/repo.git", Auth: Auth{Token: "tok-123456"}})
	if err := r.Fetch(ctx); err != nil {
		t.Fatalf("token: %v", err)
	}

	// HTTPS with the server's certificate as the CA bundle.
	tlsBase, ca := startHTTP(t, up.root, "alice", "s3cret-pass", true)
	auth := Auth{Username: "alice", Password: "s3cret-pass"}
	r = openRepo(t, t.TempDir(), Config{URL: tlsBase + "/repo.git", Auth: auth})
	if err := r.Fetch(ctx); !errors.Is(err, ErrTLS) || IsRetryable(err) {
		t.Errorf("https without the CA: %v, want a certificate error", err)
	}
	auth.CABundle = ca
	r = openRepo(t, t.TempDir(), Config{URL: tlsBase + "/repo.git", Auth: auth})
	if err := r.Fetch(ctx); err != nil {
		t.Fatalf("https with CA bundle: %v", err)
	}
	if s := mustSnapshot(t, r, ""); s.Revision != c1 {
		t.Errorf("https: %s", s.Revision)
	}

	// A server error is worth retrying.
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	r = openRepo(t, t.TempDir(), Config{URL: failing.URL + "/repo.git"})
	if err := r.Fetch(ctx); !errors.Is(err, ErrUnreachable) || !IsRetryable(err) {
		t.Errorf("HTTP 503: %v, want ErrUnreachable", err)
	}

	// A missing repository.
	r = openRepo(t, t.TempDir(), Config{URL: base + "/nope.git", Auth: Auth{Username: "alice", Password: "s3cret-pass"}})
	if err := r.Fetch(ctx); !errors.Is(err, ErrRepoNotFound) || IsRetryable(err) {
		t.Errorf("missing repository: %v, want a permanent error", err)
	}
}

// sshKeygen makes a client key with the real ssh-keygen.
func sshKeygen(t *testing.T, passphrase string) (keyPEM []byte, pub ssh.PublicKey, path string) {
	t.Helper()
	testenv.RequireBinary(t, "ssh-keygen")
	path = filepath.Join(t.TempDir(), "id_ed25519")
	keygenArgs := []string{"-q", "-t", "ed25519", "-N", passphrase, "-C", "test@gitorch", "-f", path}
	runCmd(t, "", "ssh-keygen", keygenArgs...)
	keyPEM, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pubText, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err = ssh.ParseAuthorizedKey(pubText)
	if err != nil {
		t.Fatal(err)
	}
	return keyPEM, pub, path
}

// TestSSH fetches over SSH from a Go SSH server running the real
// git-upload-pack, with a passphrase-protected key and known_hosts.
func TestSSH(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	up := newUpstream(t)
	c1 := up.commit("first", map[string]string{"a.yaml": "a\n"})
	up.push("main")
	key, pub, _ := sshKeygen(t, "correct horse")
	srv := startSSH(t, up.root, pub)
	url := "ssh://git@" + srv.addr + "/repo.git"

	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(knownHostsLine(srv.addr, srv.hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := Auth{SSHKey: key, SSHKeyPassphrase: "correct horse", KnownHosts: []string{knownHosts}}
	r := openRepo(t, t.TempDir(), Config{URL: url, Auth: auth})
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if s := mustSnapshot(t, r, "main"); s.Revision != c1 || readFile(t, s.FS, "a.yaml") != "a\n" {
		t.Errorf("ssh: %s", s.Revision)
	}
	c2 := up.commit("second", map[string]string{"a.yaml": "b\n"})
	up.push("main")
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Resolve("main"); got != c2 {
		t.Errorf("ssh incremental fetch: main = %s, want %s", got, c2)
	}

	// An unknown host key is refused.
	other := filepath.Join(t.TempDir(), "known_hosts")
	_, otherPub, _ := sshKeygen(t, "")
	if err := os.WriteFile(other, []byte(knownHostsLine("127.0.0.1:1", otherPub)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := auth
	bad.KnownHosts = []string{other}
	r = openRepo(t, t.TempDir(), Config{URL: url, Auth: bad})
	if err := r.Fetch(ctx); !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "not in known_hosts") {
		t.Errorf("unknown host key: %v, want ErrHostKey", err)
	}
	// A different key for this host is refused as a mismatch.
	if err := os.WriteFile(other, []byte(knownHostsLine(srv.addr, otherPub)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = openRepo(t, t.TempDir(), Config{URL: url, Auth: bad})
	if err := r.Fetch(ctx); !errors.Is(err, ErrHostKey) {
		t.Errorf("mismatched host key: %v, want ErrHostKey", err)
	}
	// No known_hosts at all (HOME is empty) is refused before connecting.
	noKH := auth
	noKH.KnownHosts = nil
	if _, err := Open(t.TempDir(), Config{URL: url, Auth: noKH}, nil); !errors.Is(err, ErrHostKey) {
		t.Errorf("no known_hosts: %v, want ErrHostKey", err)
	}
	// Unless explicitly told to ignore host keys.
	insecure := noKH
	insecure.InsecureIgnoreHostKey = true
	r = openRepo(t, t.TempDir(), Config{URL: url, Auth: insecure})
	if err := r.Fetch(ctx); err != nil {
		t.Errorf("insecure host key: %v", err)
	}

	// Passphrase problems are clear, and the passphrase is not shown.
	wrong := auth
	wrong.SSHKeyPassphrase = "wrong horse"
	if _, err := Open(t.TempDir(), Config{URL: url, Auth: wrong}, nil); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "wrong passphrase") || strings.Contains(err.Error(), "wrong horse") {
		t.Errorf("wrong passphrase: %v", err)
	}
	none := auth
	none.SSHKeyPassphrase = ""
	if _, err := Open(t.TempDir(), Config{URL: url, Auth: none}, nil); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("missing passphrase: %v", err)
	}
	// A key the server does not accept.
	otherKey, _, _ := sshKeygen(t, "")
	stranger := auth
	stranger.SSHKey, stranger.SSHKeyPassphrase = otherKey, ""
	r = openRepo(t, t.TempDir(), Config{URL: url, Auth: stranger})
	if err := r.Fetch(ctx); !errors.Is(err, ErrAuth) {
		t.Errorf("unauthorized key: %v, want ErrAuth", err)
	}
	// Without a key file, the keys of the agent at SSH_AUTH_SOCK are used.
	testenv.RequireBinary(t, "ssh-agent")
	testenv.RequireBinary(t, "ssh-add")
	_, agentPub, agentKeyPath := sshKeygen(t, "")
	agentSrv := startSSH(t, up.root, agentPub)
	agentKH := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(agentKH, []byte(knownHostsLine(agentSrv.addr, agentSrv.hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent did not create its socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	runCmd(t, "", "ssh-add", "-q", agentKeyPath)
	r = openRepo(t, t.TempDir(), Config{URL: "ssh://git@" + agentSrv.addr + "/repo.git", Auth: Auth{KnownHosts: []string{agentKH}}})
	if err := r.Fetch(ctx); err != nil {
		t.Errorf("ssh agent: %v", err)
	}

	// scp-like addresses parse as SSH.
	if !isLocalPath("./x:y") || isLocalPath("git@host:repo.git") || isLocalPath("host:repo") || !isLocalPath("/a:b") {
		t.Error("isLocalPath misreads scp-like addresses")
	}
}

func runCmd(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	testenv.RequireBinary(t, name)
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
