// Package secrets reads and writes Secrets kept in Git encrypted in SOPS's
// file format with age recipients: the format Flux users write with the
// sops tool (a `sops:` metadata block, values
// `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]`, a MAC over the
// plaintext values), so that existing files decrypt as they are.
//
// It owns the format (parsing, decryption, MAC verification, encryption)
// and the node's age identity file. It does no other I/O and never logs:
// decrypted values are only returned to the caller.
//
// Only age key sources are implemented. A file encrypted for PGP or a
// cloud KMS alone, with several key groups (Shamir's secret sharing), or
// with comment-based encryption rules is refused with a message saying so.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxValueSize caps one encrypted value's plaintext: a Kubernetes Secret
// holds at most 1 MiB in all, so a larger value is refused before it is
// decoded.
const MaxValueSize = 1 << 20

// ErrValue is wrapped by every error about a malformed ENC[...] value.
var ErrValue = errors.New("malformed encrypted value")

const (
	encPrefix = "ENC[AES256_GCM,"
	tagSize   = 16
	nonceSize = 32 // what sops writes
	minNonce  = 12
)

// Value is one parsed ENC[AES256_GCM,...] string.
type Value struct {
	Data []byte // ciphertext without the tag
	IV   []byte
	Tag  []byte
	// Type is how sops wrote the plaintext: str, int, float, bool, bytes,
	// time or comment.
	Type string
}

// IsEncrypted reports whether s looks like a sops encrypted value (it may
// still be malformed).
func IsEncrypted(s string) bool { return strings.HasPrefix(s, encPrefix) }

var valueTypes = map[string]bool{"str": true, "int": true, "float": true, "bool": true, "bytes": true, "time": true, "comment": true}

// ParseValue parses s, the form sops writes:
// ENC[AES256_GCM,data:<base64>,iv:<base64>,tag:<base64>,type:<type>].
func ParseValue(s string) (Value, error) {
	if !IsEncrypted(s) {
		return Value{}, fmt.Errorf("%w: does not start with %s", ErrValue, encPrefix)
	}
	if !strings.HasSuffix(s, "]") {
		return Value{}, fmt.Errorf("%w: truncated (no closing ])", ErrValue)
	}
	// A base64 string four thirds the size of the cap, and a little for
	// the rest.
	if len(s) > MaxValueSize/3*4+256 {
		return Value{}, fmt.Errorf("%w: larger than %d bytes", ErrValue, MaxValueSize)
	}
	parts := strings.Split(s[len(encPrefix):len(s)-1], ",")
	if len(parts) != 4 {
		return Value{}, fmt.Errorf("%w: want data, iv, tag and type, found %d fields", ErrValue, len(parts))
	}
	var v Value
	var err error
	for i, name := range []string{"data", "iv", "tag", "type"} {
		field, ok := strings.CutPrefix(parts[i], name+":")
		if !ok {
			return Value{}, fmt.Errorf("%w: field %d is not %s:", ErrValue, i+1, name)
		}
		switch name {
		case "data":
			v.Data, err = base64.StdEncoding.DecodeString(field)
		case "iv":
			v.IV, err = base64.StdEncoding.DecodeString(field)
		case "tag":
			v.Tag, err = base64.StdEncoding.DecodeString(field)
		case "type":
			v.Type = field
		}
		if err != nil {
			return Value{}, fmt.Errorf("%w: %s: %v", ErrValue, name, err)
		}
	}
	switch {
	case len(v.IV) < minNonce:
		return Value{}, fmt.Errorf("%w: iv of %d bytes, want at least %d", ErrValue, len(v.IV), minNonce)
	case len(v.Tag) != tagSize:
		return Value{}, fmt.Errorf("%w: tag of %d bytes, want %d", ErrValue, len(v.Tag), tagSize)
	case !valueTypes[v.Type]:
		return Value{}, fmt.Errorf("%w: unknown type %q", ErrValue, v.Type)
	}
	return v, nil
}

// String is v in the form sops writes.
func (v Value) String() string {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:%s]", b64(v.Data), b64(v.IV), b64(v.Tag), v.Type)
}

// open decrypts v with the data key; aad is the value's path as sops
// writes it (each key followed by a colon, "data:password:").
func (v Value) open(key []byte, aad string) ([]byte, error) {
	gcm, err := newGCM(key, len(v.IV))
	if err != nil {
		return nil, err
	}
	sealed := make([]byte, 0, len(v.Data)+len(v.Tag))
	sealed = append(append(sealed, v.Data...), v.Tag...)
	out, err := gcm.Open(nil, v.IV, sealed, []byte(aad))
	if err != nil {
		return nil, errors.New("authentication failed (the value, its path or the data key was changed)")
	}
	return out, nil
}

// seal encrypts plaintext with a fresh nonce from rand.
func seal(key, plaintext []byte, typ, aad string, rand io.Reader) (Value, error) {
	iv := make([]byte, nonceSize)
	if _, err := io.ReadFull(rand, iv); err != nil {
		return Value{}, fmt.Errorf("nonce: %w", err)
	}
	gcm, err := newGCM(key, nonceSize)
	if err != nil {
		return Value{}, err
	}
	out := gcm.Seal(nil, iv, plaintext, []byte(aad))
	n := len(out) - tagSize
	return Value{Data: out[:n], IV: iv, Tag: out[n:], Type: typ}, nil
}

func newGCM(key []byte, nonce int) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithNonceSize(block, nonce)
}
