package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitorch/gitorch/pkg/backoff"

	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/pkg/source"
)

// addSourceFlags registers the flags that name a Git revision to read
// manifests from (--repo, --ref, --path), where to keep it (--data-dir,
// whose help is dataDirUsage: cacheDataDirUsage for the client commands),
// and how to authenticate and verify it. Commands read them with
// remoteSource, sourceConfig, openRepo and revisionTree. A command that
// calls it must not register --data-dir itself.
//
// Secrets are never flags: passwords, tokens and passphrases come from
// files (--git-password-file, ...) or from the environment / config file
// (GITORCH_GIT_PASSWORD or git-password, GITORCH_GIT_TOKEN or git-token,
// GITORCH_SSH_KEY_PASSPHRASE or ssh-key-passphrase).
func addSourceFlags(cmd *cobra.Command, dataDirUsage string) {
	f := cmd.Flags()
	f.String("repo", "", "read manifests from this Git repository instead of local files: a path, file://, git://, http(s):// or ssh:// URL, or user@host:path")
	f.String("ref", "", "revision to read with --repo, as Git writes it: a branch, tag, commit SHA (full or abbreviated), HEAD~1, main^ (default: the remote's default branch)")
	f.String("path", "", "directory inside the repository that holds the manifests (default: the repository root)")
	f.String("data-dir", "", dataDirUsage)
	f.Duration("fetch-timeout", 2*time.Minute, "give up fetching --repo after this long, retries included")
	f.String("git-username", "", "HTTP(S) user name (with --git-password-file, or with --git-token-file instead of x-access-token)")
	f.String("git-password-file", "", "file holding the HTTP(S) password (or set GITORCH_GIT_PASSWORD)")
	f.String("git-token-file", "", "file holding an HTTP(S) access token (or set GITORCH_GIT_TOKEN)")
	f.String("git-ca-file", "", "PEM file of CA certificates trusted for HTTPS, in addition to the system's")
	f.String("ssh-key-file", "", "SSH private key for ssh:// and user@host:path remotes (default: the SSH agent)")
	f.String("ssh-key-passphrase-file", "", "file holding the SSH key's passphrase (or set GITORCH_SSH_KEY_PASSPHRASE)")
	f.StringSlice("ssh-known-hosts", nil, "known_hosts files to check the SSH server's key against (default: ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts)")
	f.Bool("ssh-insecure-ignore-host-key", false, "accept any SSH host key: open to interception, for tests only")
	f.StringSlice("verify-keyring", nil, "refuse commits not signed by a key in these files (armored OpenPGP public keys and SSH public keys, one per line)")
}

// sourceConfig builds the source configuration from the flags, the
// environment and the config file. Problems with the flags are usage
// errors.
func (a *app) sourceConfig() (source.Config, error) {
	c := a.cfg
	cfg := source.Config{
		URL:  c.GetString("repo"),
		Ref:  c.GetString("ref"),
		Path: c.GetString("path"),
		Auth: source.Auth{
			Username:              c.GetString("git-username"),
			KnownHosts:            c.GetStringSlice("ssh-known-hosts"),
			InsecureIgnoreHostKey: c.GetBool("ssh-insecure-ignore-host-key"),
		},
	}
	var err error
	if cfg.Auth.Password, err = secret(c.GetString("git-password-file"), c.GetString("git-password")); err != nil {
		return cfg, usageError(fmt.Errorf("--git-password-file: %w", err))
	}
	if cfg.Auth.Token, err = secret(c.GetString("git-token-file"), c.GetString("git-token")); err != nil {
		return cfg, usageError(fmt.Errorf("--git-token-file: %w", err))
	}
	if cfg.Auth.SSHKeyPassphrase, err = secret(c.GetString("ssh-key-passphrase-file"), c.GetString("ssh-key-passphrase")); err != nil {
		return cfg, usageError(fmt.Errorf("--ssh-key-passphrase-file: %w", err))
	}
	if f := c.GetString("git-ca-file"); f != "" {
		if cfg.Auth.CABundle, err = os.ReadFile(f); err != nil {
			return cfg, usageError(fmt.Errorf("--git-ca-file: %w", err))
		}
	}
	if f := c.GetString("ssh-key-file"); f != "" {
		if cfg.Auth.SSHKey, err = os.ReadFile(f); err != nil {
			return cfg, usageError(fmt.Errorf("--ssh-key-file: %w", err))
		}
	}
	if files := c.GetStringSlice("verify-keyring"); len(files) > 0 {
		ring := &source.Keyring{}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err == nil {
				err = ring.Add(data)
			}
			if err != nil {
				return cfg, usageError(fmt.Errorf("--verify-keyring %s: %w", f, err))
			}
		}
		if ring.Len() == 0 {
			return cfg, usageError(fmt.Errorf("--verify-keyring: no OpenPGP or SSH public key in %s", strings.Join(files, ", ")))
		}
		cfg.Verify = ring
	}
	return cfg, nil
}

// secret reads a secret from file when one is named, else returns value
// (from the environment or config file). Surrounding whitespace, such as a
// final newline, is dropped.
func secret(file, value string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// cacheDataDirUsage is the --data-dir help of the commands that only cache
// what they fetch (validate, plan).
const cacheDataDirUsage = "directory for gitorch's caches; Git caches go under DIR/git, validation results under DIR/validate (default: gitorch under the user cache directory, $XDG_CACHE_HOME or ~/.cache)"

// dataDir is --data-dir, or gitorch under the user cache directory: what
// validate and plan keep there is a cache of the remote, safe to delete.
func (a *app) dataDir() (string, error) {
	if d := a.cfg.GetString("data-dir"); d != "" {
		return d, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", usageError(fmt.Errorf("no --data-dir given and no user cache directory: %w", err))
	}
	return filepath.Join(cache, "gitorch"), nil
}

// remoteSource reports whether --repo names a repository to read. --ref
// and --path without it are usage errors.
func (a *app) remoteSource() (bool, error) {
	if a.cfg.GetString("repo") != "" {
		return true, nil
	}
	for _, name := range []string{"ref", "path"} {
		if a.cfg.GetString(name) != "" {
			return false, usageError(fmt.Errorf("--%s needs --repo", name))
		}
	}
	return false, nil
}

// openRepo opens the cache of cfg's repository under the data directory
// and fetches it, retrying within --fetch-timeout. A remote that cannot be
// reached after retries, refused credentials or a refused signature are
// plain errors (exit 1); mistakes in the flags are usage errors. The
// caller closes the Repo.
func (a *app) openRepo(ctx context.Context, cfg source.Config) (*source.Repo, error) {
	dir, err := a.dataDir()
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, at slog.Attr) slog.Attr {
			if at.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return at
		},
	}))
	repo, err := source.Open(dir, cfg, log)
	if err != nil {
		return nil, sourceError(err)
	}
	a.restoreValidation(dir)
	if timeout := a.cfg.GetDuration("fetch-timeout"); timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := source.Retry(ctx, backoff.Backoff{Initial: time.Second, Max: 8 * time.Second}, 3, nil, repo.Fetch); err != nil {
		repo.Close()
		return nil, err
	}
	return repo, nil
}

// revisionTree is the tree of revision rev of repo ("" for --ref) under
// --path; args, if any, are files and directories inside it. name says
// which revision it is, for messages. A missing revision or path is a
// usage error. With missingOK, args absent at rev are left out, and a
// nil tree means none of them (or not --path itself) is there. Symbolic
// links and submodules left out of the snapshot are noted on stderr.
func (a *app) revisionTree(ctx context.Context, repo *source.Repo, rev string, args []string, missingOK bool) (t *tree, name string, err error) {
	snap, err := repo.Snapshot(ctx, rev)
	if missingOK && errors.Is(err, source.ErrPathNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", sourceError(err)
	}
	for _, s := range snap.Skipped {
		fmt.Fprintf(a.stderr, "gitorch: note: %s: %v\n", path.Join(snap.Path, s.Name), s.Reason)
	}
	if rev == "" {
		rev = a.cfg.GetString("ref")
	}
	name = snap.Revision[:12]
	if rev != "" {
		name = rev + " (" + name + ")"
	}
	t, err = snapshotTree(snap, args, missingOK)
	if err != nil {
		return nil, "", usageError(err)
	}
	return t, name, nil
}

// sourceError marks the source errors that are the caller's mistake as
// usage errors.
func sourceError(err error) error {
	if errors.Is(err, source.ErrInvalidPath) || errors.Is(err, source.ErrRefNotFound) || errors.Is(err, source.ErrPathNotFound) {
		return usageError(err)
	}
	return err
}
