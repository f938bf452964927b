package secrets_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"slices"
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

// FuzzDecrypt mutates files whose data key the identity opens, so that
// mutations reach the values, the MAC and the comments: never a panic,
// and a file that decrypts has its MAC verified (so a value that changed
// is refused).
func FuzzDecrypt(f *testing.F) {
	for _, p := range []string{"testdata/flux/algorithms-age.yaml", "testdata/sops-3.13.3/everything.yaml", "testdata/sops-3.13.3/comments.yaml", "testdata/sops-3.13.3/mac-only-encrypted.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	key, err := os.ReadFile("testdata/flux/keys-age.txt")
	if err != nil {
		f.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(key))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := secrets.Parse(data)
		if err != nil {
			return
		}
		doc, err := file.Decrypt(ids...)
		if err != nil {
			return
		}
		if _, err := secrets.Marshal(doc); err != nil {
			t.Fatalf("a decrypted document does not marshal: %v", err)
		}
	})
}

// TestMutatedFiles runs a few thousand random mutations of files the
// identity opens, with a fixed seed: each one is refused or decrypts,
// and none hangs (go test -fuzz has no hang detector; the test's timeout
// is one).
func TestMutatedFiles(t *testing.T) {
	key, err := os.ReadFile("testdata/flux/keys-age.txt")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(key))
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]byte
	for _, p := range []string{"testdata/flux/algorithms-age.yaml", "testdata/sops-3.13.3/everything.yaml", "testdata/sops-3.13.3/comments.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const chars = "\n :#-[]{}&*!|>'\"AZaz09,="
	for i := 0; i < 3000; i++ {
		b := bytes.Clone(seeds[r.IntN(len(seeds))])
		for range 1 + r.IntN(4) {
			p := r.IntN(len(b))
			switch r.IntN(3) {
			case 0:
				b[p] = byte(r.IntN(256))
			case 1:
				b = append(b[:p], b[p+1:]...)
			default:
				b = slices.Insert(b, p, chars[r.IntN(len(chars))])
			}
		}
		if f, err := secrets.Parse(b); err == nil {
			if doc, err := f.Decrypt(ids...); err == nil {
				if _, err := secrets.Marshal(doc); err != nil {
					t.Fatalf("mutation %d decrypted but does not marshal: %v\n%s", i, err, b)
				}
			}
		}
	}
}
