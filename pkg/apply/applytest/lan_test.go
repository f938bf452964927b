package applytest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply"
)

// echoServer listens on port 7000 in the host's namespace and answers each
// connection with "NAME got LINE", then closes it. It stops with the test.
func echoServer(t *testing.T, h Host) {
	t.Helper()
	var ln net.Listener
	if err := h.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(h.Addr.String(), "7000"))
		return err
	}); err != nil {
		t.Fatalf("listen on %s: %v", h.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "%s got %s", h.Name, line)
			}()
		}
	}()
}

// dial connects from host from to addr:port and returns the answer to a
// line, or the error.
func dial(from Host, addr netip.Addr, port string) (string, error) {
	var answer string
	err := from.Do(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr.String(), port), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "hello from %s\n", from.Name)
		b, err := bufio.NewReader(c).ReadString('\n')
		answer = b
		return err
	})
	return answer, err
}

func ping(h Host, addr netip.Addr) error {
	out, err := h.Command(BusyboxPath, "ping", "-c", "1", "-W", "1", addr.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(testenv.RequireBinary(t, "ip"), "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	return string(out)
}

// Hosts of a LAN reach each other over the bridge, by ping and by TCP
// from a process started in a host's namespace; a cut host is unreachable
// while the others still talk, and a restored one is reachable again.
// When the test ends, its namespaces, and the processes in them, are gone.
func TestLAN(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "nsenter")
	_, err := os.Stat(BusyboxPath)
	testenv.Require(t, err == nil, BusyboxPath+" is not installed (Debian package busybox-static)")
	var names []string
	var server *exec.Cmd
	t.Run("traffic", func(t *testing.T) {
		lan := NewLAN(t, 3)
		names = append(names, lan.Name+"-br")
		for _, h := range lan.Hosts {
			names = append(names, h.Name)
			if !lan.Prefix.Contains(h.Addr) {
				t.Fatalf("host %s at %s, outside %s", h.Name, h.Addr, lan.Prefix)
			}
		}
		if list := netnsList(t); !strings.Contains(list, lan.Hosts[2].Name) {
			t.Fatalf("ip netns list does not show %s:\n%s", lan.Hosts[2].Name, list)
		}
		a, b, c := lan.Hosts[0], lan.Hosts[1], lan.Hosts[2]
		echoServer(t, c)
		// A client process in a's namespace, through nsenter.
		nc := a.Command(BusyboxPath, "nc", "-w", "2", c.Addr.String(), "7000")
		nc.Stdin = strings.NewReader("hi\n")
		if out, err := nc.CombinedOutput(); err != nil || string(out) != c.Name+" got hi\n" {
			t.Fatalf("nc from %s to %s: %v, %q", a.Name, c.Name, err, out)
		}
		if err := ping(b, c.Addr); err != nil {
			t.Fatalf("ping from %s to %s: %v", b.Name, c.Name, err)
		}
		// A server process in b's namespace, stopped when the test ends.
		www := t.TempDir()
		if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("served by b\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		server = b.Start(t, BusyboxPath, "httpd", "-f", "-p", b.Addr.String()+":8080", "-h", www)
		got := pollHTTP(t, a, b.Addr, "8080")
		if got != "served by b\n" {
			t.Fatalf("httpd on %s answered %q", b.Name, got)
		}

		if err := c.Cut(); err != nil {
			t.Fatal(err)
		}
		if answer, err := dial(a, c.Addr, "7000"); err == nil {
			t.Fatalf("cut host %s answered %q", c.Name, answer)
		}
		if err := ping(b, c.Addr); err == nil {
			t.Fatalf("cut host %s answers ping", c.Name)
		}
		if err := ping(c, a.Addr); err == nil {
			t.Fatalf("cut host %s reaches %s", c.Name, a.Name)
		}
		if err := ping(a, b.Addr); err != nil {
			t.Fatalf("with %s cut, %s does not reach %s: %v", c.Name, a.Name, b.Name, err)
		}
		if err := c.Restore(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			answer, err := dial(a, c.Addr, "7000")
			if err == nil {
				if want := c.Name + " got hello from " + a.Name + "\n"; answer != want {
					t.Fatalf("restored host answered %q, want %q", answer, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("restored host %s unreachable after 20s: %v", c.Name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if t.Failed() || len(names) == 0 {
		return
	}
	list := netnsList(t)
	for _, name := range names {
		if _, err := os.Lstat(filepath.Join(NetNSDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s/%s remains: %v", NetNSDir, name, err)
		}
		if strings.Contains(list, name) {
			t.Errorf("ip netns list still shows %s", name)
		}
	}
	if server.ProcessState == nil {
		t.Errorf("httpd (pid %d) still runs after the test", server.Process.Pid)
	}
}

// pollHTTP GETs / from addr:port inside host h's namespace until a server
// answers, for 20s at most, and returns the body.
func pollHTTP(t *testing.T, h Host, addr netip.Addr, port string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var body string
		err := h.Do(func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(addr.String(), port), time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
			// HTTP/1.0: the server closes the connection after the body.
			b, err := io.ReadAll(c)
			if _, after, ok := strings.Cut(string(b), "\r\n\r\n"); ok {
				body = after
			}
			return err
		})
		if err == nil && body != "" {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTP answer from %s:%s in %s within 20s: %v", addr, port, h.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A node can live on a LAN host: its bridge is in the host's namespace,
// and a program run in the host through nsenter reaches its pod.
func TestNodeOnLANHost(t *testing.T) {
	lan := NewLAN(t, 2)
	h := lan.Hosts[1]
	n := NewNode(t, NodeOptions{NetNS: h.NetNS})
	st, err := n.Runtime.RunPod(t.Context(), apply.PodSpec{Namespace: "default", Name: "web", Containers: []apply.ContainerSpec{{
		Name: "httpd", Image: BusyboxRef, Command: []string{"sh", "-c", "echo pod on " + h.Name + " > /www/index.html; exec httpd -f -p 8080 -h /www"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := pollHTTP(t, h, st.IP, "8080"); got != "pod on "+h.Name+"\n" {
		t.Fatalf("pod answered %q", got)
	}
	out, err := h.Command(BusyboxPath, "wget", "-q", "-O", "-", "http://"+net.JoinHostPort(st.IP.String(), "8080")+"/").CombinedOutput()
	if err != nil || string(out) != "pod on "+h.Name+"\n" {
		t.Fatalf("wget from %s: %v, %q", h.Name, err, out)
	}
}
