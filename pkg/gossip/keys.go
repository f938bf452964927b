package gossip

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
)

// GenerateKey returns a new gossip key: KeySize random bytes in base64.
func GenerateKey() (string, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("gossip: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// LoadKeyFile reads gossip keys from path: one base64 key of KeySize bytes
// per line; blank lines and lines starting with '#' are ignored. The first
// key encrypts, all decrypt (see Config.Keys). Errors name path:line.
func LoadKeyFile(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip: read key file: %w", err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		s := bytes.TrimSpace(sc.Bytes())
		if len(s) == 0 || s[0] == '#' {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(string(s))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: not a base64 key: %v", path, line, err)
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("%s:%d: key is %d bytes, want %d (generate one with 'gitorch gossip keygen')", path, line, len(k), KeySize)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no key in file (generate one with 'gitorch gossip keygen')", path)
	}
	return keys, nil
}
