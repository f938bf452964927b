package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gitorch/gitorch/pkg/gossip"
)

// Keys printed by keygen, written one per line, make a key file the
// daemon loads.
func TestGossipKeygenMakesAKeyFile(t *testing.T) {
	var file bytes.Buffer
	file.WriteString("# gossip keys, primary first\n")
	for range 2 {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"gossip", "keygen"}, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		file.Write(stdout.Bytes())
	}
	path := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := gossip.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || len(keys[0]) != gossip.KeySize || bytes.Equal(keys[0], keys[1]) {
		t.Fatalf("loaded %d keys: %x", len(keys), keys)
	}
}
