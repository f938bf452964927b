package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/gitorch/gitorch/pkg/secrets"
)

// ageKeyFileName is the node's age identity under its data dir.
const ageKeyFileName = "age.key"

func (a *app) secretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Keep Secrets in Git encrypted (SOPS with age)",
		Long: `Secrets live in the repository encrypted in SOPS's format for age
recipients, as Flux users keep them: each node decrypts them with its own
age identity (the agent's --age-key-file), and validate and plan read them
without any key. See docs/secrets.md.`,
		Example: `  # On a node: make its identity, and note the public key it prints
  gitorch secret keygen /var/lib/gitorch/age.key

  # In the repository: encrypt a Secret for two nodes, then commit it
  gitorch secret encrypt db-secret.yaml --recipient age1... --recipient age1...

  # Read it back (with an identity among its recipients)
  gitorch secret decrypt db-secret.yaml --age-key-file ~/.config/sops/age/keys.txt`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.secretKeygenCommand(), a.secretEncryptCommand(), a.secretDecryptCommand())
	return cmd
}

func (a *app) secretKeygenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen [FILE]",
		Short: "Write a new age identity and print its public key",
		Long: `keygen writes a new age identity (an X25519 key, in the format age-keygen
writes) to FILE, readable by its owner only, and prints its public key
(age1...), the recipient to encrypt Secrets for. FILE defaults to age.key in
the agent's data dir, where the agent looks for it. An existing file is
never overwritten.`,
		Example: `  # A node's identity, where the agent run as root reads it
  gitorch secret keygen /var/lib/gitorch/age.key

  # A person's identity, where the sops tool looks for it too
  mkdir -p ~/.config/sops/age && gitorch secret keygen ~/.config/sops/age/keys.txt`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var path string
			if len(args) == 1 {
				path = args[0]
			} else {
				dir, err := agentDataDir(os.Geteuid(), os.Getenv)
				if err != nil {
					return err
				}
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return err
				}
				path = filepath.Join(dir, ageKeyFileName)
			}
			pub, err := secrets.WriteNewIdentity(path, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "wrote an age identity to %s\n", path)
			fmt.Fprintln(a.stdout, pub)
			return nil
		},
	}
}

func (a *app) secretEncryptCommand() *cobra.Command {
	var recipients []string
	cmd := &cobra.Command{
		Use:   "encrypt FILE",
		Short: "Encrypt a Secret manifest in place",
		Long: `encrypt encrypts the values of a Secret manifest (data and stringData)
in place, in SOPS's format, for the age recipients given with --recipient,
or else those of the first creation rule of the nearest .sops.yaml (in the
file's directory or above) whose path_regex matches the file's path. The
apiVersion, kind and metadata stay readable, so that validate and plan work
without a key; the file decrypts with the sops tool too.`,
		Example: `  # For two nodes
  gitorch secret encrypt db-secret.yaml --recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p --recipient age1...

  # For the recipients .sops.yaml names, e.g.
  #   creation_rules:
  #     - path_regex: .*\.yaml$
  #       encrypted_regex: ^(data|stringData)$
  #       age: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p,age1...
  gitorch secret encrypt secrets/db-secret.yaml`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			plain, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var head struct {
				Kind string         `yaml:"kind"`
				Sops map[string]any `yaml:"sops"`
			}
			if err := yaml.Unmarshal(plain, &head); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if head.Sops != nil {
				return fmt.Errorf("%s is already encrypted", path)
			}
			if head.Kind != "Secret" {
				return fmt.Errorf("%s: only a Secret can be encrypted, not a %q", path, head.Kind)
			}
			rules := secrets.SecretRules
			if len(recipients) == 0 {
				rule, from, err := secrets.FindCreationRule(path)
				if err != nil {
					return err
				}
				if rule == nil {
					return usageError(errors.New("no --recipient, and no .sops.yaml creation rule with age recipients matches " + path))
				}
				if recipients = rule.Recipients(); len(recipients) == 0 {
					return fmt.Errorf("the creation rule of %s that matches %s has no age recipients", from, path)
				}
				if r := rule.Rules(); r != (secrets.Rules{}) {
					rules = r
				}
				fmt.Fprintf(a.stderr, "recipients from %s: %s\n", from, strings.Join(recipients, ", "))
			}
			out, err := secrets.Encrypt(plain, recipients, rules, time.Now(), nil)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			return writeInPlace(path, out)
		},
	}
	cmd.Flags().StringArrayVarP(&recipients, "recipient", "r", nil, "age public key (age1...) to encrypt for (repeatable)")
	return cmd
}

func (a *app) secretDecryptCommand() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "decrypt FILE",
		Short: "Print a decrypted Secret manifest",
		Long: `decrypt prints FILE, a SOPS file with age recipients, with its values
decrypted and its sops block removed, after checking its MAC. The identity
comes from --age-key-file, else $SOPS_AGE_KEY_FILE, else
~/.config/sops/age/keys.txt (where the sops tool looks), else age.key in the
agent's data dir. The file is not changed.`,
		Example: `  gitorch secret decrypt db-secret.yaml
  gitorch secret decrypt db-secret.yaml --age-key-file /var/lib/gitorch/age.key`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := userIdentities(keyFile)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			f, err := secrets.Parse(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			doc, err := f.Decrypt(ids...)
			if err != nil {
				return fmt.Errorf("%s: cannot decrypt: %w", args[0], err)
			}
			out, err := secrets.Marshal(doc)
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&keyFile, "age-key-file", "", "age identity file")
	return cmd
}

// userIdentities reads the identity of decrypt: the file named, or the
// first of the usual places that exists.
func userIdentities(named string) ([]age.Identity, error) {
	if named != "" {
		return secrets.ReadIdentityFile(named)
	}
	var tried []string
	if p := os.Getenv("SOPS_AGE_KEY_FILE"); p != "" {
		tried = append(tried, p)
	}
	if home, err := os.UserHomeDir(); err == nil {
		tried = append(tried, filepath.Join(home, ".config", "sops", "age", "keys.txt"))
	}
	if dir, err := agentDataDir(os.Geteuid(), os.Getenv); err == nil {
		tried = append(tried, filepath.Join(dir, ageKeyFileName))
	}
	for _, p := range tried {
		if _, err := os.Stat(p); err == nil {
			return secrets.ReadIdentityFile(p)
		}
	}
	return nil, usageError(fmt.Errorf("no age identity: give --age-key-file (looked in %s)", strings.Join(tried, ", ")))
}

// agentIdentities reads the agent's identity: the file named (which must
// exist), or age.key in the data dir when there is one.
func agentIdentities(named, dataDir string) ([]age.Identity, string, error) {
	path := named
	if path == "" {
		path = filepath.Join(dataDir, ageKeyFileName)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, path, nil
		}
	}
	ids, err := secrets.ReadIdentityFile(path)
	if err != nil {
		return nil, path, fmt.Errorf("--age-key-file: %w", err)
	}
	return ids, path, nil
}

// writeInPlace replaces path's content atomically, keeping its mode.
func writeInPlace(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// usageArgs makes the errors of an argument check usage errors (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError(err)
		}
		return nil
	}
}
