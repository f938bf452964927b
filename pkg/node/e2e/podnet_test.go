package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/plan"
)

// whoami is a DaemonSet of busybox httpd pods whose /cgi-bin/ip answers
// the address the request came from.
var whoami = fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: whoami
spec:
  selector:
    matchLabels: {app: whoami}
  template:
    metadata:
      labels: {app: whoami}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: %s
        imagePullPolicy: IfNotPresent
        command:
        - sh
        - -c
        - |
          mkdir -p /www/cgi-bin
          printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "$REMOTE_ADDR"\n' > /www/cgi-bin/ip
          chmod +x /www/cgi-bin/ip
          exec httpd -f -p 8080 -h /www
        readinessProbe:
          httpGet: {path: /cgi-bin/ip, port: 8080}
          periodSeconds: 1
        resources:
          requests: {cpu: 10m, memory: 8Mi}
`, applytest.BusyboxRef)

// whoamiPod is a whoami pod: its IP and a path of its network namespace.
type whoamiPod struct {
	IP    netip.Addr
	NetNS string
}

// whoamiPods waits until each member runs its whoami pod, ready, and
// returns them by node.
func whoamiPods(t *testing.T, c *Cluster) map[string]whoamiPod {
	t.Helper()
	c.AgreeOn(c.Members(), "whoami-", len(c.Members()), 90*time.Second, func(p Placement) string {
		if per := p.PerNode(); len(per) != len(c.Members()) {
			return fmt.Sprintf("not one pod on each node: %s", p)
		}
		return ""
	})
	st, err := c.Members()[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]whoamiPod{}
	for _, p := range st.Pods {
		if strings.HasPrefix(p.Name, "whoami-") {
			ip, err := netip.ParseAddr(p.IP)
			if err != nil {
				t.Fatalf("pod %s on %s: IP %q: %v", p.Name, p.Node, p.IP, err)
			}
			pods[p.Node] = whoamiPod{IP: ip}
		}
	}
	ctrs, err := c.Containers()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ctrs {
		if p, ok := pods[x.Node]; ok && x.PID != 0 && strings.HasPrefix(x.Pod, "whoami-") {
			p.NetNS = fmt.Sprintf("/proc/%d/ns/net", x.PID)
			pods[x.Node] = p
		}
	}
	for node, p := range pods {
		if p.NetNS == "" {
			t.Fatalf("no running container of the whoami pod of %s", node)
		}
	}
	return pods
}

// askWhoami GETs /cgi-bin/ip of the whoami pod at ip from inside the
// network namespace at from, and returns the address the pod saw.
func askWhoami(from string, ip netip.Addr) (string, error) {
	var conn net.Conn
	if err := nsfile.Do(from, func() (err error) {
		conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(ip, 8080).String(), 2*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET /cgi-bin/ip HTTP/1.0\r\nHost: %s\r\n\r\n", ip); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	// httpd listens on an IPv6 socket: [::ffff:10.88.1.2] is 10.88.1.2.
	seen := strings.Trim(strings.TrimSpace(string(b)), "[]")
	if addr, err := netip.ParseAddr(seen); err == nil {
		return addr.Unmap().String(), nil
	}
	return seen, nil
}

// gitorchRoutes are the routes of gitorch's protocol in the node's
// network namespace.
func gitorchRoutes(t *testing.T, n *Node) []plan.Route {
	t.Helper()
	rs, err := apply.NewPodNet(apply.PodNetConfig{HostNetNS: n.Host.NetNS}).Routes()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestPodNetworkAcrossNodes: two nodes and a machine outside the
// cluster on one LAN. A pod on each node reaches the other's without NAT
// (the receiver sees the sender's pod IP); a pod reaching the outside
// machine is masqueraded (it sees the node's address); the route to a
// node goes when the node dies and when it leaves, and comes back when it
// rejoins.
func TestPodNetworkAcrossNodes(t *testing.T) {
	c := NewCluster(t, Options{Nodes: 2, Extra: 1})
	c.Commit("whoami", map[string]string{"whoami.yaml": whoami})
	c.Start()
	n1, n2, outside := c.Node("n1"), c.Node("n2"), c.Node("n3").Host
	pods := whoamiPods(t, c)
	a, b := pods["n1"], pods["n2"]
	t.Logf("pods: %s on n1, %s on n2", a.IP, b.IP)

	want := []plan.Route{{Dst: netip.MustParsePrefix("10.88.2.0/24"), Via: n2.Host.Addr}}
	Eventually(t, 30*time.Second, "n1 routes n2's pod CIDR via n2", func() (bool, string) {
		got := gitorchRoutes(t, n1)
		return slices.Equal(got, want), fmt.Sprintf("routes %v", got)
	})
	for _, dir := range []struct {
		from, to whoamiPod
		name     string
	}{{a, b, "n1 → n2"}, {b, a, "n2 → n1"}} {
		Eventually(t, 30*time.Second, "pod "+dir.name, func() (bool, string) {
			seen, err := askWhoami(dir.from.NetNS, dir.to.IP)
			if err != nil {
				return false, err.Error()
			}
			if seen != dir.from.IP.String() {
				t.Fatalf("pod %s: the receiver saw %s, want the sender's pod IP %s (no NAT)", dir.name, seen, dir.from.IP)
			}
			return true, ""
		})
	}

	// Egress: the outside machine has no route to any pod CIDR; it sees,
	// and answers, the node's address.
	var ln net.Listener
	if err := outside.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(outside.Addr, 9090).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(conn, conn.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String())
			conn.Close()
		}
	}()
	var seen string
	if err := nsfile.Do(a.NetNS, func() error {
		conn, err := net.DialTimeout("tcp", netip.AddrPortFrom(outside.Addr, 9090).String(), 3*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(conn)
		seen = string(b)
		return err
	}); err != nil {
		t.Fatalf("pod on n1 → outside %s: %v", outside.Addr, err)
	}
	if seen != n1.Host.Addr.String() {
		t.Fatalf("the outside machine saw the pod on n1 come from %s, want n1's address %s", seen, n1.Host.Addr)
	}

	// n2 dies: its route goes once it is dead past the grace, and its
	// pod is unreachable from n1's.
	start := time.Now()
	n2.Kill()
	if err := n2.Host.Cut(); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 60*time.Second, "n1 drops the route to the dead n2", func() (bool, string) {
		got := gitorchRoutes(t, n1)
		return len(got) == 0, fmt.Sprintf("routes %v", got)
	})
	t.Logf("route to n2 gone %v after its death", time.Since(start).Round(time.Millisecond))
	if _, err := askWhoami(a.NetNS, b.IP); err == nil {
		t.Fatal("pod on n1 reached n2's pod with no route to it")
	}

	// n2 comes back (its pod kept running): the route is back, and so
	// is pod-to-pod.
	if err := n2.Host.Restore(); err != nil {
		t.Fatal(err)
	}
	n2.Start()
	Eventually(t, 60*time.Second, "n1 routes n2's pod CIDR again", func() (bool, string) {
		got := gitorchRoutes(t, n1)
		return slices.Equal(got, want), fmt.Sprintf("routes %v", got)
	})
	Eventually(t, 30*time.Second, "pod n1 → n2 after n2's return", func() (bool, string) {
		seen, err := askWhoami(a.NetNS, b.IP)
		if err != nil {
			return false, err.Error()
		}
		return seen == a.IP.String(), "seen from " + seen
	})

	// n2 leaves: the route goes at once (no grace).
	if out, err := n2.CLI("node", "leave", "--server", n2.URL(), "--api-token-file", c.TokenFile, "--timeout", "60s"); err != nil {
		t.Fatalf("node leave: %v\n%s", err, out)
	}
	Eventually(t, 10*time.Second, "n1 drops the route to n2, which left", func() (bool, string) {
		got := gitorchRoutes(t, n1)
		return len(got) == 0, fmt.Sprintf("routes %v", got)
	})

	// Then n2 is wiped: reset, run on it once its agent stopped, removes
	// its table, route, bridge, containers, snapshots and data; a second
	// reset finds nothing.
	if !n2.Wait(30 * time.Second) {
		t.Fatal("n2's agent still runs 30s after it left")
	}
	reset := []string{"node", "reset", "--yes", "--data-dir", n2.DataDir, "--containerd-address", c.CD.Address,
		"--containerd-namespace", n2.Namespace, "--snapshotter", c.CD.Snapshotter}
	out, err := n2.CLI(reset...)
	if err != nil {
		t.Fatalf("node reset: %v\n%s", err, out)
	}
	for _, want := range []string{
		"removed nftables table inet " + apply.PodNetTable,
		"removed route 10.88.1.0/24 via " + n1.Host.Addr.String(),
		"removed link gitorch0 (bridge)",
		"removed snapshot ",
		"removed directory " + n2.DataDir,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("node reset printed\n%s\nwithout %q", out, want)
		}
	}
	if out, err := n2.CLI(reset...); err != nil || out != "nothing of gitorch's on this node\n" {
		t.Fatalf("second node reset: %v\n%s", err, out)
	}
	if got := gitorchRoutes(t, n2); len(got) != 0 {
		t.Fatalf("routes on n2 after reset: %v", got)
	}
}
