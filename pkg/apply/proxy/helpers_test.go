package proxy_test

import (
	"net/netip"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/plan"
)

// TestMain fails the run if the tests leave namespaces or links behind.
func TestMain(m *testing.M) { os.Exit(applytest.Main(m)) }

// serviceDef is a Service of one port and the pods behind it.
type serviceDef struct {
	name         string
	ip           string
	port, target int32
	nodePort     int32
	udp, local   bool
	affinity     int32 // ClientIP timeout in seconds; 0: none
	pods         []pod
}

func (d *serviceDef) service() *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: d.name},
		Spec: corev1.ServiceSpec{
			ClusterIP: d.ip, Selector: map[string]string{"app": d.name},
			Ports: []corev1.ServicePort{{Name: "p", Port: d.port, TargetPort: intstr.FromInt32(d.target), NodePort: d.nodePort}},
		},
	}
	if d.udp {
		s.Spec.Ports[0].Protocol = corev1.ProtocolUDP
	}
	if d.nodePort != 0 {
		s.Spec.Type = corev1.ServiceTypeNodePort
	}
	if d.local {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	if d.affinity > 0 {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &d.affinity}}
	}
	return s
}

// rulesetOf is what plan.ProxyRules makes of the Services on node, their
// pods all on that node.
func rulesetOf(defs []*serviceDef, node string) plan.Ruleset {
	var svcs []*corev1.Service
	var eps []plan.ServiceEndpoints
	for _, d := range defs {
		s := d.service()
		svcs = append(svcs, s)
		se := plan.ServiceEndpoints{Namespace: "default", Name: d.name}
		pe := plan.PortEndpoints{Name: "p", Protocol: s.Spec.Ports[0].Protocol, Port: d.port, NodePort: d.nodePort}
		if pe.Protocol == "" {
			pe.Protocol = corev1.ProtocolTCP
		}
		for _, p := range d.pods {
			e := plan.Endpoint{Pod: plan.Key{Namespace: "default", Name: p.name}, IP: p.addr, Node: node}
			se.Pods = append(se.Pods, e)
			pe.Endpoints = append(pe.Endpoints, plan.PortEndpoint{Endpoint: e, TargetPort: d.target})
		}
		se.Ports = []plan.PortEndpoints{pe}
		eps = append(eps, se)
	}
	ips := plan.AllocateClusterIPs(svcs, plan.DefaultServiceCIDR)
	return plan.ProxyRules(svcs, ips, eps, plan.ProxyOptions{Node: node, NodePortRange: plan.DefaultNodePortRange})
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
