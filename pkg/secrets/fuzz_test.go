package secrets_test

import (
	"os"
	"testing"

	"filippo.io/age"

	"github.com/gitorch/gitorch/pkg/secrets"
)

func FuzzParseValue(f *testing.F) {
	for _, s := range []string{
		"ENC[AES256_GCM,data:8CvE,iv:tjchf/lmMpXDOA1tLE/N4oY9IqJIzfQ/7NlvQlDUtoA=,tag:1aFCHIRp3j/VPNcCEsE95A==,type:str]",
		"ENC[AES256_GCM,data:,iv:AAAAAAAAAAAAAAAA,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:int]",
		"ENC[AES256_GCM,data:8CvE,iv:tjch",
		"ENC[AES256_GCM,data:a,b,iv:c,tag:d,type:str]",
		"ENC[]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := secrets.ParseValue(s)
		if err != nil {
			return
		}
		// A value that parses prints back to a value that parses the same.
		w, err := secrets.ParseValue(v.String())
		if err != nil || w.String() != v.String() {
			t.Fatalf("%q parsed, printed %q, parsed again: %v", s, v.String(), err)
		}
	})
}

// FuzzParse: no panic on any file, and a file that parses decrypts or
// fails with an error.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/flux/algorithms-age.yaml", "testdata/flux/global-secret.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: ENC[AES256_GCM,data:AAAA,iv:AAAAAAAAAAAAAAAA,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\nsops:\n  mac: x\n"))
	f.Add([]byte("a: &x [1]\nb: *x\nsops: {}\n"))
	id, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := secrets.Parse(data)
		if err != nil {
			return
		}
		_ = file.EncryptedPaths()
		_, _ = file.Decrypt(id)
	})
}
