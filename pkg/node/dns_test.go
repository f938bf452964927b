package node_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
)

// loopbackResolver runs a resolver on 127.0.0.1, the node's upstream in
// the test, that knows www.example.com.
func loopbackResolver(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg).SetReply(r)
		if q := r.Question[0]; strings.EqualFold(q.Name, "www.example.com.") {
			if q.Qtype == mdns.TypeA {
				rr, _ := mdns.NewRR("www.example.com. 300 IN A 192.0.2.80")
				m.Answer = append(m.Answer, rr)
			}
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() { srv.ActivateAndServe() })
	t.Cleanup(func() { srv.Shutdown() })
	<-started
	return pc.LocalAddr().String()
}

const dnsScenario = `apiVersion: v1
kind: Service
metadata: {name: kv}
spec:
  clusterIP: None
  selector: {app: kv}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kv}
spec:
  serviceName: kv
  replicas: 1
  selector: {matchLabels: {app: kv}}
  template:
    metadata: {labels: {app: kv}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: server
        image: gitorch.test/busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "mkdir -p /tmp/www && echo kv > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          tcpSocket: {port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: kv}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: search}
spec:
  type: ExternalName
  externalName: www.example.com
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: gitorch.test/busybox:latest
    imagePullPolicy: IfNotPresent
    command:
    - sh
    - -c
    - |
      i=0
      until nslookup kv-0.kv.default.svc.cluster.local >/dev/null 2>&1; do
        i=$((i+1)); [ $i -lt 600 ] || break; sleep 0.1
      done
      cat /etc/resolv.conf
      for q in kv-0.kv web search nope; do echo "== $q"; nslookup $q.default.svc.cluster.local; done
      echo "== srv"; nslookup -type=SRV _http._tcp.kv.default.svc.cluster.local
      echo "== wget"; wget -q -O - http://kv-0.kv.default.svc.cluster.local:8080/
      echo "== done"
      exec sleep 3600
`

// The agent serves the cluster DNS on 10.96.0.10 in the node's network
// namespace and keeps it in step with its pods: a pod on containerd, in
// a namespace of its own, finds a StatefulSet pod by its name once it is
// Ready, a Service by its ClusterIP, an ExternalName through the node's
// upstream, SRV records of the headless Service, and fetches a page from
// the StatefulSet pod by name.
func TestAgentClusterDNS(t *testing.T) {
	n := newTestNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+strings.TrimSuffix(loopbackResolver(t), ":53")+"\nsearch corp.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := loopbackResolver(t)
	nd, err := node.StartDNS(ctx, node.DNSOptions{
		Addr: plan.ClusterDNSAddr(plan.DefaultServiceCIDR), Upstreams: []string{up}, ResolvConf: resolv, NetNS: n.NetNS, Logger: testLogger(t),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-nd.Done; err != nil {
			t.Errorf("DNS server: %v", err)
		}
	})
	if got := nd.Server.Upstreams(); len(got) != 1 || got[0] != up {
		t.Errorf("upstreams %v, want %s (--dns-upstream wins over resolv.conf)", got, up)
	}
	a := n.start(t, func(c *node.Config) { c.DNS, c.HostResolv = nd.Server, nd.Host })
	a.apply(t, n, "dns", map[string]string{"app.yaml": dnsScenario})
	kv := a.waitPod(t, "default", "kv-0", time.Minute, "ready", runningReady)
	out := n.waitLog(t, "default", "client", "c", "== done", 2*time.Minute)
	section := func(name string) string {
		_, after, _ := strings.Cut(out, "== "+name+"\n")
		s, _, _ := strings.Cut(after, "== ")
		return s
	}
	if !strings.Contains(out, "search default.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n") {
		t.Errorf("the pod's resolv.conf:\n%s", out)
	}
	// web is the only Service of the revision that takes an address.
	webIP := plan.AllocateClusterIPs([]*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}}, plan.DefaultServiceCIDR)[0]
	for _, c := range []struct{ section, want string }{
		{"kv-0.kv", "Address: " + kv.IP},
		{"web", "Name:\tweb.default.svc.cluster.local\nAddress: " + webIP.ClusterIP + "\n"},
		{"search", "canonical name = www.example.com"},
		{"search", "Address: 192.0.2.80"},
		{"nope", "NXDOMAIN"},
		{"srv", "service = 0 100 8080 kv-0.kv.default.svc.cluster.local"},
		{"wget", "kv\n"},
	} {
		if got := section(c.section); !strings.Contains(got, c.want) {
			t.Errorf("%s: %q not in\n%s", c.section, c.want, got)
		}
	}
}
