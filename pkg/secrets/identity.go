package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"filippo.io/age"
)

// ErrKeyFilePermissions: an identity file that others than its owner can
// read, refused as ssh refuses such a private key.
var ErrKeyFilePermissions = errors.New("identity file permissions too open")

// ParseRecipient parses an age public key: age1... (X25519) or age1pq1...
// (the post-quantum hybrid).
func ParseRecipient(s string) (age.Recipient, error) {
	rs, err := age.ParseRecipients(strings.NewReader(s))
	if err != nil {
		return nil, fmt.Errorf("recipient %q: %w", s, err)
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("recipient %q: want one age public key", s)
	}
	return rs[0], nil
}

// ReadIdentityFile reads age identities (AGE-SECRET-KEY-1... lines, # for
// comments, as age-keygen writes them) from path. A file readable or
// writable by its group or others is refused.
func ReadIdentityFile(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is %04o; it must be accessible by its owner only (chmod 600 %s)", ErrKeyFilePermissions, path, perm, path)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(&limited{f, 1 << 16}); err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	ids, err := age.ParseIdentities(&b)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	return ids, nil
}

type limited struct {
	f interface{ Read([]byte) (int, error) }
	n int
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("larger than 64 KiB")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= n
	return n, err
}

// Recipient is the public key of each identity that has one.
func Recipient(id age.Identity) (string, bool) {
	switch id := id.(type) {
	case *age.X25519Identity:
		return id.Recipient().String(), true
	case *age.HybridIdentity:
		return id.Recipient().String(), true
	}
	return "", false
}

// WriteNewIdentity generates an X25519 identity and writes it to path
// (mode 0600; an existing file is left alone and is an error), in the
// format age-keygen writes. It returns the public key.
func WriteNewIdentity(path string, now time.Time) (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	pub := id.Recipient().String()
	body := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", now.Format(time.RFC3339), pub, id.String())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%s exists; gitorch does not overwrite an identity", path)
		}
		return "", err
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return pub, f.Close()
}
