package proxy_test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/apply/proxy"
	"github.com/gitorch/gitorch/pkg/plan"
)

// benchCluster is n Services of one TCP port, every fifth a NodePort one,
// each with endpoints pods (10.<i>.<j> addresses), and what plan makes of
// them.
type benchCluster struct {
	services []*corev1.Service
	ips      []plan.ServiceIP
	eps      []plan.ServiceEndpoints
}

func newBenchCluster(n, endpoints int) *benchCluster {
	c := &benchCluster{}
	for i := range n {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", i%10), Name: fmt.Sprintf("svc-%d", i)},
			Spec: corev1.ServiceSpec{
				ClusterIP: netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)}).String(),
				Selector:  map[string]string{"app": fmt.Sprint(i)},
				Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		if i%5 == 0 {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = int32(30000 + i/5%2768)
		}
		c.services = append(c.services, s)
	}
	// Sorted, as the agent has them (plan.AllocateNodePorts sorts them).
	slices.SortFunc(c.services, func(a, b *corev1.Service) int {
		return plan.Key{Namespace: a.Namespace, Name: a.Name}.Compare(plan.Key{Namespace: b.Namespace, Name: b.Name})
	})
	c.ips = plan.AllocateClusterIPs(c.services, netip.MustParsePrefix("10.96.0.0/12"))
	for i, s := range c.services {
		c.eps = append(c.eps, endpointsFor(s, i, endpoints, 0))
	}
	return c
}

// endpointsFor gives Service number i k endpoints, the first at 10.x.y.first.
func endpointsFor(s *corev1.Service, i, k int, first byte) plan.ServiceEndpoints {
	se := plan.ServiceEndpoints{Namespace: s.Namespace, Name: s.Name}
	pe := plan.PortEndpoints{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: s.Spec.Ports[0].NodePort}
	for j := range k {
		e := plan.Endpoint{Pod: plan.Key{Namespace: s.Namespace, Name: fmt.Sprintf("%s-%d", s.Name, j)},
			IP: netip.AddrFrom4([4]byte{10, 128 + byte(i>>16), byte(i >> 8), byte(i)}), Node: fmt.Sprintf("n%d", j%3)}
		e.IP = netip.AddrFrom4([4]byte{10, e.IP.As4()[1] + byte(j)*8, e.IP.As4()[2], e.IP.As4()[3] + first})
		se.Pods = append(se.Pods, e)
		pe.Endpoints = append(pe.Endpoints, plan.PortEndpoint{Endpoint: e, TargetPort: 8080})
	}
	se.Ports = []plan.PortEndpoints{pe}
	return se
}

func (c *benchCluster) ruleset() plan.Ruleset {
	return plan.ProxyRules(c.services, c.ips, c.eps, plan.ProxyOptions{Node: "n1", NodePortRange: plan.DefaultNodePortRange})
}

func benchNetNS(b *testing.B) string {
	b.Helper()
	testenv.RequireRoot(b)
	return applytest.NetNS(b)
}

// BenchmarkFullSync is the first sync of an agent: the whole table in one
// transaction.
func BenchmarkFullSync(b *testing.B) {
	for _, n := range []int{1000, 3000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ns := benchNetNS(b)
			r := newBenchCluster(n, 5).ruleset()
			b.ResetTimer()
			for b.Loop() {
				p, err := proxy.New(proxy.Config{NetNS: ns})
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Sync(r); err != nil {
					b.Fatal(err)
				}
				p.Close()
			}
			b.ReportMetric(float64(r.ChainCount()), "chains")
		})
	}
}

// BenchmarkNftFile is `nft -f` of the same Services: as gitorch's table
// (the ruleset rendered as nft text) and as kube-proxy's nftables layout.
func BenchmarkNftFile(b *testing.B) {
	nft := testenv.RequireBinary(b, "nft")
	nsenter := testenv.RequireBinary(b, "nsenter")
	for _, n := range []int{1000, 10000} {
		for _, layout := range []string{"gitorch", "kube-proxy"} {
			b.Run(fmt.Sprintf("%d/%s", n, layout), func(b *testing.B) {
				ns := benchNetNS(b)
				c := newBenchCluster(n, 5)
				var text string
				if layout == "gitorch" {
					r := c.ruleset()
					text = gitorchText(&r)
				} else {
					text = kubeProxyText(c)
				}
				file := filepath.Join(b.TempDir(), "rules.nft")
				if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for b.Loop() {
					if out, err := exec.Command(nsenter, "--net="+ns, "--", nft, "-f", file).CombinedOutput(); err != nil {
						b.Fatalf("nft -f: %v: %.2000s", err, out)
					}
				}
				b.ReportMetric(float64(len(text))/1e6, "MB-text")
			})
		}
	}
}

// BenchmarkOneServiceChanged is one Service among 10,000 losing or
// regaining an endpoint, as the agent handles it: ruleset is computing the
// ruleset again from the last one (plan.ProxyServices.Rules: the Services
// that did not change keep their rules; the revision's Services are read
// once per revision), sync is writing it (one of the 32 tables changes),
// total is both.
func BenchmarkOneServiceChanged(b *testing.B) {
	ns := benchNetNS(b)
	c := newBenchCluster(10000, 5)
	p, err := proxy.New(proxy.Config{NetNS: ns})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	opts := plan.ProxyOptions{Node: "n1", NodePortRange: plan.DefaultNodePortRange}
	eps := [2][]plan.ServiceEndpoints{c.eps, slices.Clone(c.eps)}
	eps[1][5000] = endpointsFor(c.services[5000], 5000, 4, 0)
	r := plan.ProxyRules(c.services, c.ips, eps[0], opts)
	if err := p.Sync(r); err != nil {
		b.Fatal(err)
	}
	ps := plan.NewProxyServices(c.services, c.ips)
	rs := [2]plan.Ruleset{r, ps.Rules(&r, eps[1], opts)}
	b.Run("sync", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if err := p.Sync(rs[i%2]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ruleset", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			rs[i%2] = ps.Rules(&rs[(i+1)%2], eps[i%2], opts)
		}
	})
	b.Run("total", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			rs[i%2] = ps.Rules(&rs[(i+1)%2], eps[i%2], opts)
			if err := p.Sync(rs[i%2]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(r.Shards), "tables")
}

// BenchmarkConnect is connect latency to the first and the last of
// 10,000 Services (same backend): dispatch is a map lookup, so both should
// be the same.
func BenchmarkConnect(b *testing.B) {
	testenv.RequireRoot(b)
	n := newTestNet(b)
	backend := n.addPod("web-0", 10)
	n.serve(backend, 8080)
	c := newBenchCluster(10000, 5)
	for _, i := range []int{0, 9999} {
		c.eps[i] = plan.ServiceEndpoints{Namespace: c.services[i].Namespace, Name: c.services[i].Name, Ports: []plan.PortEndpoints{{
			Name: "http", Protocol: corev1.ProtocolTCP, Port: 80,
			Endpoints: []plan.PortEndpoint{{Endpoint: plan.Endpoint{Pod: plan.Key{Namespace: "default", Name: "web-0"}, IP: backend.addr, Node: "n1"}, TargetPort: 8080}},
		}}}
	}
	if err := n.proxy.Sync(c.ruleset()); err != nil {
		b.Fatal(err)
	}
	client := n.addPod("client", 20)
	for _, i := range []int{0, 9999} {
		ip, _ := plan.FindServiceIP(c.ips, plan.Key{Namespace: c.services[i].Namespace, Name: c.services[i].Name})
		addr := netip.AddrPortFrom(netip.MustParseAddr(ip.ClusterIP), 80)
		b.Run(fmt.Sprintf("service-%d", i+1), func(b *testing.B) {
			for b.Loop() {
				if err := nsfile.Do(client.netns, func() error {
					conn, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
					if err != nil {
						return err
					}
					defer conn.Close()
					_, err = bufio.NewReader(conn).ReadString('\n')
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMemory is the memory the ruleset of 10,000 Services takes in
// the agent: the ruleset plan computes and the copy the proxy keeps of the
// last one written.
func BenchmarkMemory(b *testing.B) {
	ns := benchNetNS(b)
	c := newBenchCluster(10000, 5)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p, err := proxy.New(proxy.Config{NetNS: ns})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Sync(c.ruleset()); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-kept")
		runtime.KeepAlive(p)
		p.Close()
	}
}

// gitorchText is r as an nft script making the same tables.
func gitorchText(r *plan.Ruleset) string {
	var w strings.Builder
	for i := -1; i < plan.MaxProxyShards; i++ {
		t := "gitorch"
		if i >= 0 {
			t = proxy.ShardTable(t, i)
		}
		fmt.Fprintf(&w, "add table inet %s\ndelete table inet %s\n", t, t)
	}
	w.WriteString(`table inet gitorch {
	set no-endpoint-services { type ipv4_addr . inet_proto . inet_service; }
	set no-endpoint-nodeports { type inet_proto . inet_service; }
	set hairpin { type ipv4_addr . ipv4_addr; }
	chain masquerading {
		ip saddr . ip daddr @hairpin masquerade fully-random
		meta mark & 0x00400000 == 0 return
		meta mark set meta mark ^ 0x00400000
		masquerade fully-random
	}
	chain endpoints-check {
		ip daddr . meta l4proto . th dport @no-endpoint-services goto reject-chain
		fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport @no-endpoint-nodeports goto reject-chain
	}
	chain reject-chain { meta l4proto tcp reject with tcp reset; reject; }
	chain nat-postrouting { type nat hook postrouting priority srcnat; jump masquerading; }
	chain filter-input { type filter hook input priority -110; ct state new jump endpoints-check; }
	chain filter-forward { type filter hook forward priority -110; ct state new jump endpoints-check; }
	chain filter-output { type filter hook output priority -110; ct state new jump endpoints-check; }
}
`)
	for i := range r.Shards {
		fmt.Fprintf(&w, `table inet %s {
	map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
	map service-nodeports { type inet_proto . inet_service : verdict; }
	chain mark-for-masquerade { meta mark set meta mark | 0x00400000; }
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
		meta l4proto . th dport vmap @service-nodeports
	}
	chain nat-prerouting { type nat hook prerouting priority dstnat; jump services; }
	chain nat-output { type nat hook output priority -100; jump services; }
}
`, proxy.ShardTable("gitorch", i))
	}
	for _, s := range r.Services {
		t := proxy.ShardTable("gitorch", s.Shard)
		for _, set := range s.Sets {
			fmt.Fprintf(&w, "add set inet %s %s { type ipv4_addr; flags dynamic,timeout; timeout %ds; }\n", t, set.Name, set.Timeout)
		}
		for _, c := range s.Chains {
			fmt.Fprintf(&w, "add chain inet %s %s\n", t, c.Name)
		}
	}
	for _, s := range r.Services {
		t := proxy.ShardTable("gitorch", s.Shard)
		for _, c := range s.Chains {
			for _, rule := range c.Rules {
				fmt.Fprintf(&w, "add rule inet %s %s %s\n", t, c.Name, rule)
			}
		}
	}
	for _, a := range r.Hairpin() {
		fmt.Fprintf(&w, "add element inet gitorch hairpin { %s . %s }\n", a, a)
	}
	for _, s := range r.Services {
		for _, m := range []struct {
			table, name string
			els         []plan.MapElement
		}{
			{proxy.ShardTable("gitorch", s.Shard), "service-ips", s.ServiceIPs},
			{proxy.ShardTable("gitorch", s.Shard), "service-nodeports", s.NodePorts},
			{"gitorch", "no-endpoint-services", s.NoEndpointIPs},
			{"gitorch", "no-endpoint-nodeports", s.NoEndpointNodePorts},
		} {
			for _, e := range m.els {
				key := fmt.Sprintf("%s . %d", e.Proto, e.Port)
				if e.Addr.IsValid() {
					key = e.Addr.String() + " . " + key
				}
				if e.Chain != "" {
					key += " : goto " + e.Chain
				}
				fmt.Fprintf(&w, "add element inet %s %s { %s }\n", m.table, m.name, key)
			}
		}
	}
	return w.String()
}

// kubeProxyText is the same Services as kube-proxy's nftables mode writes
// them on a full sync (pkg/proxy/nftables/proxier.go): table ip
// kube-proxy, the service-ips and service-nodeports maps, a chain per
// Service port (a masquerade rule for traffic from outside the cluster
// CIDR, then numgen over endpoint chains), an external chain per NodePort
// and a chain per endpoint (hairpin masquerade, DNAT).
func kubeProxyText(c *benchCluster) string {
	var w strings.Builder
	w.WriteString(`add table ip kube-proxy
delete table ip kube-proxy
table ip kube-proxy {
	map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
	map service-nodeports { type inet_proto . inet_service : verdict; }
	map no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; }
	chain mark-for-masquerade { mark set mark or 0x4000; }
	chain masquerading { mark and 0x4000 == 0 return; mark set mark xor 0x4000; masquerade fully-random; }
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
		fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
	}
	chain nat-prerouting { type nat hook prerouting priority dstnat; jump services; }
	chain nat-output { type nat hook output priority -100; jump services; }
	chain nat-postrouting { type nat hook postrouting priority srcnat; jump masquerading; }
}
`)
	for i, s := range c.services {
		base := fmt.Sprintf("%s-%s/%s/tcp/http", hash8(i), s.Namespace, s.Name)
		svc := "service-" + base
		fmt.Fprintf(&w, "add chain ip kube-proxy %s\n", svc)
		var eps []string
		for _, e := range c.eps[i].Ports[0].Endpoints {
			ep := fmt.Sprintf("endpoint-%s-%s/%s/tcp/http__%s/%d", hash8(i), s.Namespace, s.Name, e.IP, e.TargetPort)
			eps = append(eps, ep)
			fmt.Fprintf(&w, "add chain ip kube-proxy %s\n", ep)
			fmt.Fprintf(&w, "add rule ip kube-proxy %s ip saddr %s jump mark-for-masquerade\n", ep, e.IP)
			fmt.Fprintf(&w, "add rule ip kube-proxy %s meta l4proto tcp dnat to %s:%d\n", ep, e.IP, e.TargetPort)
		}
		fmt.Fprintf(&w, "add rule ip kube-proxy %s ip daddr %s tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade\n", svc, s.Spec.ClusterIP)
		var vm []string
		for k, ep := range eps {
			vm = append(vm, fmt.Sprintf("%d : goto %s", k, ep))
		}
		fmt.Fprintf(&w, "add rule ip kube-proxy %s numgen random mod %d vmap { %s }\n", svc, len(eps), strings.Join(vm, " , "))
		fmt.Fprintf(&w, "add element ip kube-proxy service-ips { %s . tcp . 80 : goto %s }\n", s.Spec.ClusterIP, svc)
		if np := s.Spec.Ports[0].NodePort; np != 0 {
			ext := "external-" + base
			fmt.Fprintf(&w, "add chain ip kube-proxy %s\n", ext)
			fmt.Fprintf(&w, "add rule ip kube-proxy %s jump mark-for-masquerade\n", ext)
			fmt.Fprintf(&w, "add rule ip kube-proxy %s goto %s\n", ext, svc)
			fmt.Fprintf(&w, "add element ip kube-proxy service-nodeports { tcp . %d : goto %s }\n", np, ext)
		}
	}
	return w.String()
}

// hash8 stands for kube-proxy's 8-character hash in chain names.
func hash8(i int) string { return fmt.Sprintf("%08X", uint32(i)*2654435761) }
