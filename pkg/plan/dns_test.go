package plan

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestClusterDNSAddr(t *testing.T) {
	for _, c := range []struct{ cidr, want string }{
		{"10.96.0.0/12", "10.96.0.10"},
		{"10.96.0.0/28", "10.96.0.10"},
		{"10.96.0.0/29", ""},           // 8 addresses: there is no 10th
		{"10.96.0.0/30", ""},           // nor here
		{"10.96.0.0/28", "10.96.0.10"}, // the broadcast address is .15
		{"10.96.3.7/16", "10.96.0.10"}, // from the masked range
		{"fd00:10:96::/108", "fd00:10:96::a"},
	} {
		got := ClusterDNSAddr(netip.MustParsePrefix(c.cidr))
		if c.want == "" && got.IsValid() || c.want != "" && got.String() != c.want {
			t.Errorf("ClusterDNSAddr(%s) = %v, want %q", c.cidr, got, c.want)
		}
	}
}

// The cluster DNS address is never a Service's: not by allocation, even
// when the range is nearly full, and not when a Service names it.
func TestClusterIPsSkipTheDNSAddress(t *testing.T) {
	cidr := netip.MustParsePrefix("10.0.0.0/28") // 14 usable, one is the DNS
	var svcs []*corev1.Service
	for i := range 13 {
		svcs = append(svcs, svc("default", "s"+string(rune('a'+i)), ""))
	}
	svcs = append(svcs, svc("default", "dns", "10.0.0.10"))
	got := AllocateClusterIPs(svcs, cidr)
	for _, s := range got {
		switch {
		case s.Name == "dns":
			if s.Error != "clusterIP 10.0.0.10 is the cluster DNS address" {
				t.Errorf("a Service naming the DNS address: %+v", s)
			}
		case s.ClusterIP == "10.0.0.10":
			t.Errorf("%s was given the cluster DNS address", s.Name)
		case s.ClusterIP == "":
			t.Errorf("%s got no address (%s) although 13 remain", s.Name, s.Error)
		}
	}
	// One more, and the range is full: the DNS address is not a spare.
	got = AllocateClusterIPs(append(svcs, svc("default", "z", "")), cidr)
	if z, _ := FindServiceIP(got, Key{"default", "z"}); z.Error != "the service range 10.0.0.0/28 is full" {
		t.Errorf("the 14th Service in a range of 13: %+v", z)
	}
}

func svcWith(ns, name string, f func(*corev1.ServiceSpec)) *corev1.Service {
	s := svc(ns, name, "")
	f(&s.Spec)
	return s
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestClusterDNS(t *testing.T) {
	web := svcWith("default", "web", func(s *corev1.ServiceSpec) {
		s.Ports = []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
			{Port: 9000}, // no name: no SRV
		}
	})
	v6 := svcWith("prod", "db", func(s *corev1.ServiceSpec) { s.ClusterIP = "fd00::7" })
	ext := svcWith("default", "search", func(s *corev1.ServiceSpec) {
		s.Type = corev1.ServiceTypeExternalName
		s.ExternalName = "Search.Example.COM."
	})
	headless := svcWith("default", "kv", func(s *corev1.ServiceSpec) {
		s.ClusterIP = corev1.ClusterIPNone
		s.Ports = []corev1.ServicePort{{Name: "redis", Port: 6379, TargetPort: intstr.FromString("redis")}, {Name: "peer", Port: 16379, TargetPort: intstr.FromInt32(16380)}}
	})
	empty := svcWith("default", "nobody", func(s *corev1.ServiceSpec) { s.ClusterIP = corev1.ClusterIPNone })
	failed := svcWith("default", "clash", func(s *corev1.ServiceSpec) {})
	ips := []ServiceIP{
		{Namespace: "default", Name: "clash", Error: "clusterIP 10.96.0.1 is already taken by Service default/web"},
		{Namespace: "default", Name: "kv", Headless: true},
		{Namespace: "default", Name: "nobody", Headless: true},
		{Namespace: "default", Name: "search"},
		{Namespace: "default", Name: "web", ClusterIP: "10.96.0.1"},
		{Namespace: "prod", Name: "db", ClusterIP: "fd00::7"},
	}
	eps := map[Key][]DNSEndpoint{
		{"default", "kv"}: {
			{IP: netip.MustParseAddr("10.244.1.3"), Hostname: "kv-1", Ports: map[string]int32{"redis": 6380}},
			{IP: netip.MustParseAddr("10.244.0.2"), Hostname: "kv-0", Ports: map[string]int32{"redis": 6380}},
			{IP: netip.MustParseAddr("10.244.2.9")}, // not a StatefulSet pod: named by its address
		},
	}
	got := ClusterDNS([]*corev1.Service{web, v6, ext, headless, empty, failed}, ips, eps, "Cluster.Local.")
	want := DNSZone{Domain: "cluster.local", Names: []DNSName{
		{Name: "10-244-2-9.kv.default.svc.cluster.local.", A: addrs("10.244.2.9")},
		{Name: "_dns._udp.web.default.svc.cluster.local.", SRV: []DNSSRV{{Weight: 100, Port: 53, Target: "web.default.svc.cluster.local."}}},
		{Name: "_http._tcp.web.default.svc.cluster.local.", SRV: []DNSSRV{{Weight: 100, Port: 80, Target: "web.default.svc.cluster.local."}}},
		{Name: "_peer._tcp.kv.default.svc.cluster.local.", SRV: []DNSSRV{
			{Weight: 33, Port: 16380, Target: "10-244-2-9.kv.default.svc.cluster.local."},
			{Weight: 33, Port: 16380, Target: "kv-0.kv.default.svc.cluster.local."},
			{Weight: 33, Port: 16380, Target: "kv-1.kv.default.svc.cluster.local."},
		}},
		{Name: "_redis._tcp.kv.default.svc.cluster.local.", SRV: []DNSSRV{
			{Weight: 33, Port: 6379, Target: "10-244-2-9.kv.default.svc.cluster.local."}, // no port of that name known: the Service's port
			{Weight: 33, Port: 6380, Target: "kv-0.kv.default.svc.cluster.local."},
			{Weight: 33, Port: 6380, Target: "kv-1.kv.default.svc.cluster.local."},
		}},
		{Name: "db.prod.svc.cluster.local.", AAAA: addrs("fd00::7")},
		{Name: "kv-0.kv.default.svc.cluster.local.", A: addrs("10.244.0.2")},
		{Name: "kv-1.kv.default.svc.cluster.local.", A: addrs("10.244.1.3")},
		{Name: "kv.default.svc.cluster.local.", A: addrs("10.244.0.2", "10.244.1.3", "10.244.2.9")},
		{Name: "nobody.default.svc.cluster.local."}, // exists, with no data
		{Name: "search.default.svc.cluster.local.", CNAME: "search.example.com."},
		{Name: "web.default.svc.cluster.local.", A: addrs("10.96.0.1")},
	}}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("got  %s\nwant %s", g, w)
	}
	if n, ok := got.Find("kv-0.kv.default.svc.cluster.local."); !ok || n.A[0] != netip.MustParseAddr("10.244.0.2") {
		t.Errorf("Find kv-0: %+v %v", n, ok)
	}
	if _, ok := got.Find("clash.default.svc.cluster.local."); ok {
		t.Error("a Service without a ClusterIP has a name")
	}

	// The same zone from the Services and endpoints in another order.
	rev := map[Key][]DNSEndpoint{{"default", "kv"}: {eps[Key{"default", "kv"}][2], eps[Key{"default", "kv"}][0], eps[Key{"default", "kv"}][1]}}
	again := ClusterDNS([]*corev1.Service{failed, empty, headless, ext, v6, web}, ips, rev, "cluster.local")
	if !reflect.DeepEqual(got, again) {
		t.Error("the zone depends on the order of its input")
	}
}

func TestHeadlessDNSEndpoints(t *testing.T) {
	labels := map[string]string{"app": "kv"}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kv"}, Spec: appsv1.StatefulSetSpec{
		ServiceName: "kv", Replicas: new(int32(3)),
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: 6380}}}}},
		}}}
	prodSts := sts.DeepCopy()
	prodSts.Namespace = "prod"
	solo := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "solo", Labels: labels},
		Spec: corev1.PodSpec{Hostname: "solo", Subdomain: "kv"}}
	stray := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "stray", Labels: labels},
		Spec: corev1.PodSpec{Hostname: "x", Subdomain: "other"}}
	headless := svcWith("default", "kv", func(s *corev1.ServiceSpec) {
		s.ClusterIP = corev1.ClusterIPNone
		s.Selector = labels
		s.Ports = []corev1.ServicePort{{Name: "redis", Port: 6379, TargetPort: intstr.FromString("redis")}}
	})
	withIP := svcWith("default", "kv-ip", func(s *corev1.ServiceSpec) { s.Selector = labels })
	objects := []runtime.Object{sts, prodSts, solo, stray, headless, withIP}
	running := func(ns, name, workload, ip string, ready bool) PodStatus {
		return PodStatus{Namespace: ns, Name: name, Workload: workload, Phase: PhaseRunning, Ready: ready, IP: ip}
	}
	pods := []PodStatus{
		running("default", "kv-0", "StatefulSet/kv", "10.244.0.2", true),
		running("default", "kv-1", "StatefulSet/kv", "10.244.0.3", false), // not ready: left out
		running("default", "solo", "Pod/solo", "10.244.0.4", true),
		running("default", "stray", "Pod/stray", "10.244.0.5", true),
		running("prod", "kv-0", "StatefulSet/kv", "10.244.0.6", true), // another namespace
		// kv-2 has no status yet
	}
	got := HeadlessDNSEndpoints(objects, Endpoints(objects, pods))
	want := map[Key][]DNSEndpoint{{"default", "kv"}: {
		{IP: netip.MustParseAddr("10.244.0.2"), Hostname: "kv-0", Ports: map[string]int32{"redis": 6380}},
		{IP: netip.MustParseAddr("10.244.0.4"), Hostname: "solo"},
		{IP: netip.MustParseAddr("10.244.0.5")}, // its subdomain is another Service's
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// BenchmarkClusterDNS is the zone of 10,000 Services, a tenth of them
// headless with 5 pods each.
func BenchmarkClusterDNS(b *testing.B) {
	var svcs []*corev1.Service
	eps := map[Key][]DNSEndpoint{}
	for i := range 10000 {
		s := svcWith("default", "svc-"+itoa(i), func(s *corev1.ServiceSpec) {
			s.Ports = []corev1.ServicePort{{Name: "http", Port: 80}}
		})
		if i%10 == 0 {
			s.Spec.ClusterIP = corev1.ClusterIPNone
			for j := range 5 {
				eps[Key{"default", s.Name}] = append(eps[Key{"default", s.Name}], DNSEndpoint{IP: netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i + j)}), Hostname: s.Name + "-" + itoa(j)})
			}
		}
		svcs = append(svcs, s)
	}
	ips := AllocateClusterIPs(svcs, DefaultServiceCIDR)
	b.ReportAllocs()
	for b.Loop() {
		ClusterDNS(svcs, ips, eps, DefaultClusterDomain)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
