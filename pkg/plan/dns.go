package plan

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// DefaultClusterDomain is the DNS domain of the cluster unless configured,
// as in Kubernetes.
const DefaultClusterDomain = "cluster.local"

// ClusterDNSAddr is the address pods reach the cluster DNS at: the 10th
// address of the service range (10.96.0.10 for the default range), as
// kubeadm gives the kube-dns Service. AllocateClusterIPs never hands it
// out. It is the zero Addr when the range has no such address.
func ClusterDNSAddr(cidr netip.Prefix) netip.Addr {
	cidr = cidr.Masked()
	a := cidr.Addr()
	if !a.IsValid() {
		return netip.Addr{}
	}
	for range 10 {
		a = a.Next()
	}
	if !a.IsValid() || !cidr.Contains(a) {
		return netip.Addr{}
	}
	// In an IPv4 range the last address is the broadcast address.
	if a.Is4() && !cidr.Contains(a.Next()) {
		return netip.Addr{}
	}
	return a
}

// DNSEndpoint is a Ready pod behind a headless Service, as DNS sees it.
type DNSEndpoint struct {
	IP netip.Addr
	// Hostname is set when the pod's hostname and subdomain name it under
	// the Service (spec.hostname, and spec.subdomain equal to the
	// Service's name; a StatefulSet's pods get their own name and the
	// StatefulSet's serviceName): it gets <hostname>.<svc>.<ns>.svc.<domain>.
	Hostname string
	// Ports maps a Service port's name to the pod's port number it
	// resolves to (a named targetPort); a port not listed uses its
	// targetPort number, or its port when the targetPort is a name.
	Ports map[string]int32
}

// DNSName is one name of the cluster's zone and its records. A name with
// no records exists all the same (a headless Service with no Ready pod):
// it is answered with no data, not as a name that does not exist.
type DNSName struct {
	// Name is fully qualified, lower case, with the trailing dot.
	Name  string
	A     []netip.Addr `json:",omitempty"`
	AAAA  []netip.Addr `json:",omitempty"`
	CNAME string       `json:",omitempty"`
	SRV   []DNSSRV     `json:",omitempty"`
}

// DNSSRV is one SRV record.
type DNSSRV struct {
	Priority, Weight, Port uint16
	Target                 string
}

// DNSZone is what the cluster DNS answers for Domain.
type DNSZone struct {
	// Domain is the cluster domain, lower case, without the trailing
	// dot.
	Domain string
	// Names is sorted by Name.
	Names []DNSName
}

// Find returns the records of name (fully qualified, lower case, with the
// trailing dot).
func (z *DNSZone) Find(name string) (DNSName, bool) {
	i, ok := slices.BinarySearchFunc(z.Names, name, func(n DNSName, s string) int { return strings.Compare(n.Name, s) })
	if !ok {
		return DNSName{}, false
	}
	return z.Names[i], true
}

// ClusterDNS computes the records of the cluster domain, as the
// Kubernetes DNS specification gives them:
//
//   - <svc>.<ns>.svc.<domain>: A or AAAA of the Service's ClusterIP (ips,
//     from AllocateClusterIPs), or of the Ready pods of a headless
//     Service (endpoints, by Service); a CNAME to spec.externalName for
//     an ExternalName Service;
//   - _<port>._<proto>.<svc>.<ns>.svc.<domain>: SRV for each named port,
//     to the Service's name with its port, or for a headless Service to
//     each pod's name with the pod's port;
//   - <hostname>.<svc>.<ns>.svc.<domain>: A or AAAA of a headless
//     Service's pod that has a hostname under it (StatefulSet pods); the
//     other pods get a name made of their address with dashes
//     (10-0-0-5), as CoreDNS names them, so that SRV targets resolve.
//
// A Service that got no ClusterIP (ips says why) has no name. The result
// is the same for the same input in any order.
func ClusterDNS(services []*corev1.Service, ips []ServiceIP, endpoints map[Key][]DNSEndpoint, domain string) DNSZone {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	names := map[string]*DNSName{}
	get := func(n string) *DNSName {
		n = strings.ToLower(n)
		if names[n] == nil {
			names[n] = &DNSName{Name: n}
		}
		return names[n]
	}
	addAddr := func(d *DNSName, a netip.Addr) {
		a = a.Unmap()
		if a.Is4() {
			if !slices.Contains(d.A, a) {
				d.A = append(d.A, a)
			}
		} else if !slices.Contains(d.AAAA, a) {
			d.AAAA = append(d.AAAA, a)
		}
	}
	for _, s := range services {
		base := s.Name + "." + s.Namespace + ".svc." + domain + "."
		switch {
		case s.Spec.Type == corev1.ServiceTypeExternalName:
			if s.Spec.ExternalName == "" {
				continue
			}
			get(base).CNAME = strings.ToLower(strings.TrimSuffix(s.Spec.ExternalName, ".")) + "."
			continue
		case s.Spec.ClusterIP == corev1.ClusterIPNone:
			svc := get(base)
			eps := slices.Clone(endpoints[Key{s.Namespace, s.Name}])
			slices.SortFunc(eps, func(a, b DNSEndpoint) int {
				return cmp.Or(a.IP.Compare(b.IP), strings.Compare(a.Hostname, b.Hostname))
			})
			for _, ep := range eps {
				if !ep.IP.IsValid() {
					continue
				}
				addAddr(svc, ep.IP)
				host := ep.Hostname
				if host == "" {
					host = dashed(ep.IP)
				}
				target := host + "." + base
				addAddr(get(target), ep.IP)
				for _, p := range s.Spec.Ports {
					if p.Name == "" {
						continue
					}
					port, ok := ep.Ports[p.Name]
					if !ok {
						port = p.TargetPort.IntVal
						if p.TargetPort.StrVal != "" || port == 0 {
							port = p.Port
						}
					}
					srv := get("_" + p.Name + "._" + protoLabel(p.Protocol) + "." + base)
					srv.SRV = append(srv.SRV, DNSSRV{Port: uint16(port), Target: strings.ToLower(target)})
				}
			}
		default:
			ip, ok := FindServiceIP(ips, Key{s.Namespace, s.Name})
			if !ok || ip.ClusterIP == "" {
				continue
			}
			a, err := netip.ParseAddr(ip.ClusterIP)
			if err != nil {
				continue
			}
			addAddr(get(base), a)
			for _, p := range s.Spec.Ports {
				if p.Name == "" {
					continue
				}
				srv := get("_" + p.Name + "._" + protoLabel(p.Protocol) + "." + base)
				srv.SRV = append(srv.SRV, DNSSRV{Port: uint16(p.Port), Target: strings.ToLower(base)})
			}
		}
	}
	z := DNSZone{Domain: domain, Names: make([]DNSName, 0, len(names))}
	for _, n := range names {
		slices.SortFunc(n.A, netip.Addr.Compare)
		slices.SortFunc(n.AAAA, netip.Addr.Compare)
		slices.SortFunc(n.SRV, func(a, b DNSSRV) int {
			return cmp.Or(strings.Compare(a.Target, b.Target), cmp.Compare(a.Port, b.Port))
		})
		n.SRV = slices.Compact(n.SRV)
		// Equal weights that add up to about 100, as CoreDNS gives them.
		for i := range n.SRV {
			n.SRV[i].Weight = uint16(max(1, 100/len(n.SRV)))
		}
		z.Names = append(z.Names, *n)
	}
	slices.SortFunc(z.Names, func(a, b DNSName) int { return strings.Compare(a.Name, b.Name) })
	return z
}

// protoLabel is the SRV label of a protocol: tcp, udp or sctp.
func protoLabel(p corev1.Protocol) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(string(p))
}

// dashed is an address as a DNS label: 10-0-0-5, fd00--5.
func dashed(a netip.Addr) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(a.Unmap().String())
}

// HeadlessDNSEndpoints gives the DNSEndpoint of each endpoint of each
// headless Service of objects, from eps (the cluster's endpoints, see
// Endpoints), keyed by Service. A pod is named by its hostname when its
// subdomain is that Service (a StatefulSet's pods, whose subdomain is the
// StatefulSet's serviceName, or a pod that sets spec.hostname and
// spec.subdomain); each named port of the Service carries the pod's port
// for it, for SRV records.
func HeadlessDNSEndpoints(objects []runtime.Object, eps []ServiceEndpoints) map[Key][]DNSEndpoint {
	headless := map[Key]bool{}
	for _, o := range objects {
		if s, ok := o.(*corev1.Service); ok && s.Spec.Type != corev1.ServiceTypeExternalName &&
			s.Spec.ClusterIP == corev1.ClusterIPNone && len(s.Spec.Selector) > 0 {
			headless[Key{s.Namespace, s.Name}] = true
		}
	}
	out := map[Key][]DNSEndpoint{}
	for i := range eps {
		se := &eps[i]
		k := se.Key()
		if !headless[k] || len(se.Pods) == 0 {
			continue
		}
		ports := map[Key]map[string]int32{}
		for _, pe := range se.Ports {
			if pe.Name == "" {
				continue
			}
			for _, e := range pe.Endpoints {
				if ports[e.Pod] == nil {
					ports[e.Pod] = map[string]int32{}
				}
				ports[e.Pod][pe.Name] = e.TargetPort
			}
		}
		for _, e := range se.Pods {
			ep := DNSEndpoint{IP: e.IP, Ports: ports[e.Pod]}
			if e.Hostname != "" && e.Subdomain == se.Name {
				ep.Hostname = e.Hostname
			}
			out[k] = append(out[k], ep)
		}
	}
	return out
}

// PodDNS is what a node makes its pods' resolv.conf from.
type PodDNS struct {
	// ClusterDNS is the cluster DNS address (ClusterDNSAddr); the zero
	// Addr leaves pods with their image's resolv.conf.
	ClusterDNS netip.Addr
	// Domain is the cluster domain (DefaultClusterDomain when empty).
	Domain string
	// Host is the node's own resolver configuration (its resolv.conf),
	// for dnsPolicy Default and the search domains pods inherit.
	Host ResolvConf
}

// ResolvConf is the content of a resolv.conf file.
type ResolvConf struct {
	Nameservers []string
	Searches    []string
	// Options are "name" or "name:value" (ndots:5).
	Options []string
}
