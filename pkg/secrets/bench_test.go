package secrets_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/gitorch/gitorch/pkg/secrets"
)

// benchSecret is a Secret of n keys of 64 bytes.
func benchSecret(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Secret\nmetadata:\n  name: bench\nstringData:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  key%d: %s\n", i, strings.Repeat("v", 64))
	}
	return b.String()
}

// What a node spends on one encrypted Secret of a revision: parse, open
// the data key (one X25519 of each recipient until one matches), decrypt
// and check the MAC.
func BenchmarkDecrypt(b *testing.B) {
	for _, keys := range []int{1, 20} {
		for _, recipients := range []int{1, 10} {
			b.Run(fmt.Sprintf("keys=%d/recipients=%d", keys, recipients), func(b *testing.B) {
				var rs []string
				var mine *age.X25519Identity
				for i := 0; i < recipients; i++ {
					id, err := age.GenerateX25519Identity()
					if err != nil {
						b.Fatal(err)
					}
					rs = append(rs, id.Recipient().String())
					mine = id // the last recipient: every stanza before it is tried
				}
				enc, err := secrets.Encrypt([]byte(benchSecret(keys)), rs, secrets.SecretRules, time.Now(), nil)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					f, err := secrets.Parse(enc)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := f.Decrypt(mine); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
