package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/source"
)

// sourceProbe runs a command that only reads the tree of --ref as validate
// does (remoteSource, sourceConfig, openRepo, revisionTree) with args; name
// names the revision read.
func sourceProbe(t *testing.T, args ...string) (tr *tree, name string, given bool, cfg source.Config, code int, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(&out, &errb)
	root := a.rootCommand()
	probe := &cobra.Command{
		Use: "probe",
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if given, err = a.remoteSource(); err != nil || !given {
				return err
			}
			if cfg, err = a.sourceConfig(); err != nil {
				return err
			}
			repo, err := a.openRepo(context.Background(), cfg)
			if err != nil {
				return err
			}
			defer repo.Close()
			tr, name, err = a.revisionTree(context.Background(), repo, "", nil, false)
			return err
		},
	}
	addSourceFlags(probe, cacheDataDirUsage)
	root.AddCommand(probe)
	code = a.execute(root, append([]string{"probe"}, args...))
	return tr, name, given, cfg, code, errb.String()
}

func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// sourceRepo makes a bare repository with the real git CLI: main has
// deploy/app.yaml and a symbolic link; tag v1 has an older app.yaml.
func sourceRepo(t *testing.T) (bare, v1, head string) {
	t.Helper()
	testenv.RequireBinary(t, "git")
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, "gitconfig"))
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, "cache"))
	for _, v := range []string{"GIT_AUTHOR", "GIT_COMMITTER"} {
		t.Setenv(v+"_NAME", "Test")
		t.Setenv(v+"_EMAIL", "test@example.com")
	}
	work := t.TempDir()
	bare = filepath.Join(t.TempDir(), "repo.git")
	gitRun(t, work, "init", "-q", "-b", "main")
	write := func(name, content string) {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("deploy/app.yaml", "v: 1\n")
	gitRun(t, work, "add", ".")
	gitRun(t, work, "commit", "-q", "-m", "one")
	gitRun(t, work, "tag", "v1")
	v1 = gitRun(t, work, "rev-parse", "HEAD")
	write("deploy/app.yaml", "v: 2\n")
	if err := os.Symlink("../outside", filepath.Join(work, "deploy", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	gitRun(t, work, "add", ".")
	gitRun(t, work, "commit", "-q", "-m", "two")
	head = gitRun(t, work, "rev-parse", "HEAD")
	gitRun(t, work, "clone", "-q", "--bare", work, bare)
	return bare, v1, head
}

func TestRevisionTree(t *testing.T) {
	bare, v1, head := sourceRepo(t)
	data := t.TempDir()

	tr, _, given, _, code, stderr := sourceProbe(t)
	if code != 0 || given || tr != nil {
		t.Errorf("without --repo: code %d given %v: %s", code, given, stderr)
	}

	tr, name, given, _, code, stderr := sourceProbe(t, "--repo", bare, "--path", "deploy", "--data-dir", data)
	if code != 0 || !given || tr == nil {
		t.Fatalf("--repo: code %d: %s", code, stderr)
	}
	if name != head[:12] {
		t.Errorf("default ref: %s, want %s", name, head[:12])
	}
	if b, err := fs.ReadFile(tr.fsys, "app.yaml"); err != nil || string(b) != "v: 2\n" {
		t.Errorf("app.yaml = %q, %v", b, err)
	}
	if !strings.Contains(stderr, "gitorch: note: deploy/link.yaml: symbolic link in the repository is not followed") {
		t.Errorf("no note about the link: %q", stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "git")); err != nil {
		t.Errorf("cache not under --data-dir: %v", err)
	}

	_, name, _, _, code, stderr = sourceProbe(t, "--repo", "file://"+bare, "--ref", "v1")
	if code != 0 || name != "v1 ("+v1[:12]+")" {
		t.Fatalf("--ref v1: code %d, %s: %s", code, name, stderr)
	}
	_, name, _, _, code, stderr = sourceProbe(t, "--repo", "file://"+bare, "--ref", "main~1")
	if code != 0 || name != "main~1 ("+v1[:12]+")" {
		t.Fatalf("--ref main~1: code %d, %s: %s", code, name, stderr)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "gitorch", "git")); err != nil {
		t.Errorf("default data dir is not the user cache dir: %v", err)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"ref without repo", []string{"--ref", "main"}, 2, "--ref needs --repo"},
		{"path escapes", []string{"--repo", bare, "--path", "../x"}, 2, "leaves the repository"},
		{"missing ref", []string{"--repo", bare, "--ref", "nope"}, 2, `revision "nope": not found in ` + bare + `: no branch, tag or commit is named "nope"`},
		{"walk past the root", []string{"--repo", bare, "--ref", "HEAD~9"}, 2, `revision "HEAD~9": not found in ` + bare + `: HEAD (` + head[:12] + `) has 1 ancestor`},
		{"missing path", []string{"--repo", bare, "--path", "nope"}, 2, `"nope" is not a directory`},
		{"missing repository", []string{"--repo", filepath.Join(t.TempDir(), "none.git")}, 1, "repository not found"},
		{"unreadable token file", []string{"--repo", bare, "--git-token-file", "/nonexistent"}, 2, "--git-token-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, _, code, stderr := sourceProbe(t, append(tc.args, "--data-dir", data)...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("code %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.msg)
			}
		})
	}
}

func TestSourceFlagsSecrets(t *testing.T) {
	bare, _, _ := sourceRepo(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GITORCH_GIT_TOKEN", "from-env")
	t.Setenv("GITORCH_SSH_KEY_PASSPHRASE", "phrase")
	_, _, _, cfg, code, stderr := sourceProbe(t, "--repo", bare, "--data-dir", dir, "--git-username", "bob", "--git-password-file", pwFile)
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	if cfg.Auth.Username != "bob" || cfg.Auth.Password != "from-file" || cfg.Auth.Token != "from-env" || cfg.Auth.SSHKeyPassphrase != "phrase" {
		t.Errorf("auth = %+v", cfg.Auth)
	}

	// A keyring refuses the unsigned commit.
	_, pub, err := ed25519Key()
	if err != nil {
		t.Fatal(err)
	}
	ring := filepath.Join(dir, "keyring")
	if err := os.WriteFile(ring, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, _, _, code, stderr = sourceProbe(t, "--repo", bare, "--data-dir", dir, "--verify-keyring", ring)
	if code != 1 || !strings.Contains(stderr, "commit is not signed") {
		t.Errorf("unsigned commit with keyring: code %d, %q", code, stderr)
	}
	if err := os.WriteFile(ring, []byte("# empty\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, _, _, code, stderr = sourceProbe(t, "--repo", bare, "--data-dir", dir, "--verify-keyring", ring)
	if code != 2 || !strings.Contains(stderr, "no OpenPGP or SSH public key") {
		t.Errorf("empty keyring: code %d, %q", code, stderr)
	}
}

// ed25519Key returns a new SSH public key in authorized_keys form.
func ed25519Key() (ed25519.PrivateKey, []byte, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return priv, ssh.MarshalAuthorizedKey(sshPub), nil
}
