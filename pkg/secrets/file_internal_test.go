package secrets

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// A value whose type does not fit its plaintext is refused without the
// plaintext in the error, which reaches status and logs.
func TestTypeMismatchDoesNotQuoteTheValue(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encrypt([]byte("kind: Secret\nstringData:\n  n: 5\n"), []string{id.Recipient().String()}, SecretRules, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(enc)
	if err != nil {
		t.Fatal(err)
	}
	key, err := f.dataKey([]age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"int", "float", "bool"} {
		v, err := seal(key, []byte("hunter2"), typ, "stringData:n:", rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		old := f.leaves[1].node.Value
		if !IsEncrypted(old) {
			t.Fatalf("leaf %v is not the encrypted one", f.leaves[1].path)
		}
		f.leaves[1].node.Value = v.String()
		_, err = f.Decrypt(id)
		f.leaves[1].node.Value = old
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("type %s: err = %v, want refused without the value", typ, err)
		}
	}
}
