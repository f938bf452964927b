package node_test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
)

// zoneRecorder keeps the last zone the agent gave.
type zoneRecorder struct {
	mu   sync.Mutex
	last plan.DNSZone
	n    int
}

func (z *zoneRecorder) SetZone(zone plan.DNSZone) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.last, z.n = zone, z.n+1
}

func (z *zoneRecorder) find(name string) (plan.DNSName, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.last.Find(name)
}

const dnsApp = `apiVersion: v1
kind: Service
metadata: {name: kv}
spec:
  clusterIP: None
  selector: {app: kv}
  ports: [{name: redis, port: 6379}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kv}
spec:
  serviceName: kv
  replicas: %d
  selector: {matchLabels: {app: kv}}
  template:
    metadata: {labels: {app: kv}}
    spec:
      containers: [{name: c, image: busybox:1.36}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: search}
spec:
  type: ExternalName
  externalName: www.example.com
`

// The agent keeps the DNS records in step with the revision and its pods:
// a StatefulSet's Ready pods appear under their headless Service, and
// leave it when scaled away; the pods' resolv.conf names the cluster DNS.
func TestFakeAgentDNSRecords(t *testing.T) {
	n := newFakeNode(t)
	n.src.commit(map[string]string{"app.yaml": fmt.Sprintf(dnsApp, 2)})
	rec := &zoneRecorder{}
	ag, _ := n.start(t, func(c *node.Config) {
		c.DNS = rec
		c.HostResolv = plan.ResolvConf{Nameservers: []string{"192.0.2.1"}, Searches: []string{"corp.example"}}
	})
	waitFor(t, "kv-0 and kv-1 in DNS", func() bool {
		a, ok0 := rec.find("kv-0.kv.default.svc.cluster.local.")
		b, ok1 := rec.find("kv-1.kv.default.svc.cluster.local.")
		return ok0 && ok1 && len(a.A) == 1 && len(b.A) == 1
	})
	pods := podsOf(ag)
	kv, _ := rec.find("kv.default.svc.cluster.local.")
	want := []netip.Addr{netip.MustParseAddr(pods["kv-0"].IP), netip.MustParseAddr(pods["kv-1"].IP)}
	if fmt.Sprint(kv.A) != fmt.Sprint(want) && fmt.Sprint(kv.A) != fmt.Sprint([]netip.Addr{want[1], want[0]}) {
		t.Errorf("kv has %v, want %v", kv.A, want)
	}
	if srv, ok := rec.find("_redis._tcp.kv.default.svc.cluster.local."); !ok || len(srv.SRV) != 2 {
		t.Errorf("SRV of kv: %+v", srv)
	}
	if w, ok := rec.find("web.default.svc.cluster.local."); !ok || len(w.A) != 1 || w.A[0] == plan.ClusterDNSAddr(plan.DefaultServiceCIDR) {
		t.Errorf("web: %+v", w)
	}
	if s, ok := rec.find("search.default.svc.cluster.local."); !ok || s.CNAME != "www.example.com." {
		t.Errorf("search: %+v", s)
	}
	spec, ok := n.rt.Spec("default", "kv-0")
	if !ok || !strings.Contains(string(spec.ResolvConf), "nameserver 10.96.0.10\n") ||
		!strings.Contains(string(spec.ResolvConf), "search default.svc.cluster.local svc.cluster.local cluster.local corp.example\n") {
		t.Errorf("kv-0's resolv.conf: %q", spec.ResolvConf)
	}

	n.src.commit(map[string]string{"app.yaml": fmt.Sprintf(dnsApp, 1)})
	ag.Sync()
	waitFor(t, "kv-1 gone from DNS", func() bool {
		_, ok := rec.find("kv-1.kv.default.svc.cluster.local.")
		kv, _ := rec.find("kv.default.svc.cluster.local.")
		return !ok && len(kv.A) == 1
	})
}

// Without a DNS server the pods keep their images' resolv.conf.
func TestFakeAgentWithoutDNS(t *testing.T) {
	n := newFakeNode(t)
	n.src.commit(web(1, "busybox:1.36"))
	ag, _ := n.start(t)
	waitFor(t, "the pod running", func() bool { return countPhase(ag, plan.PhaseRunning) == 1 })
	for _, p := range ag.Status().Pods {
		if spec, _ := n.rt.Spec(p.Namespace, p.Name); spec.ResolvConf != nil {
			t.Errorf("%s got a resolv.conf: %q", p.Name, spec.ResolvConf)
		}
	}
}
