package plan

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
)

// workload is an object that asks for pods.
type workload struct {
	kind      string
	namespace string
	name      string
	replicas  int // pods wanted; DaemonSets ignore it
	daemon    bool
	template  *corev1.PodTemplateSpec
	hash      string // template hash; empty for a bare Pod
	requests  Resources
	// ordinalNames: StatefulSet pods are <name>-<ordinal>.
	ordinalNames bool
	// names, when set, are the pods' names (Jobs: see DecideJob).
	names []string
	// sortName orders the workload when it is not name (a CronJob's run).
	sortName string
}

// kindOrder is the order in which kinds are placed: DaemonSets first, since
// they belong on every eligible node, then everything else.
func kindOrder(kind string) int {
	if kind == "DaemonSet" {
		return 0
	}
	return 1
}

// workloads extracts the objects that ask for pods and sorts them in the
// order placement processes them: DaemonSets, then the rest, each by
// namespace, name and kind. Other kinds are ignored.
func workloads(objects []runtime.Object, batch *batchDecider) []workload {
	var ws []workload
	for _, o := range objects {
		switch o := o.(type) {
		case *appsv1.Deployment:
			ws = append(ws, newWorkload("Deployment", o.Namespace, o.Name, replicas(o.Spec.Replicas), &o.Spec.Template))
		case *appsv1.ReplicaSet:
			ws = append(ws, newWorkload("ReplicaSet", o.Namespace, o.Name, replicas(o.Spec.Replicas), &o.Spec.Template))
		case *corev1.ReplicationController:
			if o.Spec.Template != nil {
				ws = append(ws, newWorkload("ReplicationController", o.Namespace, o.Name, replicas(o.Spec.Replicas), o.Spec.Template))
			}
		case *appsv1.StatefulSet:
			w := newWorkload("StatefulSet", o.Namespace, o.Name, replicas(o.Spec.Replicas), &o.Spec.Template)
			w.ordinalNames = true
			ws = append(ws, w)
		case *appsv1.DaemonSet:
			w := newWorkload("DaemonSet", o.Namespace, o.Name, 0, &o.Spec.Template)
			w.daemon = true
			ws = append(ws, w)
		case *batchv1.Job:
			ws = append(ws, batch.job(o)...)
		case *batchv1.CronJob:
			ws = append(ws, batch.cronJob(o)...)
		case *corev1.Pod:
			w := workload{kind: "Pod", namespace: o.Namespace, name: o.Name, replicas: 1,
				template: &corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec}}
			w.requests = podRequests(&o.Spec)
			ws = append(ws, w)
		}
	}
	slices.SortFunc(ws, func(a, b workload) int {
		return cmp.Or(
			cmp.Compare(kindOrder(a.kind), kindOrder(b.kind)),
			cmp.Compare(a.namespace, b.namespace),
			cmp.Compare(a.name, b.name),
			cmp.Compare(a.kind, b.kind),
			cmp.Compare(a.sortName, b.sortName),
		)
	})
	return ws
}

func replicas(r *int32) int {
	if r == nil {
		return 1
	}
	if *r < 0 {
		return 0
	}
	return int(*r)
}

func newWorkload(kind, ns, name string, n int, t *corev1.PodTemplateSpec) workload {
	return workload{kind: kind, namespace: ns, name: name, replicas: n, template: t,
		hash: TemplateHash(t), requests: podRequests(&t.Spec)}
}

// podName is the name of the pod with the given ordinal (or, for a
// DaemonSet, on the given node).
func (w *workload) podName(ordinal int, node string) string {
	switch {
	case w.names != nil:
		return w.names[ordinal]
	case w.kind == "Pod":
		return w.name
	case w.daemon:
		return w.name + "-" + w.hash + "-" + node
	case w.ordinalNames:
		return w.name + "-" + strconv.Itoa(ordinal)
	}
	return w.name + "-" + w.hash + "-" + strconv.Itoa(ordinal)
}

// TemplateHash is a short, stable hash of a pod template: the first 10 hex
// digits of the SHA-256 of its JSON encoding (labels, annotations and
// spec). encoding/json writes struct fields in declaration order and map
// keys sorted, so the encoding, and the hash, are canonical.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	canon := struct {
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Spec        corev1.PodSpec    `json:"spec"`
	}{t.Labels, t.Annotations, t.Spec}
	b, err := json.Marshal(canon)
	if err != nil {
		// A PodSpec always encodes; keep the function total anyway.
		b = []byte(err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:5])
}

// podRequests is what a pod asks of its node, as Kubernetes computes it:
// the sum over containers of each container's request (its limit when it
// sets no request), or the largest init container's when that is larger,
// since init containers run one at a time before the others. Every pod
// also takes one of the node's pod slots.
func podRequests(spec *corev1.PodSpec) Resources {
	var sum Resources
	for i := range spec.Containers {
		sum = sum.add(containerRequests(&spec.Containers[i]))
	}
	for i := range spec.InitContainers {
		r := containerRequests(&spec.InitContainers[i])
		sum.MilliCPU = max(sum.MilliCPU, r.MilliCPU)
		sum.Memory = max(sum.Memory, r.Memory)
	}
	sum.Pods = 1
	return sum
}

func containerRequests(c *corev1.Container) Resources {
	get := func(name corev1.ResourceName) (resource.Quantity, bool) {
		if q, ok := c.Resources.Requests[name]; ok {
			return q, true
		}
		q, ok := c.Resources.Limits[name]
		return q, ok
	}
	var r Resources
	if q, ok := get(corev1.ResourceCPU); ok {
		r.MilliCPU = q.MilliValue()
	}
	if q, ok := get(corev1.ResourceMemory); ok {
		r.Memory = q.Value()
	}
	return r
}
