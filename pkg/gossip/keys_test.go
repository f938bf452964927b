package gossip

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadKeyFile(t *testing.T) {
	k1, _ := GenerateKey()
	k2, _ := GenerateKey()
	short := base64.StdEncoding.EncodeToString([]byte("sixteen bytes!!!"))
	for _, tc := range []struct {
		name, content, err string
		keys               int
	}{
		{"two keys, comments and blank lines", "# primary\n" + k1 + "\n\n  " + k2 + "  \n", "", 2},
		{"not base64", k1 + "\nnot*base64\n", "keys:2: not a base64 key", 0},
		{"wrong size", "#\n" + short + "\n", "keys:2: key is 16 bytes, want 32", 0},
		{"empty", "# nothing\n\n", "no key in file", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys")
			os.WriteFile(path, []byte(tc.content), 0o600)
			keys, err := LoadKeyFile(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(keys) != tc.keys {
				t.Fatalf("%d keys, %v", len(keys), err)
			}
		})
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file accepted")
	}
}
