package plan

import (
	"net/netip"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// PodInputs is what a pod's containers need besides the pod itself: the
// objects its environment and volumes refer to, and facts of the node.
// All are of the pod's namespace.
type PodInputs struct {
	NodeName string
	// PodIP from the runtime's sandbox, for fieldRef status.podIP; unset
	// in what NodePods returns.
	PodIP                  netip.Addr
	Revision, TemplateHash string
	ConfigMaps             map[string]*corev1.ConfigMap
	Secrets                map[string]*corev1.Secret
	// Services of the pod's namespace, with their cluster IPs assigned;
	// they become <NAME>_SERVICE_HOST and the other service link
	// variables unless the pod sets enableServiceLinks: false.
	Services []*corev1.Service
	// DNS is what the pod's resolv.conf is made from; unset in what
	// NodePods returns (the node adds it).
	DNS PodDNS
}

// DesiredPod is one pod a node should run, with everything its containers
// refer to.
type DesiredPod struct {
	Pod *corev1.Pod
	// Workload is "Kind/name" of the object the pod comes from.
	Workload     string
	TemplateHash string
	Revision     string
	Inputs       PodInputs
	// Hold, when set, says why the pod must not start yet (a StatefulSet
	// pod that another node may still run); a pod that runs keeps running.
	Hold string
	// MovingTo names the node placement gives the pod to, while this node
	// keeps running it until the new copy is ready there (Handoff).
	MovingTo string
}

// StatefulSet reports whether the pod belongs to a StatefulSet, whose pods
// never run twice.
func (d *DesiredPod) StatefulSet() bool { return strings.HasPrefix(d.Workload, "StatefulSet/") }

// Key is the pod's namespace and name.
func (d *DesiredPod) Key() Key { return Key{d.Pod.Namespace, d.Pod.Name} }

// NodeShare is what one revision asks of one node.
type NodeShare struct {
	Revision string
	Pods     map[Key]*DesiredPod
	// Leaving are pods of the revision this node runs (running was given
	// to NodePods) that placement now gives to another node: Handoff says
	// which of them it keeps until then.
	Leaving map[Key]*DesiredPod
	// Unplaceable are the pods of the whole cluster that fit nowhere.
	Unplaceable []UnplaceablePod
	// Placement is every pod of the cluster and where it runs (Rollouts
	// counts a workload's pods from it).
	Placement []Pod
	// Jobs and CronJobs are where each stands (ScheduleBatch).
	Jobs     []JobStatus
	CronJobs []CronJobStatus
}

// NodePods places the pods objects ask for on nodes (Schedule) and returns
// those of the node named self, each with its inputs: the ConfigMaps and
// Secrets of its namespace, and its namespace's Services with their
// ClusterIPs from serviceCIDR; and, in Leaving, the pods of running (those
// the node runs now) that are placed on other nodes. The objects are
// shared and not modified: pods and Services are copies.
func NodePods(objects []runtime.Object, nodes []Node, self, revision string, serviceCIDR netip.Prefix, running map[Key]bool) NodeShare {
	return NodePodsBatch(objects, nodes, self, revision, serviceCIDR, running, Batch{})
}

// NodePodsBatch is NodePods with the records of Jobs' pods and the time
// that decide Jobs and CronJobs (ScheduleBatch).
func NodePodsBatch(objects []runtime.Object, nodes []Node, self, revision string, serviceCIDR netip.Prefix, running map[Key]bool, batch Batch) NodeShare {
	configMaps := map[string]map[string]*corev1.ConfigMap{}
	secrets := map[string]map[string]*corev1.Secret{}
	var services []*corev1.Service
	statefulSets := map[Key]*appsv1.StatefulSet{}
	for _, o := range objects {
		switch o := o.(type) {
		case *appsv1.StatefulSet:
			statefulSets[Key{o.Namespace, o.Name}] = o
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
	ips := AllocateClusterIPs(services, serviceCIDR)
	byNS := map[string][]*corev1.Service{}
	for _, s := range services {
		c := s.DeepCopy()
		if ip, ok := FindServiceIP(ips, Key{s.Namespace, s.Name}); ok && ip.ClusterIP != "" {
			c.Spec.ClusterIP = ip.ClusterIP
			c.Spec.ClusterIPs = []string{ip.ClusterIP}
		}
		byNS[s.Namespace] = append(byNS[s.Namespace], c)
	}

	placement := ScheduleBatch(objects, nodes, batch)
	share := NodeShare{Revision: revision, Pods: map[Key]*DesiredPod{}, Leaving: map[Key]*DesiredPod{},
		Placement: placement.Pods, Jobs: placement.Jobs, CronJobs: placement.CronJobs}
	for i := range placement.Pods {
		p := &placement.Pods[i]
		if p.Node == "" {
			share.Unplaceable = append(share.Unplaceable, UnplaceablePod{Namespace: p.Namespace, Name: p.Name, Reason: p.Unplaceable})
			continue
		}
		if p.Node != self && !running[p.Key()] {
			continue
		}
		hash := p.TemplateHash
		if hash == "" {
			hash = TemplateHash(p.Template)
		}
		pod := &corev1.Pod{
			ObjectMeta: *p.Template.ObjectMeta.DeepCopy(),
			Spec:       *p.Template.Spec.DeepCopy(),
		}
		pod.Name, pod.Namespace = p.Name, p.Namespace
		pod.Spec.NodeName = self
		if s := statefulSets[Key{p.Namespace, p.Workload.Name}]; s != nil && p.Workload.Kind == "StatefulSet" {
			// As the StatefulSet controller names them, whatever the
			// template says: <name>-<ordinal>.<serviceName>.
			pod.Spec.Hostname, pod.Spec.Subdomain = pod.Name, s.Spec.ServiceName
			ClaimVolumes(pod, s.Spec.VolumeClaimTemplates)
		}
		d := &DesiredPod{
			Pod:          pod,
			Workload:     p.Workload.Kind + "/" + p.Workload.Name,
			TemplateHash: hash,
			Revision:     revision,
			Inputs: PodInputs{
				NodeName:     self,
				Revision:     revision,
				TemplateHash: hash,
				ConfigMaps:   configMaps[p.Namespace],
				Secrets:      secrets[p.Namespace],
				Services:     byNS[p.Namespace],
			},
		}
		if p.Node != self {
			d.MovingTo = p.Node
			share.Leaving[d.Key()] = d
			continue
		}
		share.Pods[d.Key()] = d
	}
	return share
}

// ClaimVolumes gives a StatefulSet's pod (named <sts>-<ordinal>) a volume
// per claim template, as the StatefulSet controller does: named after the
// template, the claim <template>-<sts>-<ordinal>; a pod volume of the same
// name is replaced. The runtime keeps a claim as a directory of the node
// that outlives the pod.
func ClaimVolumes(pod *corev1.Pod, templates []corev1.PersistentVolumeClaim) {
	for _, t := range templates {
		v := corev1.Volume{Name: t.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: t.Name + "-" + pod.Name}}}
		if i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == t.Name }); i >= 0 {
			pod.Spec.Volumes[i] = v
		} else {
			pod.Spec.Volumes = append(pod.Spec.Volumes, v)
		}
	}
}
