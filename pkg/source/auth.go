package source

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// Auth holds the credentials and trust settings for a remote. Secrets are
// given as values: reading them from files or the environment is the
// caller's business, so that they never need to be on a command line.
type Auth struct {
	// Username and Password are HTTP basic auth credentials. A URL's own
	// user information (https://user:pass@host/...) is used when these are
	// empty, and is never stored in the cache or printed.
	Username string
	Password string
	// Token is an HTTP access token, sent as the basic auth password with
	// Username, or "x-access-token" when Username is empty (accepted by
	// GitHub, GitLab and Gitea).
	Token string
	// CABundle is PEM certificates trusted for HTTPS in addition to the
	// system pool.
	CABundle []byte

	// SSHKey is a PEM or OpenSSH private key; SSHKeyPassphrase decrypts it
	// when it is protected. Without a key, the SSH agent at SSH_AUTH_SOCK is
	// used if there is one.
	SSHKey           []byte
	SSHKeyPassphrase string
	// KnownHosts are known_hosts files checked for the SSH server's key.
	// Empty means $SSH_KNOWN_HOSTS, ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts, those that exist. An unknown or mismatched
	// host key is an error (ErrHostKey).
	KnownHosts []string
	// InsecureIgnoreHostKey accepts any SSH host key. It makes the
	// connection open to interception: for tests and throwaway setups only.
	InsecureIgnoreHostKey bool
}

// secrets lists the values that must never appear in messages.
func (a Auth) secrets() []string {
	return []string{a.Password, a.Token, a.SSHKeyPassphrase}
}

// remote is a parsed remote URL with the credentials moved out of it.
type remote struct {
	url      string // as given to go-git, without user information for HTTP(S)
	display  string // for messages and logs
	endpoint *transport.Endpoint
}

// parseRemote normalises rawURL: local paths become absolute (so that the
// cache key does not depend on the working directory), and HTTP(S) user
// information moves into auth.
func parseRemote(rawURL string, auth *Auth) (remote, error) {
	if rawURL == "" {
		return remote{}, errors.New("no repository URL")
	}
	u := rawURL
	if isLocalPath(u) {
		abs, err := filepath.Abs(u)
		if err != nil {
			return remote{}, fmt.Errorf("repository path %s: %w", u, err)
		}
		u = abs
	}
	if pu, err := url.Parse(u); err == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.User != nil {
		if auth.Username == "" && auth.Password == "" && auth.Token == "" {
			auth.Username = pu.User.Username()
			auth.Password, _ = pu.User.Password()
		}
		pu.User = nil
		u = pu.String()
	}
	ep, err := transport.NewEndpoint(u)
	if err != nil {
		return remote{}, fmt.Errorf("repository URL %s: %w", Redact(u), err)
	}
	switch ep.Protocol {
	case "file", "git", "http", "https", "ssh":
	default:
		return remote{}, fmt.Errorf("repository URL %s: unsupported protocol %q (use a path, file://, git://, http(s):// or ssh://)", Redact(u), ep.Protocol)
	}
	return remote{url: u, display: Redact(u), endpoint: ep}, nil
}

// isLocalPath reports whether s names a directory rather than a URL or an
// scp-like SSH address (user@host:path).
func isLocalPath(s string) bool {
	if strings.Contains(s, "://") {
		return false
	}
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") {
		return true
	}
	colon := strings.Index(s, ":")
	slash := strings.Index(s, "/")
	// host:path is SSH when the colon comes before any slash.
	return colon < 0 || (slash >= 0 && slash < colon)
}

// authMethod builds the go-git credentials for the remote's protocol.
func authMethod(r remote, a Auth) (transport.AuthMethod, error) {
	switch r.endpoint.Protocol {
	case "http", "https":
		if a.Token != "" {
			user := a.Username
			if user == "" {
				user = "x-access-token"
			}
			return &githttp.BasicAuth{Username: user, Password: a.Token}, nil
		}
		if a.Username != "" || a.Password != "" {
			return &githttp.BasicAuth{Username: a.Username, Password: a.Password}, nil
		}
		return nil, nil
	case "ssh":
		return sshAuth(r.endpoint, a)
	}
	return nil, nil
}

func sshAuth(ep *transport.Endpoint, a Auth) (transport.AuthMethod, error) {
	user := ep.User
	if user == "" {
		user = "git"
	}
	hostKey, algos, err := hostKeyCheck(ep, a)
	if err != nil {
		return nil, err
	}
	helper := gitssh.HostKeyCallbackHelper{HostKeyCallback: hostKey, HostKeyAlgorithms: algos}
	if len(a.SSHKey) == 0 {
		if os.Getenv("SSH_AUTH_SOCK") == "" {
			return nil, &kindError{ErrAuth, "ssh remote needs a private key (--ssh-key-file) or an SSH agent (SSH_AUTH_SOCK)", nil}
		}
		agent, err := gitssh.NewSSHAgentAuth(user)
		if err != nil {
			return nil, &kindError{ErrAuth, "ssh agent", err}
		}
		agent.HostKeyCallbackHelper = helper
		return agent, nil
	}
	signer, err := parseSSHKey(a.SSHKey, a.SSHKeyPassphrase)
	if err != nil {
		return nil, err
	}
	return &gitssh.PublicKeys{User: user, Signer: signer, HostKeyCallbackHelper: helper}, nil
}

func parseSSHKey(key []byte, passphrase string) (ssh.Signer, error) {
	if passphrase != "" {
		signer, err := ssh.ParsePrivateKeyWithPassphrase(key, []byte(passphrase))
		if err != nil {
			if errors.Is(err, x509.IncorrectPasswordError) {
				return nil, &kindError{ErrAuth, "ssh private key: wrong passphrase", nil}
			}
			// An unprotected key given a passphrase still works.
			if s, err2 := ssh.ParsePrivateKey(key); err2 == nil {
				return s, nil
			}
			return nil, &kindError{ErrAuth, "ssh private key", err}
		}
		return signer, nil
	}
	signer, err := ssh.ParsePrivateKey(key)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, &kindError{ErrAuth, "ssh private key is protected by a passphrase: give it with --ssh-key-passphrase-file or GITORCH_SSH_KEY_PASSPHRASE", nil}
	}
	if err != nil {
		return nil, &kindError{ErrAuth, "ssh private key", err}
	}
	return signer, nil
}

// hostKeyCheck returns the host key callback for ep and the host key
// algorithms that known_hosts allows for it, so that the server is asked for
// a key type we can check.
func hostKeyCheck(ep *transport.Endpoint, a Auth) (ssh.HostKeyCallback, []string, error) {
	if a.InsecureIgnoreHostKey {
		return ssh.InsecureIgnoreHostKey(), nil, nil
	}
	files := a.KnownHosts
	if len(files) == 0 {
		files = defaultKnownHosts()
		if len(files) == 0 {
			return nil, nil, &kindError{ErrHostKey, "no known_hosts file to check the ssh host key: give one with --ssh-known-hosts (ssh-keyscan -p PORT HOST > FILE)", nil}
		}
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return nil, nil, &kindError{ErrHostKey, "known_hosts", err}
		}
	}
	db, err := knownhosts.NewDB(files...)
	if err != nil {
		return nil, nil, &kindError{ErrHostKey, "known_hosts", err}
	}
	port := ep.Port
	if port == 0 {
		port = 22
	}
	hostPort := net.JoinHostPort(ep.Host, strconv.Itoa(port))
	return db.HostKeyCallback(), db.HostKeyAlgorithms(hostPort), nil
}

func defaultKnownHosts() []string {
	var candidates []string
	if env := os.Getenv("SSH_KNOWN_HOSTS"); env != "" {
		candidates = append(candidates, filepath.SplitList(env)...)
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".ssh", "known_hosts"))
	}
	candidates = append(candidates, "/etc/ssh/ssh_known_hosts")
	var out []string
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			out = append(out, c)
		}
	}
	return out
}
