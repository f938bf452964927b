package plan

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// DefaultServiceCIDR is the range ClusterIPs come from unless configured,
// the same as Kubernetes' default.
var DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")

// ServiceIP is the ClusterIP a Service gets.
type ServiceIP struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// ClusterIP is empty for a headless Service (clusterIP: None), an
	// ExternalName Service, or one that got none (Error says why).
	ClusterIP string `json:"clusterIP,omitempty"`
	Headless  bool   `json:"headless,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Key is the Service's namespace and name.
func (s *ServiceIP) Key() Key { return Key{s.Namespace, s.Name} }

// FindServiceIP returns the entry of the Service k in ips, a result of
// AllocateClusterIPs.
func FindServiceIP(ips []ServiceIP, k Key) (ServiceIP, bool) {
	i, ok := find(ips, k, (*ServiceIP).Key)
	if !ok {
		return ServiceIP{}, false
	}
	return ips[i], true
}

// AllocateClusterIPs gives every Service a ClusterIP in cidr, as a pure
// function of the Services' namespaces, names and explicit clusterIPs:
//
//  1. Services that name a clusterIP keep it, in namespace/name order; one
//     outside cidr, or already taken, is an error on the later Service.
//  2. The others, in namespace/name order, take the address at offset
//     hash(namespace/name) mod size in cidr, or the next free one after it
//     (wrapping), skipping the network and broadcast addresses of an IPv4
//     range.
//
// The cluster DNS address (ClusterDNSAddr) is never handed out: a Service
// that names it gets an error.
//
// So a Service keeps its address across revisions unless a Service before
// it in that order comes to take it: removing a Service never moves one
// that sits at its home address (the one its hash points to), and adding
// one moves only a Service whose address it takes (and so on, along a
// probe chain). In a range much larger than the number of Services both
// are rare. The result is sorted by namespace/name.
func AllocateClusterIPs(services []*corev1.Service, cidr netip.Prefix) []ServiceIP {
	cidr = cidr.Masked()
	svcs := slices.Clone(services)
	slices.SortFunc(svcs, func(a, b *corev1.Service) int {
		return Key{a.Namespace, a.Name}.Compare(Key{b.Namespace, b.Name})
	})
	out := make([]ServiceIP, len(svcs))
	used := map[netip.Addr]string{}
	dnsAddr := ClusterDNSAddr(cidr)
	var auto []int
	for i, s := range svcs {
		out[i] = ServiceIP{Namespace: s.Namespace, Name: s.Name}
		switch ip := s.Spec.ClusterIP; {
		case s.Spec.Type == corev1.ServiceTypeExternalName:
		case ip == corev1.ClusterIPNone:
			out[i].Headless = true
		case ip == "":
			auto = append(auto, i)
		default:
			a, err := netip.ParseAddr(ip)
			switch {
			case err != nil:
				out[i].Error = fmt.Sprintf("clusterIP %q is not an IP address", ip)
			case !cidr.Contains(a):
				out[i].Error = fmt.Sprintf("clusterIP %s is outside the service range %s", a, cidr)
			case a == dnsAddr:
				out[i].Error = fmt.Sprintf("clusterIP %s is the cluster DNS address", a)
			case used[a] != "":
				out[i].Error = fmt.Sprintf("clusterIP %s is already taken by Service %s", a, used[a])
			default:
				used[a] = s.Namespace + "/" + s.Name
				out[i].ClusterIP = a.String()
			}
		}
	}
	// Usable offsets [first, first+size).
	hostBits := cidr.Addr().BitLen() - cidr.Bits()
	first, size := uint64(0), uint64(0)
	if hostBits >= 63 {
		size = 1 << 62 // an IPv6 range this large never fills
	} else {
		size = 1 << uint(hostBits)
	}
	if cidr.Addr().Is4() && size > 2 {
		first, size = 1, size-2
	}
	base := new(big.Int).SetBytes(cidr.Addr().AsSlice())
	addrAt := func(off uint64) netip.Addr {
		v := new(big.Int).Add(base, new(big.Int).SetUint64(first+off))
		b := v.FillBytes(make([]byte, len(cidr.Addr().AsSlice())))
		a, _ := netip.AddrFromSlice(b)
		return a
	}
	if dnsAddr.IsValid() {
		used[dnsAddr] = "the cluster DNS"
	}
	for _, i := range auto {
		key := out[i].Namespace + "/" + out[i].Name
		off := mix(hashString(key), 0) % size
		found := false
		for probe := uint64(0); probe < size && probe < uint64(len(used))+1; probe++ {
			a := addrAt((off + probe) % size)
			if used[a] == "" {
				used[a] = key
				out[i].ClusterIP = a.String()
				found = true
				break
			}
		}
		if !found {
			out[i].Error = fmt.Sprintf("the service range %s is full", cidr)
		}
	}
	return out
}
