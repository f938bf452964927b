package plan

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func svc(ns, name, ip string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip}}
}

func TestAllocateClusterIPs(t *testing.T) {
	cidr := netip.MustParsePrefix("10.0.0.0/30") // two usable addresses
	got := AllocateClusterIPs([]*corev1.Service{
		svc("default", "c", ""),
		svc("default", "headless", "None"),
		svc("default", "a", "10.0.0.2"),
		svc("default", "b", "10.0.0.2"),
		svc("default", "out", "192.168.0.1"),
		svc("default", "d", ""),
	}, cidr)
	want := []ServiceIP{
		{Namespace: "default", Name: "a", ClusterIP: "10.0.0.2"},
		{Namespace: "default", Name: "b", Error: "clusterIP 10.0.0.2 is already taken by Service default/a"},
		{Namespace: "default", Name: "c", ClusterIP: "10.0.0.1"},
		{Namespace: "default", Name: "d", Error: "the service range 10.0.0.0/30 is full"},
		{Namespace: "default", Name: "headless", Headless: true},
		{Namespace: "default", Name: "out", Error: "clusterIP 192.168.0.1 is outside the service range 10.0.0.0/30"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestClusterIPsStableAndUnique(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var svcs []*corev1.Service
	for i := 0; i < 2000; i++ {
		svcs = append(svcs, svc([]string{"default", "prod"}[r.IntN(2)], "svc-"+string(rune('a'+r.IntN(26)))+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)), ""))
	}
	cidr := netip.MustParsePrefix("10.96.0.0/20") // 4094 addresses: clashes happen
	a := AllocateClusterIPs(svcs, cidr)
	b := AllocateClusterIPs(shuffled(r, svcs), cidr)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("allocation depends on the order of the Services")
	}
	seen := map[string]bool{}
	for _, s := range a {
		if s.ClusterIP == "" || seen[s.ClusterIP] || !cidr.Contains(netip.MustParseAddr(s.ClusterIP)) {
			t.Fatalf("%s/%s got %q (duplicate, outside or missing)", s.Namespace, s.Name, s.ClusterIP)
		}
		seen[s.ClusterIP] = true
	}
	// Removing a Service never moves one that sits at its home address
	// (where its hash points): at every step of the allocation the taken
	// addresses are a subset of those taken before the removal.
	home := func(s ServiceIP) string {
		one := AllocateClusterIPs([]*corev1.Service{svc(s.Namespace, s.Name, "")}, cidr)
		return one[0].ClusterIP
	}
	for k := 0; k < 20; k++ {
		i := r.IntN(len(svcs))
		rest := append(append([]*corev1.Service(nil), svcs[:i]...), svcs[i+1:]...)
		after := AllocateClusterIPs(rest, cidr)
		j := 0
		for _, s := range a {
			if s.Namespace == svcs[i].Namespace && s.Name == svcs[i].Name {
				continue
			}
			if after[j].Name != s.Name {
				t.Fatalf("result order differs at %s", s.Name)
			}
			if s.ClusterIP == home(s) && after[j].ClusterIP != s.ClusterIP {
				t.Errorf("%s/%s moved from its home address %s to %s when %s was removed", s.Namespace, s.Name, s.ClusterIP, after[j].ClusterIP, svcs[i].Name)
			}
			j++
		}
	}
}

func TestClusterIPDefaultRangeAndIPv6(t *testing.T) {
	got := AllocateClusterIPs([]*corev1.Service{svc("default", "web", "")}, DefaultServiceCIDR)
	if !DefaultServiceCIDR.Contains(netip.MustParseAddr(got[0].ClusterIP)) {
		t.Errorf("got %s outside %s", got[0].ClusterIP, DefaultServiceCIDR)
	}
	v6 := netip.MustParsePrefix("fd00:10:96::/108")
	got = AllocateClusterIPs([]*corev1.Service{svc("default", "web", "")}, v6)
	if !v6.Contains(netip.MustParseAddr(got[0].ClusterIP)) {
		t.Errorf("got %s outside %s", got[0].ClusterIP, v6)
	}
}
