package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/status"
)

// The Services of TestServicesAcrossThreeNodes, at fixed ClusterIPs so
// that the test can dial them without asking DNS.
var (
	echoIP                = netip.MustParseAddr("10.96.0.80")
	nobodyIP              = netip.MustParseAddr("10.96.0.81")
	stickyIP              = netip.MustParseAddr("10.96.0.82")
	udpIP                 = netip.MustParseAddr("10.96.0.83")
	echoNodePort   uint16 = 30080
	nobodyNodePort uint16 = 30081
	localNodePort  uint16 = 30082
)

// echoApp is a Deployment of 3 busybox pods, each answering its own name
// on :8080/name (httpd), its name and the client's address on
// :8080/cgi-bin/who, and echoing what it is sent on :9000 (nc), ready
// while /www/ready exists. Each asks for more than half a node's CPUs, so
// that each node runs one.
func echoApp() string {
	cpu := runtime.NumCPU()*1000/2 + 1
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 3
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
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
          mkdir -p /www
          hostname > /www/name
          echo ok > /www/ready
          mkdir -p /www/cgi-bin
          printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "$(hostname) $REMOTE_ADDR"\n' > /www/cgi-bin/who
          chmod +x /www/cgi-bin/who
          nc -ll -p 9000 -e cat &
          exec httpd -f -p 8080 -h /www
        ports:
        - {name: http, containerPort: 8080}
        - {name: echo, containerPort: 9000}
        readinessProbe:
          httpGet: {path: /ready, port: 8080}
          periodSeconds: 1
          failureThreshold: 1
        resources:
          requests: {cpu: %dm, memory: 8Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  type: NodePort
  clusterIP: %s
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: %d}
  - {name: echo, port: 9000, targetPort: echo}
---
apiVersion: v1
kind: Service
metadata:
  name: echo-local
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: echo}
  ports:
  - {port: 80, targetPort: http, nodePort: %d}
---
apiVersion: v1
kind: Service
metadata:
  name: echo-sticky
spec:
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  clusterIP: %s
  selector: {app: echo}
  ports:
  - {port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata:
  name: echo-headless
spec:
  clusterIP: None
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata:
  name: echo-udp
spec:
  clusterIP: %s
  selector: {app: echo}
  ports:
  - {port: 5353, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata:
  name: nobody
spec:
  type: NodePort
  clusterIP: %s
  selector: {app: nobody}
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: %d}
  - {name: dns, port: 53, protocol: UDP}
`, applytest.BusyboxRef, cpu, echoIP, echoNodePort, localNodePort, stickyIP, udpIP, nobodyIP, nobodyNodePort)
}

// svcPod is a pod of the test: where it runs, its IP and its network
// namespace (a path through its container's PID).
type svcPod struct {
	Name, Node string
	IP         netip.Addr
	NetNS      string
}

// svcPods waits for the pods named prefix* (want of them) to be ready as
// every member reports them, and returns them by name.
func svcPods(t *testing.T, c *Cluster, prefix string, want int, check func(Placement) string) map[string]svcPod {
	t.Helper()
	c.AgreeOn(c.Members(), prefix, want, 90*time.Second, check)
	st, err := c.Members()[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]svcPod{}
	for _, p := range st.Pods {
		if !strings.HasPrefix(p.Name, prefix) {
			continue
		}
		ip, err := netip.ParseAddr(p.IP)
		if err != nil {
			t.Fatalf("pod %s on %s: IP %q: %v", p.Name, p.Node, p.IP, err)
		}
		pods[p.Name] = svcPod{Name: p.Name, Node: p.Node, IP: ip}
	}
	Eventually(t, 30*time.Second, "containerd runs each "+prefix+"* pod once, where the status says", func() (bool, string) {
		ctrs, err := c.Containers()
		if err != nil {
			return false, err.Error()
		}
		for name, p := range pods {
			var on []string
			for _, x := range ctrs {
				if x.Pod == name && x.PID != 0 {
					on = append(on, x.Node)
					p.NetNS = fmt.Sprintf("/proc/%d/ns/net", x.PID)
				}
			}
			if len(on) != 1 || on[0] != p.Node {
				return false, fmt.Sprintf("containerd runs %s on %v; the status says %s", name, on, p.Node)
			}
			pods[name] = p
		}
		return true, ""
	})
	return pods
}

// exec runs cmd in the main container of pod p, through containerd as an
// exec probe does, and returns its output.
func (c *Cluster) exec(t *testing.T, p svcPod, cmd ...string) (string, error) {
	t.Helper()
	n := c.Node(p.Node)
	rt, err := apply.NewContainerd(apply.ContainerdConfig{
		Client: c.CD.Client, Namespace: n.Namespace, Snapshotter: c.CD.Snapshotter,
		DataDir: n.DataDir, RuncRoot: c.CD.RuncRoot,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := rt.Exec(context.Background(), "default", p.Name, "main", cmd, 15*time.Second)
	if err != nil {
		return "", fmt.Errorf("exec %q in %s: %w", cmd, p.Name, err)
	}
	if res.ExitCode != 0 {
		return string(res.Output), fmt.Errorf("exec %q in %s: exit status %d: %s", cmd, p.Name, res.ExitCode, res.Output)
	}
	return string(res.Output), nil
}

// dialIn connects to addr over TCP from inside the network namespace at
// netns; the socket stays in it.
func dialIn(netns string, addr netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := nsfile.Do(netns, func() (err error) {
		conn, err = net.DialTimeout("tcp", addr.String(), timeout)
		return err
	})
	return conn, err
}

// getName asks the echo pod behind addr its name (GET /name), from
// inside netns, on a connection of its own.
func getName(netns string, addr netip.AddrPort) (string, error) {
	return get(netns, addr, "/name")
}

// getWho asks the echo pod behind addr its name and the address it sees
// the request come from.
func getWho(netns string, addr netip.AddrPort) (name, client string, err error) {
	b, err := get(netns, addr, "/cgi-bin/who")
	if err != nil {
		return "", "", err
	}
	name, client, ok := strings.Cut(b, " ")
	if !ok {
		return "", "", fmt.Errorf("GET /cgi-bin/who: %q", b)
	}
	// httpd listens on an IPv6 socket: [::ffff:10.1.2.3] is 10.1.2.3.
	if a, err := netip.ParseAddr(strings.Trim(client, "[]")); err == nil {
		client = a.Unmap().String()
	}
	return name, client, nil
}

// get is GET path of the HTTP server at addr, from inside netns, on a
// connection of its own: the body, trimmed.
func get(netns string, addr netip.AddrPort, path string) (string, error) {
	b, err := applytest.HTTPGetInNetNS(netns, addr.String(), path, 2*time.Second, 5*time.Second)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// spread makes n connections to addr from netns and counts the answers
// of each pod; any failed connection is an error.
func spread(netns string, addr netip.AddrPort, n int) (map[string]int, error) {
	got := map[string]int{}
	for i := 0; i < n; i++ {
		name, err := getName(netns, addr)
		if err != nil {
			return got, fmt.Errorf("connection %d of %d to %s: %w", i+1, n, addr, err)
		}
		got[name]++
	}
	return got, nil
}

// nodeStatus is GET /v1/status of the node, asked from its own network
// namespace.
func nodeStatus(n *Node) (status.Node, error) {
	var st status.Node
	token, err := os.ReadFile(n.c.TokenFile)
	if err != nil {
		return st, err
	}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(n.Host.NetNS, netip.MustParseAddrPort(addr), 2*time.Second)
		},
	}}
	req, err := http.NewRequest("GET", n.URL()+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := cl.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /v1/status of %s: %s", n.Name, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// refusedIn connects to addr from netns, expecting a refusal, and
// returns how long the refusal took.
func refusedIn(netns string, addr netip.AddrPort) (time.Duration, error) {
	start := time.Now()
	conn, err := dialIn(netns, addr, 3*time.Second)
	took := time.Since(start)
	if err == nil {
		conn.Close()
		return took, fmt.Errorf("connect to %s succeeded, want connection refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return took, fmt.Errorf("connect to %s: %v after %v, want connection refused", addr, err, took.Round(time.Millisecond))
	}
	return took, nil
}

// serveUDP answers every datagram to :5353 in the pod's network
// namespace with the pod's name, until the test ends: a UDP server of
// the pod's own, which busybox has not.
func serveUDP(t *testing.T, p svcPod) {
	t.Helper()
	var pc net.PacketConn
	if err := nsfile.Do(p.NetNS, func() (err error) {
		pc, err = net.ListenPacket("udp4", ":5353")
		return err
	}); err != nil {
		t.Fatalf("UDP server in %s: %v", p.Name, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(p.Name), from)
		}
	}()
}

// askUDP sends a datagram to addr from netns, on a socket of its own,
// and returns the answer.
func askUDP(netns string, addr netip.AddrPort) (string, error) {
	var conn net.Conn
	if err := nsfile.Do(netns, func() (err error) {
		conn, err = net.Dial("udp4", addr.String())
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("?")); err != nil {
		return "", err
	}
	b := make([]byte, 512)
	n, err := conn.Read(b)
	return string(b[:n]), err
}

// logTables logs gitorch's nftables tables of the node, for a failure.
func logTables(t *testing.T, n *Node) {
	t.Helper()
	for _, table := range []string{"gitorch", "gitorch-0", apply.PodNetTable} {
		out, err := n.Host.Command("nft", "list", "table", "inet", table).CombinedOutput()
		t.Logf("nft list table inet %s on %s (%v):\n%s", table, n.Name, err, out)
	}
}

// oneEach says why a placement does not have a pod on each of n1-n3.
func oneEach(p Placement) string {
	if per := p.PerNode(); per["n1"] != 1 || per["n2"] != 1 || per["n3"] != 1 {
		return fmt.Sprintf("not one pod on each node: %s", p)
	}
	return ""
}

// TestServicesAcrossThreeNodes runs Services on three real agents and a
// LAN host that runs none, with a Deployment of 3 echo pods, one on each
// node, and a client pod: ClusterIP from a pod and from every node, with
// a fair share for each endpoint; NodePort from another node, the LAN
// host and a pod; externalTrafficPolicy Local; ClientIP affinity; UDP;
// hairpin; a Service without endpoints refuses at once; DNS and wget by
// name from inside a pod; an endpoint that turns unready leaves every
// node's rules; connections through a ClusterIP, open and new, across a
// kill -9 and restart of their node's agent; a dead node's pod leaves
// the survivors' rules.
func TestServicesAcrossThreeNodes(t *testing.T) {
	c := NewCluster(t, Options{Extra: 1})
	c.Commit("services", map[string]string{"echo.yaml": echoApp(), "client.yaml": deployment("client", 1)})
	c.Start()
	lanHost := c.Nodes[3].Host
	// A machine has a default route (here via the LAN host, its
	// gateway): the node's own connections to a ClusterIP are routed
	// before the rules DNAT them, and need a route to get that far
	// (docs/services.md, Limits).
	ip := testenv.RequireBinary(t, "ip")
	for _, n := range c.Members() {
		if out, err := n.Host.Command(ip, "route", "add", "default", "via", lanHost.Addr.String()).CombinedOutput(); err != nil {
			t.Fatalf("default route of %s: %v: %s", n.Name, err, out)
		}
	}
	echo := svcPods(t, c, "echo-", 3, oneEach)
	var client svcPod
	for _, p := range svcPods(t, c, "client-", 1, nil) {
		client = p
	}
	t.Logf("echo pods: %v; client %s on %s (%s)", echo, client.Name, client.Node, client.IP)
	names := slices.Sorted(maps.Keys(echo))
	http80 := netip.AddrPortFrom(echoIP, 80)

	// ClusterIP from the pod: every node's rules must have all three
	// endpoints (the pods' readiness reached every node by gossip).
	Eventually(t, 30*time.Second, "the client pod reaches each echo pod through the ClusterIP", func() (bool, string) {
		got, err := spread(client.NetNS, http80, 30)
		if err != nil {
			return false, err.Error()
		}
		return len(got) == 3, fmt.Sprintf("answers %v", got)
	})
	fair := func(from string, got map[string]int, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("from %s: %v", from, err)
		}
		t.Logf("300 connects to %s from %s: %v", http80, from, got)
		for _, n := range names {
			if got[n] < 50 {
				t.Errorf("from %s: %s answered %d of 300 connects, want at least 50: %v", from, n, got[n], got)
			}
		}
	}
	got, err := spread(client.NetNS, http80, 300)
	fair("the client pod on "+client.Node, got, err)
	for _, n := range c.Members() {
		got, err := spread(n.Host.NetNS, http80, 300)
		fair("node "+n.Name, got, err)
	}

	// NodePort, from another node, from the LAN host (no agent) and
	// from a pod, to its own node and to another: the rules of the node
	// dialled pick among all endpoints, masquerading.
	other := c.Node("n1")
	if client.Node == other.Name {
		other = c.Node("n2")
	}
	for _, from := range []struct {
		name  string
		netns string
		to    *Node
	}{
		{"node n2", c.Node("n2").Host.NetNS, c.Node("n1")},
		{"node n1", c.Node("n1").Host.NetNS, c.Node("n3")},
		{"the LAN host", lanHost.NetNS, c.Node("n2")},
		{"the client pod", client.NetNS, c.Node(client.Node)},
		{"the client pod", client.NetNS, other},
	} {
		addr := netip.AddrPortFrom(from.to.Host.Addr, echoNodePort)
		got, err := spread(from.netns, addr, 60)
		if err != nil {
			t.Fatalf("NodePort %s from %s: %v", addr, from.name, err)
		}
		t.Logf("60 connects to NodePort %s (%s) from %s: %v", addr, from.to.Name, from.name, got)
		if len(got) != 3 {
			t.Errorf("NodePort %s from %s: answers %v, want all three echo pods", addr, from.name, got)
		}
	}

	// UDP through the ClusterIP, from the pod and from a node, to pods
	// on every node; a UDP port without endpoints answers ICMP port
	// unreachable, which a connected socket reads as a refusal.
	for _, p := range echo {
		serveUDP(t, p)
	}
	for _, from := range []struct{ name, netns string }{
		{"the client pod", client.NetNS}, {"node n1", c.Node("n1").Host.NetNS},
	} {
		got := map[string]int{}
		for i := 0; i < 60; i++ {
			name, err := askUDP(from.netns, netip.AddrPortFrom(udpIP, 5353))
			if err != nil {
				t.Fatalf("UDP %s:5353 from %s: %v", udpIP, from.name, err)
			}
			got[name]++
		}
		t.Logf("60 UDP queries to %s:5353 from %s: %v", udpIP, from.name, got)
		if len(got) != 3 {
			t.Errorf("UDP %s:5353 from %s: answers %v, want all three echo pods", udpIP, from.name, got)
		}
		// On the node itself the reject happens in the output hook,
		// before the datagram leaves: the write fails at once with
		// EPERM, as with kube-proxy's reject.
		start := time.Now()
		_, err := askUDP(from.netns, netip.AddrPortFrom(nobodyIP, 53))
		if !errors.Is(err, syscall.ECONNREFUSED) && (from.netns == client.NetNS || !errors.Is(err, syscall.EPERM)) {
			t.Errorf("UDP %s:53 (no endpoints) from %s: %v after %v, want connection refused", nobodyIP, from.name, err, time.Since(start).Round(time.Millisecond))
		} else {
			t.Logf("UDP %s:53 (no endpoints) from %s: %v in %v", nobodyIP, from.name, err, time.Since(start).Round(time.Microsecond))
		}
	}

	// externalTrafficPolicy: Local: from the LAN host, a node's NodePort
	// leads to that node's own pod only, which sees the LAN host's
	// address (no masquerade).
	byNode := map[string]string{}
	for _, p := range echo {
		byNode[p.Node] = p.Name
	}
	for _, n := range c.Members() {
		addr := netip.AddrPortFrom(n.Host.Addr, localNodePort)
		for i := 0; i < 10; i++ {
			name, seen, err := getWho(lanHost.NetNS, addr)
			if err != nil {
				t.Fatalf("NodePort %s (externalTrafficPolicy: Local) from the LAN host: %v", addr, err)
			}
			if name != byNode[n.Name] || seen != lanHost.Addr.String() {
				logTables(t, n)
				t.Fatalf("NodePort %s (externalTrafficPolicy: Local) from the LAN host: answered by %s seeing %s, want %s (on %s) seeing %s",
					addr, name, seen, byNode[n.Name], n.Name, lanHost.Addr)
			}
		}
	}

	// sessionAffinity: ClientIP: every connection of a client goes to
	// the endpoint its first one reached; clients on other nodes are
	// remembered apart (the node's affinity sets are its own).
	for _, from := range []struct{ name, netns string }{
		{"the client pod", client.NetNS}, {"node n1", c.Node("n1").Host.NetNS}, {"node n2", c.Node("n2").Host.NetNS},
	} {
		got, err := spread(from.netns, netip.AddrPortFrom(stickyIP, 80), 30)
		if err != nil {
			t.Fatalf("ClientIP affinity from %s: %v", from.name, err)
		}
		if len(got) != 1 {
			t.Errorf("ClientIP affinity: 30 connects from %s reached %v, want one endpoint", from.name, got)
		}
	}

	// Hairpin: an echo pod reaches its own Service and, picked, itself.
	for _, name := range names {
		p := echo[name]
		self := false
		for i := 0; i < 60 && !self; i++ {
			got, err := getName(p.NetNS, http80)
			if err != nil {
				t.Fatalf("hairpin: %s → %s: %v", name, http80, err)
			}
			self = got == name
		}
		if !self {
			t.Errorf("hairpin: %s never reached itself in 60 connects to its Service", name)
		}
	}

	// A Service without a ready endpoint refuses at once: its ClusterIP
	// from a pod and from nodes, its NodePort from another node and from
	// the LAN host. The time is logged; the test asks only for a refusal,
	// not a time-out (refusedIn gives up after 3 s).
	for _, from := range []struct {
		name, netns string
		to          netip.AddrPort
	}{
		{"the client pod", client.NetNS, netip.AddrPortFrom(nobodyIP, 80)},
		{"node n1", c.Node("n1").Host.NetNS, netip.AddrPortFrom(nobodyIP, 80)},
		{"node n2", c.Node("n2").Host.NetNS, netip.AddrPortFrom(nobodyIP, 80)},
		{"node n2", c.Node("n2").Host.NetNS, netip.AddrPortFrom(c.Node("n1").Host.Addr, nobodyNodePort)},
		{"the LAN host", lanHost.NetNS, netip.AddrPortFrom(c.Node("n3").Host.Addr, nobodyNodePort)},
	} {
		took, err := refusedIn(from.netns, from.to)
		if err != nil {
			t.Errorf("Service nobody, %s from %s: %v", from.to, from.name, err)
			continue
		}
		t.Logf("Service nobody, %s from %s: connection refused in %v", from.to, from.name, took.Round(time.Microsecond))
	}

	// DNS from inside the pod, through the resolv.conf gitorch wrote.
	// busybox nslookup asks every search domain and exits 1 when one of
	// them is NXDOMAIN, as all but the first are for a short name: the
	// answer is what counts.
	fqdn := "echo.default.svc.cluster.local"
	for _, q := range []string{fqdn, "echo"} {
		out, err := c.exec(t, client, "nslookup", q)
		if !strings.Contains(out, "Name:\t"+fqdn+"\nAddress: "+echoIP.String()+"\n") {
			t.Errorf("nslookup %s in the client pod: %v\n%s\nwant %s at %s", q, err, out, fqdn, echoIP)
		}
	}
	// A headless Service's name is its ready pods' addresses, whichever
	// node runs them.
	out, err := c.exec(t, client, "nslookup", "echo-headless.default.svc.cluster.local")
	for _, p := range echo {
		if !strings.Contains(out, "Address: "+p.IP.String()+"\n") {
			t.Errorf("nslookup echo-headless.default.svc.cluster.local in the client pod: %v\n%s\nwant %s (%s on %s)", err, out, p.IP, p.Name, p.Node)
		}
	}
	// (busybox 1.35's wget crashes with -T: the exec's timeout bounds it.)
	out, err = c.exec(t, client, "wget", "-q", "-O", "-", "http://echo/name")
	if err != nil {
		t.Errorf("wget http://echo/name in the client pod: %v", err)
	} else if _, ok := echo[strings.TrimSpace(out)]; !ok {
		t.Errorf("wget http://echo/name in the client pod: %q, want an echo pod's name", out)
	}

	// An endpoint turns unready (its readiness file goes): it leaves
	// every node's rules; the time is from the file's removal, so it
	// includes the probe's period (1 s).
	gone := names[0]
	if _, err := c.exec(t, echo[gone], "rm", "/www/ready"); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	froms := []struct{ name, netns string }{{"the client pod on " + client.Node, client.NetNS}}
	for _, n := range c.Members() {
		froms = append(froms, struct{ name, netns string }{"node " + n.Name, n.Host.NetNS})
	}
	for _, from := range froms {
		// 45 answers in a row without it: (2/3)^45 < 1e-7 by chance.
		Eventually(t, 15*time.Second, fmt.Sprintf("%s gets no answer from the unready %s", from.name, gone), func() (bool, string) {
			got, err := spread(from.netns, http80, 45)
			if err != nil {
				return false, err.Error()
			}
			return got[gone] == 0, fmt.Sprintf("answers %v", got)
		})
		t.Logf("%s: no answer of the unready %s %v after its readiness file went", from.name, gone, time.Since(removed).Round(time.Millisecond))
	}
	for _, from := range froms {
		got, err := spread(from.netns, http80, 100)
		if err != nil {
			t.Fatalf("from %s after %s turned unready: %v", from.name, gone, err)
		}
		if got[gone] != 0 || len(got) != 2 {
			t.Errorf("from %s, 100 connects after %s turned unready: %v, want the other two only", from.name, gone, got)
		}
	}
	if _, err := c.exec(t, echo[gone], "sh", "-c", "echo ok > /www/ready"); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 15*time.Second, gone+" back in the client's answers", func() (bool, string) {
		got, err := spread(client.NetNS, http80, 30)
		if err != nil {
			return false, err.Error()
		}
		return got[gone] > 0, fmt.Sprintf("answers %v", got)
	})

	// An open connection through the ClusterIP outlives a kill -9 and
	// restart of the agent of the client's node, and the first sync of
	// the new agent, which makes the table anew.
	conn, err := dialIn(client.NetNS, netip.AddrPortFrom(echoIP, 9000), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	echoLine := func(line string) error {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, line+"\n"); err != nil {
			return err
		}
		got, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if got != line+"\n" {
			return fmt.Errorf("echoed %q, want %q", got, line+"\n")
		}
		return nil
	}
	if err := echoLine("before"); err != nil {
		t.Fatalf("echo through %s:9000 before the restart: %v", echoIP, err)
	}
	node := c.Node(client.Node)
	// Meanwhile, new connections from the client, every 20 ms: the
	// restarted agent's first sync must not leave the Service without
	// its endpoints.
	type attempt struct {
		at  time.Duration
		ans string
		err error
	}
	hammerStart := time.Now()
	stopHammer := make(chan struct{})
	stop := sync.OnceFunc(func() { close(stopHammer) })
	defer stop() // a failed test stops it too
	hammered := make(chan []attempt, 1)
	go func() {
		var out []attempt
		defer func() { hammered <- out }()
		for i := 0; i < 1500; i++ { // 30 s at the most
			select {
			case <-stopHammer:
				return
			case <-time.After(20 * time.Millisecond):
			}
			name, err := getName(client.NetNS, http80)
			out = append(out, attempt{time.Since(hammerStart), name, err})
		}
	}()
	node.Kill()
	if err := echoLine("while the agent is down"); err != nil {
		t.Fatalf("echo through %s:9000 with %s's agent killed: %v", echoIP, node.Name, err)
	}
	restarted := time.Now()
	node.Start()
	synced := Eventually(t, 30*time.Second, "the restarted agent of "+node.Name+" syncs its Service rules", func() (bool, string) {
		st, err := nodeStatus(node)
		if err != nil {
			return false, err.Error()
		}
		if st.Proxy == nil || st.Proxy.LastSync.Before(restarted) || st.Proxy.LastError != "" || st.Proxy.Services != 6 {
			return false, fmt.Sprintf("proxy %+v", st.Proxy)
		}
		return true, ""
	})
	t.Logf("the restarted agent of %s synced its Service rules within %v", node.Name, synced.Round(time.Millisecond))
	time.Sleep(2 * time.Second) // a probe period and then some, of new connections after the sync
	stop()
	attempts := <-hammered
	failed, per := 0, map[string]int{}
	for _, a := range attempts {
		if a.err != nil {
			failed++
			if failed <= 5 {
				t.Logf("new connection at +%v: %v", a.at.Round(time.Millisecond), a.err)
			}
			continue
		}
		per[a.ans]++
	}
	t.Logf("%d new connections from the client over %v while %s's agent was killed and restarted (at +%v): %d failed, answers %v",
		len(attempts), time.Since(hammerStart).Round(time.Millisecond), node.Name, restarted.Sub(hammerStart).Round(time.Millisecond), failed, per)
	if failed > 0 {
		t.Errorf("%d of %d new connections to %s failed across the restart of %s's agent", failed, len(attempts), http80, node.Name)
	}
	for i := 0; i < 3; i++ {
		if err := echoLine(fmt.Sprintf("after %d", i)); err != nil {
			t.Fatalf("echo through %s:9000 after %s's agent restarted: %v", echoIP, node.Name, err)
		}
	}
	got, err = spread(client.NetNS, http80, 30)
	if err != nil || len(got) != 3 {
		t.Fatalf("new connections from the client after the restart: %v %v", got, err)
	}

	// A node dies (its agent killed, its link cut): once its peers
	// declare it dead, its pod is no endpoint of theirs. Its pod cannot
	// run elsewhere (no node has room for two), so two endpoints stay.
	var dead *Node
	for _, n := range c.Members() {
		if n.Name != client.Node {
			dead = n
			break
		}
	}
	lost := byNode[dead.Name]
	died := time.Now()
	dead.Kill()
	if err := dead.Host.Cut(); err != nil {
		t.Fatal(err)
	}
	for _, from := range froms {
		if from.netns == dead.Host.NetNS {
			continue
		}
		Eventually(t, 30*time.Second, fmt.Sprintf("%s reaches only live endpoints after %s died", from.name, dead.Name), func() (bool, string) {
			got, err := spread(from.netns, http80, 30)
			if err != nil {
				return false, err.Error()
			}
			return got[lost] == 0 && len(got) == 2, fmt.Sprintf("answers %v", got)
		})
		t.Logf("%s: only live endpoints %v after %s died", from.name, time.Since(died).Round(time.Millisecond), dead.Name)
	}
}
