package source

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gitorch/gitorch/internal/testenv"
)

// isolate points git and gpg at empty configuration in temp directories,
// so that nothing on the machine is read or changed.
func isolate(tb testing.TB) string {
	tb.Helper()
	testenv.RequireBinary(tb, "git")
	home := tb.TempDir()
	tb.Setenv("HOME", home)
	tb.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	tb.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, "gitconfig"))
	tb.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	tb.Setenv("GNUPGHOME", filepath.Join(home, "gnupg"))
	tb.Setenv("SSH_AUTH_SOCK", "")
	tb.Setenv("SSH_KNOWN_HOSTS", "")
	for _, v := range []string{"GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"} {
		tb.Setenv(v, "Test Author")
	}
	for _, v := range []string{"GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"} {
		tb.Setenv(v, "author@example.com")
	}
	if err := os.MkdirAll(filepath.Join(home, "gnupg"), 0o700); err != nil {
		tb.Fatal(err)
	}
	return home
}

// git runs the git CLI in dir and returns its trimmed output.
func gitCmd(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// upstream is a bare repository served by the test's servers, and a work
// tree that pushes to it.
type upstream struct {
	tb   testing.TB
	root string // directory that servers export
	bare string // root/repo.git
	work string
}

func newUpstream(tb testing.TB) *upstream {
	tb.Helper()
	root := tb.TempDir()
	u := &upstream{tb: tb, root: root, bare: filepath.Join(root, "repo.git"), work: tb.TempDir()}
	gitCmd(tb, root, "init", "-q", "--bare", "-b", "main", u.bare)
	gitCmd(tb, u.work, "init", "-q", "-b", "main")
	gitCmd(tb, u.work, "remote", "add", "origin", u.bare)
	return u
}

// commit writes files (empty content deletes), commits with extra git
// commit args, and returns the new commit's SHA. It does not push.
func (u *upstream) commit(msg string, files map[string]string, extra ...string) string {
	u.tb.Helper()
	for name, content := range files {
		p := filepath.Join(u.work, name)
		if content == "" {
			gitCmd(u.tb, u.work, "rm", "-q", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			u.tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			u.tb.Fatal(err)
		}
		gitCmd(u.tb, u.work, "add", name)
	}
	args := append([]string{"commit", "-q", "--allow-empty", "-m", msg}, extra...)
	gitCmd(u.tb, u.work, args...)
	return gitCmd(u.tb, u.work, "rev-parse", "HEAD")
}

func (u *upstream) push(args ...string) {
	u.tb.Helper()
	gitCmd(u.tb, u.work, append([]string{"push", "-q", "origin"}, args...)...)
}

// waitListening polls until addr accepts connections or the deadline.
func waitListening(tb testing.TB, addr string, exited <-chan struct{}) bool {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	tb.Fatalf("nothing listens on %s after 10s", addr)
	return false
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// gitDaemon is Debian's git daemon serving a directory on 127.0.0.1.
type gitDaemon struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startGitDaemon(tb testing.TB, root string) *gitDaemon {
	tb.Helper()
	for try := 0; try < 5; try++ {
		port := freePort(tb)
		cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--informative-errors",
			"--base-path="+root, "--listen=127.0.0.1", "--port="+strconv.Itoa(port), root)
		// A file, not a pipe: the daemon's children inherit stderr and would
		// keep a pipe open after the daemon is killed.
		logPath := filepath.Join(tb.TempDir(), "daemon.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			tb.Fatal(err)
		}
		cmd.Stderr = logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err = cmd.Start()
		logFile.Close()
		if err != nil {
			tb.Fatalf("git daemon: %v", err)
		}
		d := &gitDaemon{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(d.done) }()
		if waitListening(tb, d.addr, d.done) {
			tb.Cleanup(d.stop)
			return d
		}
		msg, _ := os.ReadFile(logPath)
		tb.Logf("git daemon on port %d exited (%s); trying another port", port, strings.TrimSpace(string(msg)))
	}
	tb.Fatal("git daemon did not start")
	return nil
}

func (d *gitDaemon) url(repo string) string { return "git://" + d.addr + "/" + repo }

// stop kills the daemon and the children serving connections (its process
// group). Calling it twice is harmless.
func (d *gitDaemon) stop() {
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
}

// startHTTP serves root with git http-backend through net/http/cgi,
// requiring basic auth user:pass. With tls it serves HTTPS and returns the
// server's certificate as PEM.
func startHTTP(tb testing.TB, root, user, pass string, useTLS bool) (baseURL string, caPEM []byte) {
	tb.Helper()
	execPath := gitCmd(tb, root, "--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + os.Getenv("HOME"),
		},
		InheritEnv: []string{"PATH", "GIT_CONFIG_GLOBAL"},
		Stderr:     io.Discard,
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	})
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(h)
		caPEM = pemCert(srv.Certificate().Raw)
	} else {
		srv = httptest.NewServer(h)
	}
	tb.Cleanup(srv.Close)
	return srv.URL, caPEM
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// sshServer is a Go SSH server on 127.0.0.1 that runs Debian's real
// git-upload-pack for "exec git-upload-pack '<path>'" requests, the way
// hosting services do.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
}

func startSSH(tb testing.TB, root string, authorized ssh.PublicKey) *sshServer {
	tb.Helper()
	testenv.RequireBinary(tb, "git-upload-pack")
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveSSHConn(c, cfg, root)
			}()
		}
	}()
	return &sshServer{addr: ln.Addr().String(), hostKey: hostSigner.PublicKey()}
}

func serveSSHConn(c net.Conn, cfg *ssh.ServerConfig, root string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	sconn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sconn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSession(ch, chReqs, root)
	}
}

func serveSession(ch ssh.Channel, reqs <-chan *ssh.Request, root string) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			_ = req.Reply(false, nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			_ = req.Reply(false, nil)
			return
		}
		prog, arg, _ := strings.Cut(payload.Command, " ")
		repo := filepath.Join(root, filepath.Clean("/"+strings.Trim(arg, "'")))
		if prog != "git-upload-pack" {
			_ = req.Reply(false, nil)
			return
		}
		_ = req.Reply(true, nil)
		cmd := exec.Command("git-upload-pack", repo)
		stdin, _ := cmd.StdinPipe()
		cmd.Stdout = ch
		cmd.Stderr = ch.Stderr()
		status := uint32(0)
		if err := cmd.Start(); err != nil {
			status = 127
		} else {
			go func() { _, _ = io.Copy(stdin, ch); stdin.Close() }()
			if err := cmd.Wait(); err != nil {
				status = 1
			}
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], status)
		_, _ = ch.SendRequest("exit-status", false, b[:])
		return
	}
}

// knownHostsLine is the known_hosts entry for a server on a port.
func knownHostsLine(addr string, key ssh.PublicKey) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("[%s]:%s %s", host, port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
}
