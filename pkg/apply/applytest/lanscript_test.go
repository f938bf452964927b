package applytest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/internal/testenv"
)

// lanCommand is bash running the shell commands script after sourcing
// scripts/lib/lan.sh.
func lanCommand(t *testing.T, env []string, script string) *exec.Cmd {
	t.Helper()
	lib, err := filepath.Abs("../../../scripts/lib/lan.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.RequireBinary(t, "bash"), "-c", ". "+lib+"\n"+script)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// lanScript runs script as lanCommand does and returns its output.
func lanScript(t *testing.T, env []string, script string) (string, error) {
	t.Helper()
	out, err := lanCommand(t, env, script).CombinedOutput()
	return string(out), err
}

// scripts/lib/lan.sh makes the layout NewLAN makes: lan_up gives hosts
// that reach each other by their addresses, lan_cut takes one off and
// lan_restore puts it back, and lan_down kills what runs in the LAN and
// removes all its namespaces.
func TestLANScript(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "ip")
	testenv.RequireBinary(t, "nsenter")
	_, err := os.Stat(BusyboxPath)
	testenv.Require(t, err == nil, BusyboxPath+" is not installed (Debian package busybox-static)")
	name := "gts" + RandomHex(3)
	r := make([]byte, 2)
	rand.Read(r)
	net := fmt.Sprintf("10.%d.%d", 100+r[0]%100, r[1])
	env := []string{"LAN_NET=" + net}
	for _, ns := range []string{"br", "1", "2", "3"} {
		madeNetNS(name + "-" + ns)
	}
	t.Cleanup(func() {
		if out, err := lanScript(t, nil, "lan_down "+name); err != nil {
			t.Errorf("lan_down: %v\n%s", err, out)
		}
	})
	if out, err := lanScript(t, env, "lan_up "+name+" 3"); err != nil {
		t.Fatalf("lan_up: %v\n%s", err, out)
	}
	if out, err := lanScript(t, env, "lan_up "+name+" 3"); err == nil || !strings.Contains(out, "exists") {
		t.Errorf("lan_up of an existing LAN: %v, %q", err, out)
	}
	out, err := lanScript(t, nil, "lan_hosts "+name+"; for i in 1 2 3; do lan_addr "+name+" $i; lan_ns "+name+" $i; done")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "1\n2\n3\n"
	for i := 1; i <= 3; i++ {
		want += fmt.Sprintf("%s.%d\n%s/%s-%d\n", net, i, NetNSDir, name, i)
	}
	if out != want {
		t.Fatalf("hosts, addresses and namespaces:\n%s\nwant:\n%s", out, want)
	}
	// A host is a namespace NewLAN's Host can use too.
	h3 := Host{Name: name + "-3", NetNS: filepath.Join(NetNSDir, name+"-3"), Addr: netip.MustParseAddr(net + ".3"), nsenter: testenv.RequireBinary(t, "nsenter")}
	if err := ping(h3, netip.MustParseAddr(net+".1")); err != nil {
		t.Fatalf("ping from host 3 to host 1: %v", err)
	}

	pingFrom1 := func(i int) error {
		out, err := lanScript(t, nil, fmt.Sprintf("lan_exec %s 1 %s ping -c 1 -W 1 %s.%d", name, BusyboxPath, net, i))
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := pingFrom1(2); err != nil {
		t.Fatalf("lan_exec ping from host 1 to host 2: %v", err)
	}
	if out, err := lanScript(t, nil, "lan_cut "+name+" 2"); err != nil {
		t.Fatalf("lan_cut: %v\n%s", err, out)
	}
	if err := pingFrom1(2); err == nil {
		t.Fatal("host 2 answers after lan_cut")
	}
	if err := pingFrom1(3); err != nil {
		t.Fatalf("with host 2 cut, host 3: %v", err)
	}
	if out, err := lanScript(t, nil, "lan_restore "+name+" 2"); err != nil {
		t.Fatalf("lan_restore: %v\n%s", err, out)
	}
	if err := pingFrom1(2); err != nil {
		t.Fatalf("after lan_restore: %v", err)
	}

	// A process left running in a host is killed by lan_down.
	sleeper := lanCommand(t, nil, "lan_exec "+name+" 2 "+BusyboxPath+" sleep 600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()
	t.Cleanup(func() { sleeper.Process.Kill() })
	// Wait until the sleeper is inside host 2's namespace.
	if out, err := lanScript(t, nil, "for i in $(seq 100); do [ -n \"$(ip netns pids "+name+"-2)\" ] && exit 0; sleep 0.1; done; exit 1"); err != nil {
		t.Fatalf("no process in host 2: %v\n%s", err, out)
	}
	if out, err := lanScript(t, nil, "lan_down "+name+" && lan_down "+name); err != nil {
		t.Fatalf("lan_down (twice): %v\n%s", err, out)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the process in host 2 exited 0, not killed by lan_down")
		}
	case <-time.After(10 * time.Second):
		t.Error("the process in host 2 still runs 10s after lan_down")
	}
	for _, ns := range []string{"br", "1", "2", "3"} {
		if _, err := os.Lstat(filepath.Join(NetNSDir, name+"-"+ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s-%s remains after lan_down: %v", name, ns, err)
		}
	}
}
