package apply

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/gitorch/gitorch/pkg/plan"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodResolvConf(t *testing.T) {
	node := plan.PodDNS{
		ClusterDNS: netip.MustParseAddr("10.96.0.10"),
		Host:       plan.ResolvConf{Nameservers: []string{"192.0.2.1", "192.0.2.2"}, Searches: []string{"corp.example.com"}, Options: []string{"timeout:2", "rotate"}},
	}
	pod := func(f func(*corev1.PodSpec)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
		f(&p.Spec)
		return p
	}
	clusterFirst := plan.ResolvConf{
		Nameservers: []string{"10.96.0.10"},
		Searches:    []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example.com"},
		Options:     []string{"ndots:5"},
	}
	for _, c := range []struct {
		name string
		pod  *corev1.Pod
		dns  plan.PodDNS
		want plan.ResolvConf
		ok   bool
	}{
		{"no policy is ClusterFirst, the node's searches after the cluster's", pod(func(*corev1.PodSpec) {}), node, clusterFirst, true},
		{"ClusterFirst", pod(func(s *corev1.PodSpec) { s.DNSPolicy = corev1.DNSClusterFirst }), node, clusterFirst, true},
		{"ClusterFirstWithHostNet on a host-network pod", pod(func(s *corev1.PodSpec) { s.DNSPolicy = corev1.DNSClusterFirstWithHostNet; s.HostNetwork = true }), node, clusterFirst, true},
		{"ClusterFirst on a host-network pod is Default", pod(func(s *corev1.PodSpec) { s.HostNetwork = true }), node, node.Host, true},
		{"Default is the node's file", pod(func(s *corev1.PodSpec) { s.DNSPolicy = corev1.DNSDefault }), node, node.Host, true},
		{"another cluster domain", pod(func(*corev1.PodSpec) {}), plan.PodDNS{ClusterDNS: netip.MustParseAddr("fd00::a"), Domain: "k8s.example."},
			plan.ResolvConf{Nameservers: []string{"fd00::a"}, Searches: []string{"shop.svc.k8s.example", "svc.k8s.example", "k8s.example"}, Options: []string{"ndots:5"}}, true},
		{"None takes dnsConfig alone", pod(func(s *corev1.PodSpec) {
			s.DNSPolicy = corev1.DNSNone
			s.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.53"}, Searches: []string{"a.example."}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr("1")}, {Name: "edns0"}}}
		}), node, plan.ResolvConf{Nameservers: []string{"192.0.2.53"}, Searches: []string{"a.example"}, Options: []string{"ndots:1", "edns0"}}, true},
		{"dnsConfig adds to ClusterFirst and overrides an option", pod(func(s *corev1.PodSpec) {
			s.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"10.96.0.10", "192.0.2.53"}, Searches: []string{"svc.cluster.local", "extra.example"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr("2")}, {Name: "single-request-reopen"}}}
		}), node, plan.ResolvConf{
			Nameservers: []string{"10.96.0.10", "192.0.2.53"},
			Searches:    []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example.com", "extra.example"},
			Options:     []string{"ndots:2", "single-request-reopen"},
		}, true},
		{"at most 3 nameservers", pod(func(s *corev1.PodSpec) {
			s.DNSPolicy = corev1.DNSDefault
			s.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.3", "192.0.2.4"}}
		}), node, plan.ResolvConf{Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, Searches: []string{"corp.example.com"}, Options: []string{"timeout:2", "rotate"}}, true},
		{"no cluster DNS: the image's file", pod(func(*corev1.PodSpec) {}), plan.PodDNS{}, plan.ResolvConf{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := PodResolvConf(c.pod, c.dns)
			if ok != c.ok || !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v %v\nwant %+v %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestFormatResolvConf(t *testing.T) {
	got := string(FormatResolvConf(plan.ResolvConf{
		Nameservers: []string{"10.96.0.10"},
		Searches:    []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"},
		Options:     []string{"ndots:5"},
	}))
	want := "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestReadResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	content := "# made by hand\ndomain old.example\nnameserver 192.0.2.1 ; the first\nnameserver fd00::53\nsearch a.example b.example\noptions ndots:2\noptions rotate\n\nbogus line\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResolvConf(path)
	want := plan.ResolvConf{Nameservers: []string{"192.0.2.1", "fd00::53"}, Searches: []string{"a.example", "b.example"}, Options: []string{"ndots:2", "rotate"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v\nwant %+v", got, err, want)
	}
	if _, err := ReadResolvConf(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing file read")
	}
}

// PodSpecFor gives the pod its resolv.conf from the node's DNS.
func TestPodSpecForResolvConf(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	in := PodInputs{DNS: plan.PodDNS{ClusterDNS: netip.MustParseAddr("10.96.0.10")}}
	spec, err := PodSpecFor(p, in)
	if err != nil {
		t.Fatal(err)
	}
	if want := "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"; string(spec.ResolvConf) != want {
		t.Errorf("resolv.conf %q", spec.ResolvConf)
	}
	spec, err = PodSpecFor(p, PodInputs{})
	if err != nil || spec.ResolvConf != nil {
		t.Errorf("without a cluster DNS: %q, %v", spec.ResolvConf, err)
	}
}
