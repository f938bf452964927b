package source

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"
)

// Keyring holds the keys whose commit signatures are trusted: OpenPGP
// public keys (ASCII-armored) and SSH public keys (authorized_keys or
// allowed_signers lines, as used with git's gpg.format=ssh).
type Keyring struct {
	pgpArmored []string
	pgp        openpgp.EntityList
	ssh        []sshKey
}

type sshKey struct {
	key     ssh.PublicKey
	comment string
}

// ParseKeyring reads keys from data, which may mix armored OpenPGP public
// key blocks and SSH public key lines; '#' starts a comment line. A file
// with no key at all is an error: verifying against nothing would refuse
// every commit.
func ParseKeyring(data []byte) (*Keyring, error) {
	k := &Keyring{}
	if err := k.Add(data); err != nil {
		return nil, err
	}
	if k.Len() == 0 {
		return nil, errors.New("keyring has no OpenPGP or SSH public key")
	}
	return k, nil
}

// Add reads more keys into k (see ParseKeyring).
func (k *Keyring) Add(data []byte) error {
	const begin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	const end = "-----END PGP PUBLIC KEY BLOCK-----"
	var rest strings.Builder
	text := string(data)
	for {
		i := strings.Index(text, begin)
		if i < 0 {
			rest.WriteString(text)
			break
		}
		j := strings.Index(text[i:], end)
		if j < 0 {
			return errors.New("keyring: OpenPGP key block has no END line")
		}
		block := text[i : i+j+len(end)]
		rest.WriteString(text[:i])
		text = text[i+j+len(end):]
		entities, err := openpgp.ReadArmoredKeyRing(strings.NewReader(block))
		if err != nil {
			return fmt.Errorf("keyring: OpenPGP key: %w", err)
		}
		k.pgp = append(k.pgp, entities...)
		k.pgpArmored = append(k.pgpArmored, block)
	}
	sc := bufio.NewScanner(strings.NewReader(rest.String()))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, comment, err := parseSSHPublicKeyLine(line)
		if err != nil {
			return fmt.Errorf("keyring: line %d: not an SSH public key or OpenPGP block: %w", n, err)
		}
		k.ssh = append(k.ssh, sshKey{key: key, comment: comment})
	}
	return sc.Err()
}

// parseSSHPublicKeyLine reads an authorized_keys line, or an
// allowed_signers line (principals first).
func parseSSHPublicKeyLine(line string) (ssh.PublicKey, string, error) {
	key, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err == nil {
		return key, comment, nil
	}
	principals, rest, ok := strings.Cut(line, " ")
	if !ok {
		return nil, "", err
	}
	key, comment, _, _, err2 := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
	if err2 != nil {
		return nil, "", err
	}
	if comment == "" {
		comment = principals
	}
	return key, comment, nil
}

// Len is the number of keys.
func (k *Keyring) Len() int { return len(k.pgp) + len(k.ssh) }

// VerifyCommit checks c's signature against the keyring and returns a
// description of the signing key. An unsigned commit is ErrUnsigned, a
// signature by a key not in the ring ErrUnknownSigner, anything else that
// does not verify ErrBadSignature.
func (k *Keyring) VerifyCommit(c *object.Commit) (string, error) {
	sig := strings.TrimSpace(c.PGPSignature)
	switch {
	case sig == "":
		return "", ErrUnsigned
	case strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----"):
		return k.verifyPGP(c)
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		payload, err := signedPayload(c)
		if err != nil {
			return "", err
		}
		return k.verifySSH(sig, payload)
	}
	return "", fmt.Errorf("%w: unsupported signature format (only OpenPGP and SSH signatures are verified)", ErrBadSignature)
}

func (k *Keyring) verifyPGP(c *object.Commit) (string, error) {
	if len(k.pgp) == 0 {
		return "", fmt.Errorf("%w: OpenPGP signature, and the keyring has no OpenPGP key", ErrUnknownSigner)
	}
	entity, err := c.Verify(strings.Join(k.pgpArmored, "\n"))
	if errors.Is(err, pgperrors.ErrUnknownIssuer) {
		return "", fmt.Errorf("%w: OpenPGP signature by an unknown key", ErrUnknownSigner)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	for name := range entity.Identities {
		return fmt.Sprintf("openpgp %X %s", entity.PrimaryKey.Fingerprint, name), nil
	}
	return fmt.Sprintf("openpgp %X", entity.PrimaryKey.Fingerprint), nil
}

// signedPayload is the commit as it was signed: without its signature.
func signedPayload(c *object.Commit) ([]byte, error) {
	var o plumbing.MemoryObject
	if err := c.EncodeWithoutSignature(&o); err != nil {
		return nil, err
	}
	rd, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// sshNamespace is the namespace git uses for commit and tag signatures.
const sshNamespace = "git"

// verifySSH checks an armored SSH signature (OpenSSH PROTOCOL.sshsig) of
// message.
func (k *Keyring) verifySSH(armored string, message []byte) (string, error) {
	block, _ := pem.Decode([]byte(armored))
	if block == nil || block.Type != "SSH SIGNATURE" {
		return "", fmt.Errorf("%w: malformed SSH signature", ErrBadSignature)
	}
	const magic = "SSHSIG"
	if !bytes.HasPrefix(block.Bytes, []byte(magic)) {
		return "", fmt.Errorf("%w: SSH signature without SSHSIG preamble", ErrBadSignature)
	}
	var sig struct {
		Version   uint32
		PublicKey []byte
		Namespace string
		Reserved  string
		Hash      string
		Signature []byte
	}
	if err := ssh.Unmarshal(block.Bytes[len(magic):], &sig); err != nil {
		return "", fmt.Errorf("%w: SSH signature: %v", ErrBadSignature, err)
	}
	if sig.Version != 1 {
		return "", fmt.Errorf("%w: SSH signature version %d", ErrBadSignature, sig.Version)
	}
	if sig.Namespace != sshNamespace {
		return "", fmt.Errorf("%w: SSH signature for namespace %q, not %q", ErrBadSignature, sig.Namespace, sshNamespace)
	}
	pub, err := ssh.ParsePublicKey(sig.PublicKey)
	if err != nil {
		return "", fmt.Errorf("%w: SSH signature key: %v", ErrBadSignature, err)
	}
	var trusted *sshKey
	for i := range k.ssh {
		if bytes.Equal(k.ssh[i].key.Marshal(), pub.Marshal()) {
			trusted = &k.ssh[i]
			break
		}
	}
	if trusted == nil {
		return "", fmt.Errorf("%w: SSH signature by %s", ErrUnknownSigner, ssh.FingerprintSHA256(pub))
	}
	var digest []byte
	switch sig.Hash {
	case "sha256":
		h := sha256.Sum256(message)
		digest = h[:]
	case "sha512":
		h := sha512.Sum512(message)
		digest = h[:]
	default:
		return "", fmt.Errorf("%w: SSH signature hash %q", ErrBadSignature, sig.Hash)
	}
	signed := append([]byte(magic), ssh.Marshal(struct {
		Namespace string
		Reserved  string
		Hash      string
		Digest    []byte
	}{sig.Namespace, sig.Reserved, sig.Hash, digest})...)
	var s ssh.Signature
	if err := ssh.Unmarshal(sig.Signature, &s); err != nil {
		return "", fmt.Errorf("%w: SSH signature blob: %v", ErrBadSignature, err)
	}
	if err := pub.Verify(signed, &s); err != nil {
		return "", fmt.Errorf("%w: SSH signature by %s does not match the commit: %v", ErrBadSignature, ssh.FingerprintSHA256(pub), err)
	}
	desc := "ssh " + ssh.FingerprintSHA256(pub)
	if trusted.comment != "" {
		desc += " " + trusted.comment
	}
	return desc, nil
}
