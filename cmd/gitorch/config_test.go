package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/cobra"
)

// runProbe runs a command with one flag, --level, and reports the value the
// configuration resolved for it.
func runProbe(t *testing.T, args []string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(&out, &errb)
	root := a.rootCommand()
	var got string
	probe := &cobra.Command{
		Use: "probe",
		RunE: func(*cobra.Command, []string) error {
			got = a.cfg.GetString("level")
			return nil
		},
	}
	probe.Flags().String("level", "default", "")
	root.AddCommand(probe)
	code := a.execute(root, args)
	if code != 0 {
		t.Logf("stderr: %s", errb.String())
	}
	return got, code
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gitorch.yaml")
	if err := os.WriteFile(file, []byte("level: from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"default when nothing is set", "", []string{"probe"}, "default"},
		{"file over default", "", []string{"probe", "--config", file}, "from-file"},
		{"env over file", "from-env", []string{"probe", "--config", file}, "from-env"},
		{"flag over env and file", "from-env", []string{"probe", "--config", file, "--level", "from-flag"}, "from-flag"},
		{"flag over default", "", []string{"probe", "--level", "from-flag"}, "from-flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GITORCH_LEVEL", c.env)
			if c.env == "" {
				os.Unsetenv("GITORCH_LEVEL")
			}
			got, code := runProbe(t, c.args)
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			if got != c.want {
				t.Errorf("level = %q, want %q", got, c.want)
			}
		})
	}
}

func TestConfigFileFoundInWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gitorch.yaml"), []byte("level: from-cwd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	got, code := runProbe(t, []string{"probe"})
	if code != 0 || got != "from-cwd" {
		t.Fatalf("got %q (exit %d), want from-cwd", got, code)
	}
}

func TestConfigFileFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(file, []byte("level: from-env-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GITORCH_CONFIG", file)
	got, code := runProbe(t, []string{"probe"})
	if code != 0 || got != "from-env-file" {
		t.Fatalf("got %q (exit %d), want from-env-file", got, code)
	}
}

func TestConfigFileMissingIsUsageError(t *testing.T) {
	_, code := runProbe(t, []string{"probe", "--config", filepath.Join(t.TempDir(), "absent.yaml")})
	if code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
}

func TestConfigFileMalformedIsUsageError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(file, []byte("level: [unclosed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, code := runProbe(t, []string{"probe", "--config", file})
	if code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
}

// TestAgentDataDir pins where the agent keeps its state without
// --data-dir, as its help and docs/agent.md say.
func TestAgentDataDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		euid int
		env  map[string]string
		want string
	}{
		{"root: the system's state directory", 0, map[string]string{"HOME": "/root", "XDG_STATE_HOME": "/root/.state"}, "/var/lib/gitorch"},
		{"a user: XDG_STATE_HOME", 1000, map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "/home/u/state"}, "/home/u/state/gitorch"},
		{"a user without XDG_STATE_HOME: ~/.local/state", 1000, map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/gitorch"},
		{"a relative XDG_STATE_HOME is ignored, as the spec says", 1000, map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "state"}, "/home/u/.local/state/gitorch"},
		{"nowhere to go", 1000, map[string]string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := agentDataDir(tc.euid, func(k string) string { return tc.env[k] })
			if got != tc.want || (err != nil) != (tc.want == "") {
				t.Errorf("agentDataDir = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
