package plan

import (
	"net/netip"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
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
	return NewEndpointIndex(objects).Endpoints(pods)
}

// EndpointIndex is what Endpoints needs of a revision, computed once for
// it: the Services with a selector, sorted, each with the workloads whose
// template it selects.
type EndpointIndex struct {
	services  []indexedService
	templates map[workloadKey]*corev1.PodTemplateSpec
	// workload numbers the workloads, templates are by number.
	workload map[workloadKey]int32
	template []*corev1.PodTemplateSpec
	// stsService is the serviceName of each StatefulSet.
	stsService map[Key]string
}

// workloadKey names a workload as a pod's status does: namespace and
// "Kind/name".
type workloadKey struct{ namespace, workload string }

type indexedService struct {
	svc       *corev1.Service
	workloads []int32
}

// NewEndpointIndex indexes the Services and workloads of objects.
func NewEndpointIndex(objects []runtime.Object) *EndpointIndex {
	x := &EndpointIndex{templates: podTemplates(objects), stsService: map[Key]string{}}
	x.workload = make(map[workloadKey]int32, len(x.templates))
	for wk, t := range x.templates {
		x.workload[wk] = int32(len(x.template))
		x.template = append(x.template, t)
	}
	// The workloads by namespace and label: a Service looks only at those
	// that have one of its selector's labels.
	type label struct{ namespace, key, value string }
	index := map[label][]workloadKey{}
	for wk, t := range x.templates {
		for k, v := range t.Labels {
			l := label{wk.namespace, k, v}
			index[l] = append(index[l], wk)
		}
	}
	for _, o := range objects {
		switch o := o.(type) {
		case *corev1.Service:
			if o.Spec.Type == corev1.ServiceTypeExternalName || len(o.Spec.Selector) == 0 {
				continue
			}
			// The selector's label with the fewest workloads.
			var some []workloadKey
			first := true
			for k, v := range o.Spec.Selector {
				if ws := index[label{o.Namespace, k, v}]; first || len(ws) < len(some) {
					some, first = ws, false
				}
			}
			is := indexedService{svc: o}
			for _, wk := range some {
				if selects(o.Spec.Selector, x.templates[wk].Labels) {
					is.workloads = append(is.workloads, x.workload[wk])
				}
			}
			x.services = append(x.services, is)
		case *appsv1.StatefulSet:
			x.stsService[Key{o.Namespace, o.Name}] = o.Spec.ServiceName
		}
	}
	slices.SortFunc(x.services, func(a, b indexedService) int {
		return Key{a.svc.Namespace, a.svc.Name}.Compare(Key{b.svc.Namespace, b.svc.Name})
	})
	return x
}

// Endpoints are Endpoints(the objects of x, pods).
func (x *EndpointIndex) Endpoints(pods []PodStatus) []ServiceEndpoints {
	return x.EndpointsFrom(nil, pods).Services
}

// EndpointSet is what EndpointsFrom found: the endpoints of every Service,
// and the ready pods of each workload they were made of.
type EndpointSet struct {
	// Services are the endpoints of every Service with a selector, sorted
	// by namespace and name.
	Services []ServiceEndpoints
	x        *EndpointIndex
	// groups are the ready pods of each workload, by number.
	groups [][]candidate
}

// candidate is a ready pod of a workload.
type candidate struct {
	Endpoint
	spec *corev1.PodSpec
}

// EndpointsFrom is Endpoints(the objects of x, pods), reusing what prev (a
// result of EndpointsFrom on x) found for every Service none of whose
// workloads' ready pods changed: such a Service's ServiceEndpoints are
// prev's, the same slices.
func (x *EndpointIndex) EndpointsFrom(prev *EndpointSet, pods []PodStatus) *EndpointSet {
	if prev != nil && prev.x != x {
		prev = nil
	}
	// The ready pods by workload (pods of one workload have its labels):
	// numbered, counted, then laid out in one array, a group a slice of it.
	type numbered struct {
		w int32
		c candidate
	}
	ready := make([]numbered, 0, len(pods))
	count := make([]int32, len(x.template))
	for _, p := range pods {
		if p.Phase != PhaseRunning || !p.Ready || p.Reason == ReasonTerminating {
			continue
		}
		w, ok := x.workload[workloadKey{p.Namespace, p.Workload}]
		if !ok {
			continue
		}
		ip, err := netip.ParseAddr(p.IP)
		if err != nil {
			continue
		}
		c := candidate{Endpoint: Endpoint{Pod: p.Key(), IP: ip, Node: p.Node}, spec: &x.template[w].Spec}
		kind, name, _ := strings.Cut(p.Workload, "/")
		switch {
		case kind == "StatefulSet":
			c.Hostname, c.Subdomain = p.Name, x.stsService[Key{p.Namespace, name}]
		case c.spec.Hostname != "":
			c.Hostname, c.Subdomain = c.spec.Hostname, c.spec.Subdomain
		}
		ready = append(ready, numbered{w, c})
		count[w]++
	}
	all := make([]candidate, len(ready))
	groups := make([][]candidate, len(x.template))
	at := int32(0)
	for w, n := range count {
		groups[w] = all[at : at : at+n]
		at += n
	}
	for _, r := range ready {
		groups[r.w] = append(groups[r.w], r.c)
	}
	changed := make([]bool, len(groups))
	for w, cs := range groups {
		slices.SortFunc(cs, func(a, b candidate) int { return a.Pod.Compare(b.Pod) })
		changed[w] = prev != nil && !slices.Equal(cs, prev.groups[w])
	}
	set := &EndpointSet{Services: make([]ServiceEndpoints, 0, len(x.services)), x: x, groups: groups}
	var matched []candidate
	for i, is := range x.services {
		if prev != nil && !slices.ContainsFunc(is.workloads, func(w int32) bool { return changed[w] }) {
			set.Services = append(set.Services, prev.Services[i])
			continue
		}
		s := is.svc
		se := ServiceEndpoints{Namespace: s.Namespace, Name: s.Name}
		matched = matched[:0]
		for _, w := range is.workloads {
			matched = append(matched, groups[w]...)
		}
		if len(is.workloads) > 1 {
			slices.SortFunc(matched, func(a, b candidate) int { return a.Pod.Compare(b.Pod) })
		}
		if len(matched) > 0 {
			se.Pods = make([]Endpoint, 0, len(matched))
		}
		for _, c := range matched {
			se.Pods = append(se.Pods, c.Endpoint)
		}
		if len(s.Spec.Ports) > 0 {
			se.Ports = make([]PortEndpoints, 0, len(s.Spec.Ports))
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
		set.Services = append(set.Services, se)
	}
	return set
}

// selects reports whether every label of selector is in labels, with its
// value (a Service's selector, as labels.SelectorFromSet matches it).
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if w, ok := labels[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// podTemplates are the pod templates of the workloads of objects, by
// "namespace/Kind/name" as PodStatus.Workload names them after the
// namespace: the templates workloads reads, without what placement needs
// of them (hashes, the runs of Jobs).
func podTemplates(objects []runtime.Object) map[workloadKey]*corev1.PodTemplateSpec {
	out := map[workloadKey]*corev1.PodTemplateSpec{}
	add := func(kind, ns, name string, t *corev1.PodTemplateSpec) {
		if t != nil {
			out[workloadKey{ns, kind + "/" + name}] = t
		}
	}
	for _, o := range objects {
		switch o := o.(type) {
		case *appsv1.Deployment:
			add("Deployment", o.Namespace, o.Name, &o.Spec.Template)
		case *appsv1.ReplicaSet:
			add("ReplicaSet", o.Namespace, o.Name, &o.Spec.Template)
		case *corev1.ReplicationController:
			add("ReplicationController", o.Namespace, o.Name, o.Spec.Template)
		case *appsv1.StatefulSet:
			add("StatefulSet", o.Namespace, o.Name, &o.Spec.Template)
		case *appsv1.DaemonSet:
			add("DaemonSet", o.Namespace, o.Name, &o.Spec.Template)
		case *batchv1.Job:
			add("Job", o.Namespace, o.Name, &o.Spec.Template)
		case *batchv1.CronJob:
			add("CronJob", o.Namespace, o.Name, &o.Spec.JobTemplate.Spec.Template)
		case *corev1.Pod:
			add("Pod", o.Namespace, o.Name, &corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec})
		}
	}
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
