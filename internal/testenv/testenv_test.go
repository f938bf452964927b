package testenv_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gitorch/gitorch/internal/testenv"
)

// TestMissingPrerequisite runs a test that lacks a prerequisite in a
// child process: outside CI it skips saying how to run it, under CI=true
// it fails.
func TestMissingPrerequisite(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		testenv.RequireBinary(t, "gitorch-no-such-program")
		t.Log("ran on")
		return
	}
	run := func(ci string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingPrerequisite$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "CI="+ci)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("")
	if err != nil || !strings.Contains(out, "--- SKIP") || !strings.Contains(out, "scripts/test.sh") || strings.Contains(out, "ran on") {
		t.Errorf("outside CI: err %v, output:\n%s", err, out)
	}
	out, err = run("true")
	if err == nil || !strings.Contains(out, "--- FAIL") || !strings.Contains(out, "gitorch-no-such-program is not installed") || strings.Contains(out, "ran on") {
		t.Errorf("under CI: err %v, output:\n%s", err, out)
	}
}

func TestPresentPrerequisite(t *testing.T) {
	p := testenv.RequireBinary(t, "sh")
	if !strings.HasSuffix(p, "/sh") {
		t.Fatalf("path of sh: %q", p)
	}
	testenv.Require(t, true, "nothing")
}
