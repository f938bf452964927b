package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Sentinel errors for decisions; test with errors.Is. Every error this
// package returns also carries context (the remote, the ref, the path).
var (
	// ErrUnreachable: the remote could not be reached (connection refused,
	// DNS, timeout, server error). Worth retrying: see IsRetryable.
	ErrUnreachable = errors.New("remote unreachable")
	// ErrAuth: the remote refused the credentials, or none were given.
	ErrAuth = errors.New("authentication failed")
	// ErrHostKey: the SSH server's host key is unknown or does not match
	// known_hosts.
	ErrHostKey = errors.New("ssh host key not trusted")
	// ErrTLS: the HTTPS server's certificate is not trusted (give its CA
	// bundle).
	ErrTLS = errors.New("tls certificate not trusted")
	// ErrRepoNotFound: the remote has no such repository.
	ErrRepoNotFound = errors.New("repository not found")
	// ErrRefNotFound: no branch, tag or fetched commit has that name.
	ErrRefNotFound = errors.New("ref not found")
	// ErrPathNotFound: the configured path is not a directory at that
	// revision.
	ErrPathNotFound = errors.New("path not found")
	// ErrInvalidPath: the configured path is absolute or leaves the
	// repository ("..").
	ErrInvalidPath = errors.New("invalid path")
	// ErrUnsigned: signature verification is on and the commit has no
	// signature.
	ErrUnsigned = errors.New("commit is not signed")
	// ErrUnknownSigner: the commit is signed by a key that is not in the
	// keyring.
	ErrUnknownSigner = errors.New("commit is signed by a key not in the keyring")
	// ErrBadSignature: the signature does not verify (tampered commit,
	// wrong namespace, malformed or unsupported signature).
	ErrBadSignature = errors.New("commit signature is not valid")
	// ErrCorrupt: the cache is damaged. Fetch re-clones it.
	ErrCorrupt = errors.New("cache corrupt")
	// ErrSymlink: the name is a symbolic link in the repository; links are
	// never followed.
	ErrSymlink = errors.New("symbolic link in the repository is not followed")
	// ErrSubmodule: the name is a submodule; submodules are not fetched.
	ErrSubmodule = errors.New("submodule is not fetched")
)

// IsRetryable reports whether err is worth retrying later with backoff:
// the remote was unreachable. Authentication, host key, missing ref and
// signature errors are not: retrying cannot fix them.
func IsRetryable(err error) bool { return errors.Is(err, ErrUnreachable) }

// kindError attaches a sentinel to an underlying error without losing it.
type kindError struct {
	kind error
	msg  string
	err  error
}

func (e *kindError) Error() string {
	if e.err == nil {
		return e.msg
	}
	inner := e.err.Error()
	if strings.HasPrefix(inner, e.msg) {
		return inner
	}
	return e.msg + ": " + inner
}

func (e *kindError) Unwrap() []error {
	if e.err == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.err}
}

// classifyRemote wraps an error from talking to the remote with the
// sentinel that says what to do about it.
func classifyRemote(err error) error {
	var keyErr *knownhosts.KeyError
	var revoked *knownhosts.RevokedError
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var urlErr *url.Error
	var certErr *tls.CertificateVerificationError
	var authorityErr x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var invalidErr x509.CertificateInvalidError
	switch {
	case errors.As(err, &keyErr):
		if len(keyErr.Want) == 0 {
			return &kindError{ErrHostKey, "ssh host key is not in known_hosts (add it with ssh-keyscan, or configure --ssh-known-hosts)", err}
		}
		return &kindError{ErrHostKey, "ssh host key does NOT match known_hosts: someone may be intercepting the connection, or the server's key changed", err}
	case errors.As(err, &revoked):
		return &kindError{ErrHostKey, "ssh host key is revoked in known_hosts", err}
	case errors.As(err, &certErr), errors.As(err, &authorityErr), errors.As(err, &hostnameErr), errors.As(err, &invalidErr):
		return &kindError{ErrTLS, "tls certificate of the server is not trusted (give its CA with --git-ca-file)", err}
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(err.Error(), "unable to authenticate"):
		return &kindError{ErrAuth, "authentication failed", err}
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return &kindError{ErrRepoNotFound, "repository not found", err}
	case httpStatus(err) >= 500:
		return &kindError{ErrUnreachable, "remote unreachable", err}
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &opErr), errors.As(err, &dnsErr), errors.As(err, &netErr), errors.As(err, &urlErr):
		return &kindError{ErrUnreachable, "remote unreachable", err}
	}
	return err
}

// httpStatus digs the HTTP status out of go-git's error, which does not
// unwrap; 0 if there is none.
func httpStatus(err error) int {
	var httpErr *githttp.Err
	if errors.As(err, &httpErr) && httpErr.Response != nil {
		return httpErr.Response.StatusCode
	}
	var unexpected *plumbing.UnexpectedError
	if errors.As(err, &unexpected) && errors.As(unexpected.Err, &httpErr) && httpErr.Response != nil {
		return httpErr.Response.StatusCode
	}
	return 0
}

// userinfoRE matches the user information of a URL inside free text.
var userinfoRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)

// Redact returns rawURL without its user information, for messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil || u.Scheme == "" {
		return userinfoRE.ReplaceAllString(rawURL, "$1")
	}
	u.User = nil
	return u.String()
}

// scrubbed hides secrets and URL user information in an error's text while
// keeping the error chain for errors.Is and errors.As.
type scrubbed struct {
	err     error
	secrets []string
}

func (e *scrubbed) Error() string {
	s := userinfoRE.ReplaceAllString(e.err.Error(), "$1")
	for _, secret := range e.secrets {
		// Very short secrets would blank out ordinary letters; they are
		// never put into messages in the first place.
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}

func (e *scrubbed) Unwrap() error { return e.err }

func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var s *scrubbed
	if errors.As(err, &s) {
		return err
	}
	return &scrubbed{err: err, secrets: secrets}
}
