package plan

import (
	"math/rand/v2"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// prefixNames draws names that are prefixes of each other, joined by the
// characters that sort before and after '/': "web", "web-prod", "web.a",
// "web0", "webz", ...
func prefixNames(r *rand.Rand, n int) []string {
	stems := []string{"w", "web", "a"}
	seps := []string{"", "-", ".", "0", "z"}
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		s := stems[r.IntN(len(stems))]
		for range r.IntN(3) {
			s += seps[r.IntN(len(seps))] + stems[r.IntN(len(stems))]
		}
		s = strings.Trim(s, "-.")
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// TestLookupsAgreeWithSortOrder: every pod Schedule returns is found by
// Find and every Service by FindServiceIP, whatever namespaces and names
// are prefixes of each other; and a plan of identical input has no
// changes.
func TestLookupsAgreeWithSortOrder(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		namespaces := prefixNames(r, 1+r.IntN(5))
		names := prefixNames(r, 1+r.IntN(5))
		var objs []runtime.Object
		var svcs []*corev1.Service
		for _, ns := range namespaces {
			for _, name := range names {
				if r.IntN(2) == 0 {
					continue
				}
				objs = append(objs, deploymentIn(ns, name, int32(1+r.IntN(3))))
				s := svc(ns, name, "")
				objs = append(objs, s)
				svcs = append(svcs, s)
			}
		}
		nodes := []Node{node("n1", 64000, 1<<17, nil), node("n2", 64000, 1<<17, nil)}
		p := Schedule(objs, nodes)
		for i := range p.Pods {
			q := &p.Pods[i]
			if got := p.Find(q.Namespace, q.Name); got != q {
				t.Fatalf("seed %d: Find(%s) = %v, want the pod at index %d", seed, q.Key(), got, i)
			}
		}
		if p.Find("nosuch", "pod") != nil {
			t.Fatalf("seed %d: Find of a missing pod found one", seed)
		}
		ips := AllocateClusterIPs(svcs, DefaultServiceCIDR)
		for _, s := range svcs {
			ip, ok := FindServiceIP(ips, Key{s.Namespace, s.Name})
			if !ok || ip.Namespace != s.Namespace || ip.Name != s.Name || ip.ClusterIP == "" {
				t.Fatalf("seed %d: FindServiceIP(%s/%s) = %+v, %v", seed, s.Namespace, s.Name, ip, ok)
			}
		}
		if pl := Build(objs, objs, nodes, nodes, Options{}); pl.HasChanges() {
			t.Fatalf("seed %d: a plan of identical input has changes: %+v", seed, pl.Pods)
		}
	}
}

func TestKeyOrder(t *testing.T) {
	// By namespace first: "web" < "web-prod" although "web-prod/a" <
	// "web/a" as strings.
	a, b := Key{"web", "z"}, Key{"web-prod", "a"}
	if a.Compare(b) >= 0 || b.Compare(a) <= 0 || a.Compare(a) != 0 {
		t.Fatalf("Key order: %v vs %v", a, b)
	}
	if a.String() != "web/z" {
		t.Fatalf("String = %q", a.String())
	}
}

func deploymentIn(ns, name string, replicas int32) *appsv1.Deployment {
	d := deployment(name, replicas, "nginx:1.27")
	d.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: name}
	return d
}
