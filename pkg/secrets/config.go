package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// CreationRule is one rule of a .sops.yaml (sops's configuration), the
// fields gitorch reads.
type CreationRule struct {
	PathRegex         string `yaml:"path_regex"`
	Age               any    `yaml:"age"` // "a,b" or a list
	EncryptedRegex    string `yaml:"encrypted_regex"`
	UnencryptedRegex  string `yaml:"unencrypted_regex"`
	EncryptedSuffix   string `yaml:"encrypted_suffix"`
	UnencryptedSuffix string `yaml:"unencrypted_suffix"`
	MACOnlyEncrypted  bool   `yaml:"mac_only_encrypted"`
	KeyGroups         []struct {
		Age []string `yaml:"age"`
	} `yaml:"key_groups"`
}

// Recipients are the age recipients of the rule: its age list (a string
// of comma-separated recipients, or a list) and its key groups'.
func (r *CreationRule) Recipients() []string {
	var out []string
	add := func(s string) {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	switch v := r.Age.(type) {
	case string:
		add(v)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				add(s)
			}
		}
	}
	for _, g := range r.KeyGroups {
		for _, s := range g.Age {
			add(s)
		}
	}
	return out
}

// Rules are the rule's choices of which values to encrypt.
func (r *CreationRule) Rules() Rules {
	return Rules{EncryptedRegex: r.EncryptedRegex, UnencryptedRegex: r.UnencryptedRegex,
		EncryptedSuffix: r.EncryptedSuffix, UnencryptedSuffix: r.UnencryptedSuffix, MACOnlyEncrypted: r.MACOnlyEncrypted}
}

// FindCreationRule finds the nearest .sops.yaml above path and the first
// of its creation rules whose path_regex matches path relative to that
// file's directory (the first match wins, as in sops).
//
// It returns the rule (nil when none matches) and the .sops.yaml it
// read ("" when there is none).
func FindCreationRule(path string) (*CreationRule, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		conf := filepath.Join(dir, ".sops.yaml")
		b, err := os.ReadFile(conf)
		if err == nil {
			var c struct {
				CreationRules []CreationRule `yaml:"creation_rules"`
			}
			if err := yaml.Unmarshal(b, &c); err != nil {
				return nil, conf, fmt.Errorf("%s: %w", conf, err)
			}
			rel, _ := filepath.Rel(dir, abs)
			rel = filepath.ToSlash(rel)
			for i := range c.CreationRules {
				r := &c.CreationRules[i]
				if r.PathRegex != "" {
					re, err := regexp.Compile(r.PathRegex)
					if err != nil {
						return nil, conf, fmt.Errorf("%s: creation_rules[%d].path_regex: %w", conf, i, err)
					}
					if !re.MatchString(rel) {
						continue
					}
				}
				return r, conf, nil
			}
			return nil, conf, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, conf, err
		}
		if dir == filepath.Dir(dir) {
			return nil, "", nil
		}
	}
}
