package apply_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/dns"
	"github.com/gitorch/gitorch/pkg/plan"
)

// upstreamOnLoopback runs a resolver on 127.0.0.1 that knows
// www.example.com, as the node's upstream.
func upstreamOnLoopback(t *testing.T) string {
	t.Helper()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg).SetReply(r)
		m.RecursionAvailable = true
		q := r.Question[0]
		switch {
		case strings.EqualFold(q.Name, "www.example.com.") && q.Qtype == mdns.TypeA:
			rr, _ := mdns.NewRR("www.example.com. 300 IN A 192.0.2.80")
			m.Answer = append(m.Answer, rr)
		case strings.EqualFold(q.Name, "www.example.com."):
		default:
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: h}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() { srv.ActivateAndServe() })
	t.Cleanup(func() { srv.Shutdown() })
	<-started
	return pc.LocalAddr().String()
}

// A pod in its own network namespace resolves cluster names through the
// node-local DNS server: the server listens on the cluster DNS address,
// held by the dummy interface gitorch-dns in the node's namespace, and
// the pod reaches it through its gateway with the resolv.conf the runtime
// wrote. Names outside the cluster go to the node's upstream.
func TestPodResolvesClusterNames(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	dnsAddr := plan.ClusterDNSAddr(plan.DefaultServiceCIDR)
	if err := apply.EnsureDNSLink(n.NetNS, dnsAddr); err != nil {
		t.Fatal(err)
	}
	if err := apply.EnsureDNSLink(n.NetNS, dnsAddr); err != nil {
		t.Fatalf("a second EnsureDNSLink: %v", err)
	}
	t.Cleanup(func() {
		if err := apply.RemoveDNSLink(n.NetNS); err != nil {
			t.Error(err)
		}
	})

	services := []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kv"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "search"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "www.example.com"}},
	}
	ips := plan.AllocateClusterIPs(services, plan.DefaultServiceCIDR)
	webIP, _ := plan.FindServiceIP(ips, plan.Key{Namespace: "default", Name: "web"})
	eps := map[plan.Key][]plan.DNSEndpoint{{Namespace: "default", Name: "kv"}: {
		{IP: netip.MustParseAddr("10.250.9.77"), Hostname: "kv-0"},
	}}
	srv, err := dns.New(dns.Config{Upstreams: []string{upstreamOnLoopback(t)}, Self: []netip.Addr{dnsAddr}})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetZone(plan.ClusterDNS(services, ips, eps, plan.DefaultClusterDomain))
	var pc net.PacketConn
	var l net.Listener
	if err := nsfile.Do(n.NetNS, func() (err error) {
		pc, l, err = dns.Listen(netip.AddrPortFrom(dnsAddr, 53).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, pc, l) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	in := apply.PodInputs{DNS: plan.PodDNS{ClusterDNS: dnsAddr, Domain: plan.DefaultClusterDomain}}
	kpod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "client"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Image: "gitorch.test/busybox:latest", Command: []string{"sh", "-c", `
cat /etc/resolv.conf
for q in web.default.svc.cluster.local kv-0.kv.default.svc.cluster.local kv.default.svc.cluster.local search.default.svc.cluster.local nope.default.svc.cluster.local; do
  echo "== $q"; nslookup $q
done
echo "== srv"; nslookup -type=SRV _http._tcp.web.default.svc.cluster.local
echo "== short"; nslookup web
echo "== done"`}}},
	}}
	spec, err := apply.PodSpecFor(kpod, in)
	if err != nil {
		t.Fatal(err)
	}
	spec.Containers[0].PullPolicy = apply.PullNever
	if _, err := n.Runtime.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Runtime.StopPod(context.Background(), "default", "client", time.Second) })
	c := waitContainer(t, n.Runtime, "default", "client", "c", 2*time.Minute, exited)
	out := readLog(t, c)
	t.Logf("pod output:\n%s", out)
	section := func(name string) string {
		_, after, _ := strings.Cut(out, "== "+name+"\n")
		s, _, _ := strings.Cut(after, "== ")
		return s
	}
	for _, want := range []string{
		"search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the pod's resolv.conf lacks %q", want)
		}
	}
	checks := []struct{ section, want string }{
		{"web.default.svc.cluster.local", "Address: " + webIP.ClusterIP},
		{"kv-0.kv.default.svc.cluster.local", "Address: 10.250.9.77"},
		{"kv.default.svc.cluster.local", "Address: 10.250.9.77"},
		{"search.default.svc.cluster.local", "canonical name = www.example.com"},
		{"search.default.svc.cluster.local", "Address: 192.0.2.80"},
		{"nope.default.svc.cluster.local", "NXDOMAIN"},
		{"srv", "service = 0 100 80 web.default.svc.cluster.local"},
		{"short", "Name:\tweb.default.svc.cluster.local\nAddress: " + webIP.ClusterIP}, // through the search path
	}
	for _, c := range checks {
		if got := section(c.section); !strings.Contains(got, c.want) {
			t.Errorf("%s: %q not in\n%s", c.section, c.want, got)
		}
	}
	if !strings.Contains(out, "== done") {
		t.Error("the script did not finish")
	}
}
