package plan

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// deployment is a Deployment of app=name whose container has ports.
func portedDeployment(ns, name string, ports ...corev1.ContainerPort) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		}},
	}
}

// service selects app=app with ports "name:port->target/proto".
func selService(ns, name, app string, ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: ports}}
	if app != "" {
		s.Spec.Selector = map[string]string{"app": app}
	}
	return s
}

func readyPod(ns, name, workload, node, ip string) PodStatus {
	return PodStatus{Namespace: ns, Name: name, Workload: workload, Node: node, Phase: PhaseRunning, Ready: true, IP: ip}
}

func TestEndpoints(t *testing.T) {
	web := portedDeployment("default", "web", corev1.ContainerPort{Name: "http", ContainerPort: 8080}, corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP})
	other := portedDeployment("default", "other", corev1.ContainerPort{Name: "metrics", ContainerPort: 9090})
	other.Spec.Template.Labels = map[string]string{"app": "web"} // selected by web's Service too, without "http"
	db := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
		Spec: appsv1.StatefulSetSpec{ServiceName: "db", Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
		}},
	}
	objects := []runtime.Object{
		web, other, db,
		selService("default", "web", "web",
			corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")},
			corev1.ServicePort{Name: "raw", Port: 7000}),
		selService("default", "db", "db"),
		selService("default", "nothing", "nobody", corev1.ServicePort{Port: 80}),
		selService("default", "manual", "", corev1.ServicePort{Port: 80}),
		selService("prod", "web", "web", corev1.ServicePort{Port: 80}),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.org", Selector: map[string]string{"app": "web"}}},
	}
	unready := readyPod("default", "web-h-2", "Deployment/web", "n2", "10.1.2.2")
	unready.Ready = false
	terminating := readyPod("default", "web-h-3", "Deployment/web", "n2", "10.1.2.3")
	terminating.Phase, terminating.Ready, terminating.Reason = PhaseTerminating, false, ReasonTerminating
	pods := []PodStatus{
		readyPod("default", "web-h-1", "Deployment/web", "n2", "10.1.2.1"),
		readyPod("default", "web-h-0", "Deployment/web", "n1", "10.1.1.1"),
		unready, terminating,
		readyPod("default", "web-h-4", "Deployment/web", "n1", ""),             // no IP yet
		readyPod("default", "gone-h-0", "Deployment/gone", "n1", "10.1.1.9"),   // not in objects
		readyPod("default", "other-h-0", "Deployment/other", "n1", "10.1.1.2"), // no port "http"
		readyPod("default", "db-0", "StatefulSet/db", "n1", "10.1.1.3"),
	}
	got := Endpoints(objects, pods)

	ep := func(pod, node, ip string) Endpoint {
		return Endpoint{Pod: Key{"default", pod}, IP: netip.MustParseAddr(ip), Node: node}
	}
	pe := func(e Endpoint, port int32) PortEndpoint { return PortEndpoint{Endpoint: e, TargetPort: port} }
	w0, w1, o0 := ep("web-h-0", "n1", "10.1.1.1"), ep("web-h-1", "n2", "10.1.2.1"), ep("other-h-0", "n1", "10.1.1.2")
	db0 := ep("db-0", "n1", "10.1.1.3")
	db0.Hostname, db0.Subdomain = "db-0", "db"
	want := []ServiceEndpoints{
		{Namespace: "default", Name: "db", Pods: []Endpoint{db0}},
		{Namespace: "default", Name: "nothing", Ports: []PortEndpoints{{Protocol: corev1.ProtocolTCP, Port: 80}}},
		{Namespace: "default", Name: "web", Pods: []Endpoint{o0, w0, w1}, Ports: []PortEndpoints{
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, Endpoints: []PortEndpoint{pe(w0, 8080), pe(w1, 8080)}},
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, Endpoints: []PortEndpoint{pe(w0, 53), pe(w1, 53)}},
			{Name: "raw", Protocol: corev1.ProtocolTCP, Port: 7000, Endpoints: []PortEndpoint{pe(o0, 7000), pe(w0, 7000), pe(w1, 7000)}},
		}},
		{Namespace: "prod", Name: "web", Ports: []PortEndpoints{{Protocol: corev1.ProtocolTCP, Port: 80}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if e, ok := FindEndpoints(got, Key{"default", "web"}); !ok || len(e.Pods) != 3 {
		t.Errorf("FindEndpoints(default/web) = %+v, %v", e, ok)
	}
}

func clusterIPService(ns, name, ip string, ports ...corev1.ServicePort) (*corev1.Service, ServiceIP) {
	s := selService(ns, name, name, ports...)
	return s, ServiceIP{Namespace: ns, Name: name, ClusterIP: ip}
}

func endpointsOf(ns, name string, port int32, proto corev1.Protocol, target int32, eps ...Endpoint) ServiceEndpoints {
	pe := PortEndpoints{Protocol: proto, Port: port}
	for _, e := range eps {
		pe.Endpoints = append(pe.Endpoints, PortEndpoint{Endpoint: e, TargetPort: target})
	}
	return ServiceEndpoints{Namespace: ns, Name: name, Pods: eps, Ports: []PortEndpoints{pe}}
}

func TestProxyRules(t *testing.T) {
	e1 := Endpoint{Pod: Key{"default", "web-0"}, IP: netip.MustParseAddr("10.1.1.1"), Node: "n1"}
	e2 := Endpoint{Pod: Key{"default", "web-1"}, IP: netip.MustParseAddr("10.1.2.1"), Node: "n2"}
	opts := ProxyOptions{Node: "n1", NodePortRange: DefaultNodePortRange}
	tcp80 := corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(8080)}
	for _, tc := range []struct {
		name   string
		mutate func(s *corev1.Service)
		eps    []Endpoint
		want   string
	}{
		{
			name: "a ClusterIP Service picks among its endpoints, each marking hairpin traffic",
			eps:  []Endpoint{e1, e2},
			want: `service-ips: 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/80
hairpin: 10.1.1.1 . 10.1.1.1
hairpin: 10.1.2.1 . 10.1.2.1
chain svc-default/web/tcp/80
	numgen random mod 2 == 0 meta l4proto tcp dnat ip to 10.1.1.1:8080
	meta l4proto tcp dnat ip to 10.1.2.1:8080
`,
		},
		{
			name: "no endpoint: the port is refused, on the ClusterIP and the nodePort",
			mutate: func(s *corev1.Service) {
				s.Spec.Type, s.Spec.Ports[0].NodePort = corev1.ServiceTypeNodePort, 30080
			},
			want: "no-endpoint-services: 10.96.0.20 . tcp . 80\nno-endpoint-nodeports: tcp . 30080\n",
		},
		{
			name: "a NodePort masquerades and goes to the Service chain",
			mutate: func(s *corev1.Service) {
				s.Spec.Type, s.Spec.Ports[0].NodePort = corev1.ServiceTypeNodePort, 30080
			},
			eps: []Endpoint{e2},
			want: `service-ips: 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/80
service-nodeports: tcp . 30080 : goto ext-default/web/tcp/80
hairpin: 10.1.2.1 . 10.1.2.1
chain ext-default/web/tcp/80
	fib daddr type != local return
	ip daddr 127.0.0.0/8 return
	jump mark-for-masquerade
	goto svc-default/web/tcp/80
chain svc-default/web/tcp/80
	meta l4proto tcp dnat ip to 10.1.2.1:8080
`,
		},
		{
			name: "externalTrafficPolicy Local: outside traffic only to this node's endpoints, unmasqueraded",
			mutate: func(s *corev1.Service) {
				s.Spec.Type, s.Spec.Ports[0].NodePort = corev1.ServiceTypeNodePort, 30080
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			},
			eps: []Endpoint{e1, e2},
			want: `service-ips: 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/80
service-nodeports: tcp . 30080 : goto ext-default/web/tcp/80
hairpin: 10.1.1.1 . 10.1.1.1
hairpin: 10.1.2.1 . 10.1.2.1
chain ext-default/web/tcp/80
	fib daddr type != local return
	ip daddr 127.0.0.0/8 return
	fib saddr type local jump mark-for-masquerade
	fib saddr type local goto svc-default/web/tcp/80
	meta l4proto tcp dnat ip to 10.1.1.1:8080
chain svc-default/web/tcp/80
	numgen random mod 2 == 0 meta l4proto tcp dnat ip to 10.1.1.1:8080
	meta l4proto tcp dnat ip to 10.1.2.1:8080
`,
		},
		{
			name: "externalTrafficPolicy Local without a local endpoint drops outside traffic",
			mutate: func(s *corev1.Service) {
				s.Spec.Type, s.Spec.Ports[0].NodePort = corev1.ServiceTypeNodePort, 30080
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			},
			eps: []Endpoint{e2},
			want: `service-ips: 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/80
service-nodeports: tcp . 30080 : goto ext-default/web/tcp/80
hairpin: 10.1.2.1 . 10.1.2.1
chain ext-default/web/tcp/80
	fib daddr type != local return
	ip daddr 127.0.0.0/8 return
	fib saddr type local jump mark-for-masquerade
	fib saddr type local goto svc-default/web/tcp/80
	drop
chain svc-default/web/tcp/80
	meta l4proto tcp dnat ip to 10.1.2.1:8080
`,
		},
		{
			name: "a nodePort outside the range gets no rule",
			mutate: func(s *corev1.Service) {
				s.Spec.Type, s.Spec.Ports[0].NodePort = corev1.ServiceTypeNodePort, 20080
			},
			want: "no-endpoint-services: 10.96.0.20 . tcp . 80\n",
		},
		{
			name: "ClientIP affinity: a set per endpoint with the timeout, checked before the pick",
			mutate: func(s *corev1.Service) {
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				timeout := int32(60)
				s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &timeout}}
			},
			eps: []Endpoint{e1},
			want: `service-ips: 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/80
set aff-default/web/tcp/80__10.1.1.1/8080 timeout 60s
hairpin: 10.1.1.1 . 10.1.1.1
chain svc-default/web/tcp/80
	ip saddr @aff-default/web/tcp/80__10.1.1.1/8080 meta l4proto tcp update @aff-default/web/tcp/80__10.1.1.1/8080 { ip saddr } dnat ip to 10.1.1.1:8080
	meta l4proto tcp update @aff-default/web/tcp/80__10.1.1.1/8080 { ip saddr } dnat ip to 10.1.1.1:8080
`,
		},
		{
			name:   "headless: no rules",
			mutate: func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone },
			eps:    []Endpoint{e1},
			want:   "",
		},
		{
			name:   "SCTP: no rules",
			mutate: func(s *corev1.Service) { s.Spec.Ports[0].Protocol = corev1.ProtocolSCTP },
			eps:    []Endpoint{e1},
			want:   "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ip := clusterIPService("default", "web", "10.96.0.20", tcp80)
			if tc.mutate != nil {
				tc.mutate(s)
			}
			ips := AllocateClusterIPs([]*corev1.Service{s}, DefaultServiceCIDR)
			if !ips[0].Headless && s.Spec.Type != corev1.ServiceTypeExternalName {
				ips = []ServiceIP{ip}
			}
			eps := []ServiceEndpoints{endpointsOf("default", "web", 80, protocol(s.Spec.Ports[0].Protocol), 8080, tc.eps...)}
			r := ProxyRules([]*corev1.Service{s}, ips, eps, opts)
			if got := r.String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// randomServices makes n Services of mixed kinds with ClusterIPs and
// endpoints, for properties and benchmarks.
func randomServices(r *rand.Rand, n, endpoints int) ([]*corev1.Service, []ServiceIP, []ServiceEndpoints) {
	var svcs []*corev1.Service
	for i := range n {
		s := selService("ns"+fmt.Sprint(i%7), fmt.Sprintf("svc-%d", i), "", corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)})
		if r.IntN(3) == 0 {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP})
		}
		switch r.IntN(6) {
		case 0:
			s.Spec.Type = corev1.ServiceTypeNodePort
		case 1:
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		case 2:
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		case 3:
			if r.IntN(4) == 0 {
				s.Spec.ClusterIP = corev1.ClusterIPNone
			}
		}
		svcs = append(svcs, s)
	}
	svcs = AllocateNodePorts(svcs, DefaultNodePortRange)
	ips := AllocateClusterIPs(svcs, DefaultServiceCIDR)
	var eps []ServiceEndpoints
	for i, s := range svcs {
		se := ServiceEndpoints{Namespace: s.Namespace, Name: s.Name}
		k := endpoints
		if r.IntN(10) == 0 {
			k = 0
		}
		for j := range k {
			e := Endpoint{Pod: Key{s.Namespace, fmt.Sprintf("%s-%d", s.Name, j)}, IP: netip.AddrFrom4([4]byte{10, byte(j), byte(i >> 8), byte(i)}), Node: fmt.Sprintf("n%d", j%3)}
			se.Pods = append(se.Pods, e)
		}
		for _, sp := range s.Spec.Ports {
			pe := PortEndpoints{Name: sp.Name, Protocol: protocol(sp.Protocol), Port: sp.Port, NodePort: sp.NodePort}
			for _, e := range se.Pods {
				pe.Endpoints = append(pe.Endpoints, PortEndpoint{Endpoint: e, TargetPort: 8080})
			}
			se.Ports = append(se.Ports, pe)
		}
		eps = append(eps, se)
	}
	return svcs, ips, eps
}

func TestProxyRulesProperties(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		svcs, ips, eps := randomServices(r, 200, 1+r.IntN(4))
		opts := ProxyOptions{Node: "n1", NodePortRange: DefaultNodePortRange}
		a := ProxyRules(svcs, ips, eps, opts)
		b := ProxyRules(shuffled(r, svcs), shuffled(r, ips), shuffled(r, eps), opts)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: the ruleset depends on the order of its inputs", seed)
		}
		// Every chain a map or rule names exists; every set a rule
		// names exists; every chain and set is named by something.
		named := map[string]bool{}
		for _, els := range [][]MapElement{a.ServiceIPs(), a.NodePorts()} {
			for _, e := range els {
				named[e.Chain] = true
			}
		}
		sets := map[string]bool{}
		for _, c := range a.Chains() {
			for _, rule := range c.Rules {
				if rule.Chain != "" {
					named[rule.Chain] = true
				}
				if rule.Remember != "" {
					sets[rule.Remember] = true
				}
				if rule.SrcInSet != "" {
					sets[rule.SrcInSet] = true
				}
			}
			// The pick: the i-th of the N last DNAT rules matches with
			// 1/(N-i), the last always, so each endpoint gets 1/N.
			var pick []Rule
			for _, rule := range c.Rules {
				if rule.Op == OpDNAT && rule.SrcInSet == "" {
					pick = append(pick, rule)
				}
			}
			for i, rule := range pick {
				if want := uint32(len(pick) - i); i == len(pick)-1 && rule.RandomMod != 0 || i < len(pick)-1 && rule.RandomMod != want {
					t.Fatalf("seed %d: %s: rule %d of the pick is %q", seed, c.Name, i, rule)
				}
			}
			if len(c.Name) > 256 {
				t.Fatalf("chain name %q is longer than nftables allows", c.Name)
			}
		}
		for n := range named {
			if a.Chain(n) == nil {
				t.Fatalf("seed %d: chain %s is named but missing", seed, n)
			}
		}
		for _, c := range a.Chains() {
			if !named[c.Name] {
				t.Fatalf("seed %d: chain %s is not reached", seed, c.Name)
			}
		}
		if len(sets) != len(a.Sets()) {
			t.Fatalf("seed %d: %d sets named, %d made", seed, len(sets), len(a.Sets()))
		}
		// Every endpoint a Service DNATs to is in its hairpin addresses,
		// and nothing else.
		for _, s := range a.Services {
			var to []netip.Addr
			for _, c := range s.Chains {
				for _, rule := range c.Rules {
					if rule.Op == OpDNAT {
						to = append(to, rule.To.Addr())
					}
				}
			}
			slices.SortFunc(to, netip.Addr.Compare)
			if to = slices.Compact(to); !slices.Equal(to, s.Hairpin) {
				t.Fatalf("seed %d: %v DNATs to %v, hairpin %v", seed, s.Service, to, s.Hairpin)
			}
		}
		// A port is either served or refused, never both.
		served := map[string]bool{}
		for _, e := range a.ServiceIPs() {
			served[e.Addr.String()+e.Proto.String()+fmt.Sprint(e.Port)] = true
		}
		for _, e := range a.NoEndpointIPs() {
			if served[e.Addr.String()+e.Proto.String()+fmt.Sprint(e.Port)] {
				t.Fatalf("seed %d: %s is served and refused", seed, e)
			}
		}
	}
}

func TestProxyRulesFromReusesWhatDidNotChange(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	svcs, ips, eps := randomServices(r, 300, 3)
	opts := ProxyOptions{Node: "n1", NodePortRange: DefaultNodePortRange}
	prev := ProxyRules(svcs, ips, eps, opts)
	// One Service loses an endpoint, one goes, one comes.
	eps = slices.Clone(eps)
	lost := eps[10].Key()
	eps[10].Ports = slices.Clone(eps[10].Ports)
	eps[10].Ports[0].Endpoints = eps[10].Ports[0].Endpoints[1:]
	gone := Key{svcs[20].Namespace, svcs[20].Name}
	svcs = slices.Delete(slices.Clone(svcs), 20, 21)
	came := selService("zz", "new", "", corev1.ServicePort{Port: 80})
	svcs = append(svcs, came)
	ips = AllocateClusterIPs(svcs, DefaultServiceCIDR)
	got := ProxyRulesFrom(&prev, svcs, ips, eps, opts)
	want := ProxyRules(svcs, ips, eps, opts)
	if !got.Equal(&want) || got.String() != want.String() {
		t.Fatal("ProxyRulesFrom differs from ProxyRules")
	}
	old := map[Key]*ServiceRules{}
	for _, s := range prev.Services {
		old[s.Service] = s
	}
	kept := 0
	for _, s := range got.Services {
		o := old[s.Service]
		switch {
		case s.Service == lost || s.Service == gone || s.Service.Namespace == "zz":
			if o == s {
				t.Errorf("%v kept its rules", s.Service)
			}
		case o == s:
			kept++
		default:
			// A Service whose ClusterIP moved (the new Service took its
			// address) is computed again.
			if ip, _ := FindServiceIP(ips, s.Service); o != nil && ip == o.from.ip {
				t.Errorf("%v: rules computed again though nothing changed", s.Service)
			}
		}
	}
	if kept < len(got.Services)-5 {
		t.Errorf("%d of %d Services kept their rules", kept, len(got.Services))
	}
	// Options and the number of tables are inputs too.
	again := ProxyRulesFrom(&got, svcs, ips, eps, ProxyOptions{Node: "n2", NodePortRange: DefaultNodePortRange})
	for i, s := range again.Services {
		if s == got.Services[i] {
			t.Fatalf("%v kept its rules for another node", s.Service)
		}
	}
}

func TestProxyShards(t *testing.T) {
	for n, want := range map[int]int{0: 1, 1: 1, 512: 1, 513: 2, 1024: 2, 1025: 4, 10000: 32, 1 << 20: MaxProxyShards} {
		if got := ProxyShards(n); got != want {
			t.Errorf("ProxyShards(%d) = %d, want %d", n, got, want)
		}
	}
	svcs, ips, eps := randomServices(rand.New(rand.NewPCG(9, 9)), 3000, 1)
	r := ProxyRules(svcs, ips, eps, ProxyOptions{Node: "n1", NodePortRange: DefaultNodePortRange})
	if r.Shards != 8 {
		t.Fatalf("%d Services with rules in %d tables", len(r.Services), r.Shards)
	}
	count := make([]int, r.Shards)
	for _, s := range r.Services {
		if s.Shard != ProxyShard(s.Service, r.Shards) || s.Shard < 0 || s.Shard >= r.Shards {
			t.Fatalf("%v in table %d", s.Service, s.Shard)
		}
		count[s.Shard]++
	}
	for i, c := range count {
		// About 3000*5/6/8 each; far fewer or more is a poor spread.
		if c < len(r.Services)/r.Shards/2 || c > len(r.Services)/r.Shards*2 {
			t.Errorf("table %d holds %d of %d Services: %v", i, c, len(r.Services), count)
		}
	}
}

func TestProxyRulesTwoServicesOnOneNodePort(t *testing.T) {
	mk := func(name string) *corev1.Service {
		s := selService("default", name, name, corev1.ServicePort{Port: 80, NodePort: 30080})
		s.Spec.Type = corev1.ServiceTypeNodePort
		return s
	}
	svcs := []*corev1.Service{mk("b"), mk("a")}
	ips := AllocateClusterIPs(svcs, DefaultServiceCIDR)
	var eps []ServiceEndpoints
	for i, s := range svcs {
		e := Endpoint{Pod: Key{"default", s.Name + "-0"}, IP: netip.AddrFrom4([4]byte{10, 1, 1, byte(i + 1)}), Node: "n1"}
		eps = append(eps, ServiceEndpoints{Namespace: "default", Name: s.Name, Pods: []Endpoint{e},
			Ports: []PortEndpoints{{Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 30080, Endpoints: []PortEndpoint{{Endpoint: e, TargetPort: 80}}}}})
	}
	r := ProxyRules(svcs, ips, eps, ProxyOptions{Node: "n1", NodePortRange: DefaultNodePortRange})
	nps := r.NodePorts()
	if len(nps) != 1 || nps[0].Chain != "ext-default/a/tcp/80" {
		t.Fatalf("node ports %v", nps)
	}
	if r.Chain("ext-default/b/tcp/80") != nil || r.Chain("svc-default/b/tcp/80") == nil {
		t.Errorf("b's chains:\n%s", r.String())
	}
}

func TestAllocateNodePorts(t *testing.T) {
	mk := func(name string, ports ...int32) *corev1.Service {
		s := selService("default", name, name)
		s.Spec.Type = corev1.ServiceTypeNodePort
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: 80, NodePort: p})
		}
		return s
	}
	r := PortRange{30000, 30003}
	in := []*corev1.Service{mk("c", 0), mk("a", 30001), mk("b", 0, 0), mk("d", 0)}
	out := AllocateNodePorts(in, r)
	var got []string
	for _, s := range out {
		for _, p := range s.Spec.Ports {
			got = append(got, fmt.Sprintf("%s:%d", s.Name, p.NodePort))
		}
	}
	// a keeps 30001; b and c take the other three; d finds the range full.
	if got[0] != "a:30001" || got[len(got)-1] != "d:0" || strings.Count(strings.Join(got, " "), ":0") != 1 {
		t.Errorf("got %v", got)
	}
	seen := map[string]bool{}
	for _, g := range got[:4] {
		p := g[strings.Index(g, ":"):]
		if seen[p] {
			t.Errorf("nodePort %s given twice: %v", p, got)
		}
		seen[p] = true
	}
	if in[0].Spec.Ports[0].NodePort != 0 {
		t.Error("AllocateNodePorts changed its input")
	}
	if !reflect.DeepEqual(AllocateNodePorts(shuffled(rand.New(rand.NewPCG(3, 4)), in), r), out) {
		t.Error("the allocation depends on the order of the Services")
	}
}

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string]PortRange{"30000-32767": DefaultNodePortRange, "8080": {8080, 8080}} {
		if got, err := ParsePortRange(in); err != nil || got != want {
			t.Errorf("ParsePortRange(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "2-1", "0-10", "1-70000", "a-b"} {
		if _, err := ParsePortRange(in); err == nil {
			t.Errorf("ParsePortRange(%q) succeeded", in)
		}
	}
}

func BenchmarkProxyRules(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			svcs, ips, eps := randomServices(rand.New(rand.NewPCG(1, 1)), n, 5)
			opts := ProxyOptions{Node: "n1", NodePortRange: DefaultNodePortRange}
			b.ReportAllocs()
			for b.Loop() {
				ProxyRules(svcs, ips, eps, opts)
			}
		})
	}
}

func TestPodTemplatesAreThoseOfWorkloads(t *testing.T) {
	dep := portedDeployment("a", "web")
	objects := []runtime.Object{
		dep,
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "rs"}},
		&corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "rc"}, Spec: corev1.ReplicationControllerSpec{Template: &corev1.PodTemplateSpec{}}},
		&corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "empty"}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "db"}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "agent"}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "once"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "c", Name: "bare"}},
		selService("a", "web", "web"),
	}
	got := podTemplates(objects)
	want := map[workloadKey]bool{}
	for _, w := range workloads(objects, newBatchDecider(Batch{})) {
		want[workloadKey{w.namespace, w.kind + "/" + w.name}] = true
	}
	if len(got) != len(want) {
		t.Errorf("podTemplates %v, workloads %v", slices.Collect(maps.Keys(got)), slices.Collect(maps.Keys(want)))
	}
	for k := range want {
		if got[k] == nil {
			t.Errorf("no template for %s", k)
		}
	}
	if got[workloadKey{"a", "Deployment/web"}] != &dep.Spec.Template {
		t.Error("the Deployment's template is a copy")
	}
}

// TestEndpointsSelectAsLabelSelectors: the index Endpoints keeps finds
// what matching every Service's selector against every pod's labels finds.
func TestEndpointsSelectAsLabelSelectors(t *testing.T) {
	for seed := range uint64(30) {
		r := rand.New(rand.NewPCG(seed, 11))
		label := func() map[string]string {
			m := map[string]string{}
			for range 1 + r.IntN(3) {
				m[fmt.Sprint("k", r.IntN(3))] = fmt.Sprint("v", r.IntN(3))
			}
			return m
		}
		var objects []runtime.Object
		var pods []PodStatus
		for i := range 20 {
			d := portedDeployment(fmt.Sprint("ns", i%2), fmt.Sprint("d", i), corev1.ContainerPort{ContainerPort: 8080})
			d.Spec.Template.Labels = label()
			objects = append(objects, d)
			for j := range r.IntN(4) {
				pods = append(pods, readyPod(d.Namespace, fmt.Sprintf("d%d-%d", i, j), "Deployment/"+d.Name, "n1", fmt.Sprintf("10.1.%d.%d", i, j)))
			}
		}
		for i := range 15 {
			s := selService(fmt.Sprint("ns", i%2), fmt.Sprint("s", i), "", corev1.ServicePort{Port: 80})
			s.Spec.Selector = label()
			objects = append(objects, s)
		}
		got := Endpoints(objects, shuffled(r, pods))
		for _, se := range got {
			s := objects[slices.IndexFunc(objects, func(o runtime.Object) bool {
				sv, ok := o.(*corev1.Service)
				return ok && sv.Namespace == se.Namespace && sv.Name == se.Name
			})].(*corev1.Service)
			sel := labels.SelectorFromSet(s.Spec.Selector)
			var want []Key
			for _, p := range pods {
				d := objects[slices.IndexFunc(objects, func(o runtime.Object) bool {
					dp, ok := o.(*appsv1.Deployment)
					return ok && dp.Namespace == p.Namespace && "Deployment/"+dp.Name == p.Workload
				})].(*appsv1.Deployment)
				if p.Namespace == s.Namespace && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					want = append(want, p.Key())
				}
			}
			slices.SortFunc(want, Key.Compare)
			var have []Key
			for _, e := range se.Pods {
				have = append(have, e.Pod)
			}
			if !slices.Equal(have, want) || len(se.Ports[0].Endpoints) != len(want) {
				t.Fatalf("seed %d: %s/%s selects %v, want %v", seed, se.Namespace, se.Name, have, want)
			}
		}
	}
}

// BenchmarkEndpoints: index is reading a revision of n Services, each
// selecting a Deployment of its own, once; pods is finding the endpoints
// of them all among 5n ready pods; one-pod-changed is that from the last
// result, as the agent does at every change.
func BenchmarkEndpoints(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var objects []runtime.Object
			var pods []PodStatus
			for i := range n {
				d := portedDeployment(fmt.Sprint("ns", i%10), fmt.Sprint("web-", i), corev1.ContainerPort{ContainerPort: 8080})
				objects = append(objects, d, selService(d.Namespace, d.Name, d.Name, corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(8080)}))
				for j := range 5 {
					pods = append(pods, readyPod(d.Namespace, fmt.Sprintf("%s-%d", d.Name, j), "Deployment/"+d.Name, "n1",
						netip.AddrFrom4([4]byte{10, byte(j), byte(i >> 8), byte(i)}).String()))
				}
			}
			b.Run("index", func(b *testing.B) {
				for b.Loop() {
					NewEndpointIndex(objects)
				}
			})
			x := NewEndpointIndex(objects)
			b.Run("pods", func(b *testing.B) {
				for b.Loop() {
					x.Endpoints(pods)
				}
			})
			// One pod turns unready and back, the endpoints of the others
			// reused.
			flip := [2][]PodStatus{pods, slices.Clone(pods)}
			flip[1][len(pods)/2].Ready = false
			sets := [2]*EndpointSet{x.EndpointsFrom(nil, flip[0])}
			b.Run("one-pod-changed", func(b *testing.B) {
				i := 0
				for b.Loop() {
					i++
					sets[i%2] = x.EndpointsFrom(sets[(i+1)%2], flip[i%2])
				}
			})
		})
	}
}

func TestEndpointsFromReusesWhatDidNotChange(t *testing.T) {
	var objects []runtime.Object
	var pods []PodStatus
	for i := range 50 {
		d := portedDeployment(fmt.Sprint("ns", i%3), fmt.Sprint("web-", i), corev1.ContainerPort{ContainerPort: 8080})
		objects = append(objects, d, selService(d.Namespace, d.Name, d.Name, corev1.ServicePort{Port: 80}))
		for j := range 3 {
			pods = append(pods, readyPod(d.Namespace, fmt.Sprintf("%s-%d", d.Name, j), "Deployment/"+d.Name, "n1", fmt.Sprintf("10.1.%d.%d", i, j)))
		}
	}
	// A Service of two workloads.
	objects = append(objects, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns0", Name: "both"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"tier": "x"}, Ports: []corev1.ServicePort{{Port: 80}}}})
	objects[0].(*appsv1.Deployment).Spec.Template.Labels["tier"] = "x"
	objects[6].(*appsv1.Deployment).Spec.Template.Labels["tier"] = "x"
	x := NewEndpointIndex(objects)
	prev := x.EndpointsFrom(nil, pods)
	if !reflect.DeepEqual(prev.Services, Endpoints(objects, pods)) {
		t.Fatal("EndpointsFrom(nil) differs from Endpoints")
	}
	// web-3's pod 1 turns unready; web-6 (one of both's) loses a pod.
	pods = slices.Clone(pods)
	pods[3*3+1].Ready = false
	pods = slices.Delete(pods, 6*3, 6*3+1)
	next := x.EndpointsFrom(prev, shuffled(rand.New(rand.NewPCG(1, 2)), pods))
	if !reflect.DeepEqual(next.Services, Endpoints(objects, pods)) {
		t.Fatal("EndpointsFrom(prev) differs from Endpoints")
	}
	for i, se := range next.Services {
		reused := len(se.Pods) > 0 && &se.Pods[0] == &prev.Services[i].Pods[0]
		switch se.Name {
		case "web-3", "web-6", "both":
			if reused {
				t.Errorf("%s kept its endpoints though they changed", se.Name)
			}
		default:
			if !reused {
				t.Errorf("%s computed again though nothing changed", se.Name)
			}
		}
	}
	// Another revision's index reuses nothing.
	if other := NewEndpointIndex(objects).EndpointsFrom(next, pods); &other.Services[0].Pods[0] == &next.Services[0].Pods[0] {
		t.Error("endpoints reused across revisions")
	}
}
