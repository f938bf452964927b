package node

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/plan"
)

// desiredPod is one pod this node should run, with everything its
// containers refer to.
type desiredPod struct {
	pod *corev1.Pod
	// workload is "Kind/name".
	workload     string
	templateHash string
	revision     string
	inputs       apply.PodInputs
}

func (d *desiredPod) key() string { return apply.PodKey(d.pod.Namespace, d.pod.Name) }

// desiredState is what a revision asks of this node.
type desiredState struct {
	revision    string
	pods        map[string]*desiredPod // by pod key
	unplaceable []UnplaceablePod
}

// computeDesired places the pods objects ask for on nodes and returns
// those of the node named self. It is pure: the same objects and nodes
// give the same result.
func computeDesired(objects []runtime.Object, nodes []plan.Node, self, revision string, serviceCIDR netip.Prefix) *desiredState {
	configMaps := map[string]map[string]*corev1.ConfigMap{}
	secrets := map[string]map[string]*corev1.Secret{}
	var services []*corev1.Service
	for _, o := range objects {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			if configMaps[o.Namespace] == nil {
				configMaps[o.Namespace] = map[string]*corev1.ConfigMap{}
			}
			configMaps[o.Namespace][o.Name] = o
		case *corev1.Secret:
			if secrets[o.Namespace] == nil {
				secrets[o.Namespace] = map[string]*corev1.Secret{}
			}
			secrets[o.Namespace][o.Name] = o
		case *corev1.Service:
			services = append(services, o)
		}
	}
	// Services get their cluster IPs on copies: the objects are shared.
	ips := plan.AllocateClusterIPs(services, serviceCIDR)
	byNS := map[string][]*corev1.Service{}
	for _, s := range services {
		ip, ok := plan.FindServiceIP(ips, plan.Key{Namespace: s.Namespace, Name: s.Name})
		c := s.DeepCopy()
		if ok && ip.ClusterIP != "" {
			c.Spec.ClusterIP = ip.ClusterIP
			c.Spec.ClusterIPs = []string{ip.ClusterIP}
		}
		byNS[s.Namespace] = append(byNS[s.Namespace], c)
	}

	placement := plan.Schedule(objects, nodes)
	st := &desiredState{revision: revision, pods: map[string]*desiredPod{}}
	for i := range placement.Pods {
		p := &placement.Pods[i]
		if p.Node == "" {
			st.unplaceable = append(st.unplaceable, UnplaceablePod{Namespace: p.Namespace, Name: p.Name, Reason: p.Unplaceable})
			continue
		}
		if p.Node != self {
			continue
		}
		hash := p.TemplateHash
		if hash == "" {
			hash = plan.TemplateHash(p.Template)
		}
		pod := &corev1.Pod{
			ObjectMeta: *p.Template.ObjectMeta.DeepCopy(),
			Spec:       *p.Template.Spec.DeepCopy(),
		}
		pod.Name, pod.Namespace = p.Name, p.Namespace
		pod.Spec.NodeName = self
		if pod.Spec.RestartPolicy == "" {
			pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
		}
		d := &desiredPod{
			pod:          pod,
			workload:     p.Workload.Kind + "/" + p.Workload.Name,
			templateHash: hash,
			revision:     revision,
			inputs: apply.PodInputs{
				NodeName:     self,
				Revision:     revision,
				TemplateHash: hash,
				ConfigMaps:   configMaps[p.Namespace],
				Secrets:      secrets[p.Namespace],
				Services:     byNS[p.Namespace],
			},
		}
		st.pods[d.key()] = d
	}
	return st
}
