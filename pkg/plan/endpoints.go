package plan

import (
	"net/netip"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Endpoint is one ready pod behind a Service.
type Endpoint struct {
	// Pod is the pod's namespace and name.
	Pod  Key
	IP   netip.Addr
	Node string
	// Hostname and Subdomain name the pod in DNS: a StatefulSet's pod is
	// <pod>.<serviceName>, a pod that sets spec.hostname and
	// spec.subdomain is <hostname>.<subdomain>; otherwise both are empty
	// (Hostname empty, the pod has no name of its own in DNS).
	Hostname, Subdomain string
}

// PortEndpoints is one port of a Service and the endpoints that serve it.
type PortEndpoints struct {
	// Name, Protocol, Port and NodePort are the Service's port.
	Name     string
	Protocol corev1.Protocol
	Port     int32
	NodePort int32
	// Endpoints are sorted by pod key; each serves TargetPort, the
	// container port the Service's targetPort names (or its number).
	Endpoints []PortEndpoint
}

// PortEndpoint is an endpoint of one port: the pod and the port it
// listens on.
type PortEndpoint struct {
	Endpoint
	TargetPort int32
}

// ServiceEndpoints are the endpoints of one Service.
type ServiceEndpoints struct {
	Namespace, Name string
	// Pods are every ready pod the selector matches, by pod key, whatever
	// their ports: the addresses of a headless Service.
	Pods  []Endpoint
	Ports []PortEndpoints
}

// Key is the Service's namespace and name.
func (s *ServiceEndpoints) Key() Key { return Key{s.Namespace, s.Name} }

// equal reports whether s and o are the same endpoints.
func (s *ServiceEndpoints) equal(o *ServiceEndpoints) bool {
	return s.Namespace == o.Namespace && s.Name == o.Name && (sameSlice(s.Pods, o.Pods) || slices.Equal(s.Pods, o.Pods)) &&
		(sameSlice(s.Ports, o.Ports) || slices.EqualFunc(s.Ports, o.Ports, func(a, b PortEndpoints) bool {
			return a.Name == b.Name && a.Protocol == b.Protocol && a.Port == b.Port && a.NodePort == b.NodePort &&
				(sameSlice(a.Endpoints, b.Endpoints) || slices.Equal(a.Endpoints, b.Endpoints))
		}))
}

// FindEndpoints returns the endpoints of the Service k in eps, a result of
// Endpoints.
func FindEndpoints(eps []ServiceEndpoints, k Key) (ServiceEndpoints, bool) {
	i, ok := find(eps, k, (*ServiceEndpoints).Key)
	if !ok {
		return ServiceEndpoints{}, false
	}
	return eps[i], true
}

// Endpoints are the endpoints of every Service of objects that has a
// selector (ExternalName Services, and Services without a selector, have
// none), sorted by namespace and name, from pods: the status of every pod
// of the cluster, as its node reports it (gossip).
//
// A pod is an endpoint when it is Running, Ready, not terminating and has
// an IP. Its labels and container ports are those of the template of the
// workload of objects it names (PodStatus.Workload); a pod of an older
// template of that workload (a rolling update under way) is read with the
// current one. A pod whose workload is not in objects is no endpoint.
//
// A named targetPort is looked up in the pod's container ports (name and
// protocol); a pod with no such port is no endpoint of that port. A
// numeric targetPort (or none: the port itself) is used as it is.
func Endpoints(objects []runtime.Object, pods []PodStatus) []ServiceEndpoints {
	templates := map[string]*workload{}                // "ns/Kind/name"
	ws := workloads(objects, newBatchDecider(Batch{})) // templates only: no records needed
	for i := range ws {
		templates[ws[i].namespace+"/"+ws[i].kind+"/"+ws[i].name] = &ws[i]
	}
	stsService := map[Key]string{}
	var services []*corev1.Service
	for _, o := range objects {
		switch o := o.(type) {
		case *corev1.Service:
			services = append(services, o)
		case *appsv1.StatefulSet:
			stsService[Key{o.Namespace, o.Name}] = o.Spec.ServiceName
		}
	}
	type candidate struct {
		Endpoint
		labels labels.Set
		spec   *corev1.PodSpec
	}
	byNS := map[string][]candidate{}
	for _, p := range pods {
		if p.Phase != PhaseRunning || !p.Ready || p.Reason == ReasonTerminating {
			continue
		}
		ip, err := netip.ParseAddr(p.IP)
		if err != nil {
			continue
		}
		w := templates[p.Namespace+"/"+p.Workload]
		if w == nil {
			continue
		}
		c := candidate{Endpoint: Endpoint{Pod: p.Key(), IP: ip, Node: p.Node}, labels: w.template.Labels, spec: &w.template.Spec}
		kind, name, _ := strings.Cut(p.Workload, "/")
		switch {
		case kind == "StatefulSet":
			c.Hostname, c.Subdomain = p.Name, stsService[Key{p.Namespace, name}]
		case c.spec.Hostname != "":
			c.Hostname, c.Subdomain = c.spec.Hostname, c.spec.Subdomain
		}
		byNS[p.Namespace] = append(byNS[p.Namespace], c)
	}
	for _, cs := range byNS {
		slices.SortFunc(cs, func(a, b candidate) int { return a.Pod.Compare(b.Pod) })
	}

	var out []ServiceEndpoints
	for _, s := range services {
		if s.Spec.Type == corev1.ServiceTypeExternalName || len(s.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		se := ServiceEndpoints{Namespace: s.Namespace, Name: s.Name}
		var matched []candidate
		for _, c := range byNS[s.Namespace] {
			if sel.Matches(c.labels) {
				matched = append(matched, c)
				se.Pods = append(se.Pods, c.Endpoint)
			}
		}
		for _, sp := range s.Spec.Ports {
			pe := PortEndpoints{Name: sp.Name, Protocol: protocol(sp.Protocol), Port: sp.Port, NodePort: sp.NodePort}
			for _, c := range matched {
				if tp, ok := targetPort(sp, pe.Protocol, c.spec); ok {
					pe.Endpoints = append(pe.Endpoints, PortEndpoint{Endpoint: c.Endpoint, TargetPort: tp})
				}
			}
			se.Ports = append(se.Ports, pe)
		}
		out = append(out, se)
	}
	slices.SortFunc(out, func(a, b ServiceEndpoints) int { return a.Key().Compare(b.Key()) })
	return out
}

// protocol is p, TCP when unset.
func protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// targetPort is the port of a pod with spec that the Service port sp
// reaches, and whether it has one.
func targetPort(sp corev1.ServicePort, proto corev1.Protocol, spec *corev1.PodSpec) (int32, bool) {
	switch {
	case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
		for _, c := range spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == sp.TargetPort.StrVal && protocol(cp.Protocol) == proto {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	case sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0:
		return sp.TargetPort.IntVal, true
	}
	return sp.Port, true
}
