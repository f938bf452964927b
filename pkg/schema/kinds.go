package schema

import (
	"reflect"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	appsv1beta1 "k8s.io/api/apps/v1beta1"
	appsv1beta2 "k8s.io/api/apps/v1beta2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	extv1beta1 "k8s.io/api/extensions/v1beta1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// kindInfo describes one kind gitorch supports.
type kindInfo struct {
	kind string
	// def is the CUE definition in schemas/ that documents of this kind
	// are unified with.
	def string
	// current is the apiVersion objects are decoded as.
	current string
	// legacy maps deprecated apiVersions to the Kubernetes release that
	// removed them.
	legacy     map[string]string
	namespaced bool
	newObj     func() runtime.Object
	// types maps each accepted apiVersion to the Kubernetes Go type of that
	// version, used to tell a field Kubernetes has from a typo.
	types map[string]reflect.Type
}

var kinds = map[string]*kindInfo{}

func init() {
	add := func(k *kindInfo) { kinds[k.kind] = k }
	t := func(v any) reflect.Type { return reflect.TypeOf(v) }
	add(&kindInfo{kind: "Namespace", current: "v1",
		newObj: func() runtime.Object { return &corev1.Namespace{} },
		types:  map[string]reflect.Type{"v1": t(corev1.Namespace{})}})
	add(&kindInfo{kind: "Pod", current: "v1", namespaced: true,
		newObj: func() runtime.Object { return &corev1.Pod{} },
		types:  map[string]reflect.Type{"v1": t(corev1.Pod{})}})
	add(&kindInfo{kind: "ReplicationController", current: "v1", namespaced: true,
		newObj: func() runtime.Object { return &corev1.ReplicationController{} },
		types:  map[string]reflect.Type{"v1": t(corev1.ReplicationController{})}})
	add(&kindInfo{kind: "Service", current: "v1", namespaced: true,
		newObj: func() runtime.Object { return &corev1.Service{} },
		types:  map[string]reflect.Type{"v1": t(corev1.Service{})}})
	add(&kindInfo{kind: "ConfigMap", current: "v1", namespaced: true,
		newObj: func() runtime.Object { return &corev1.ConfigMap{} },
		types:  map[string]reflect.Type{"v1": t(corev1.ConfigMap{})}})
	add(&kindInfo{kind: "Secret", current: "v1", namespaced: true,
		newObj: func() runtime.Object { return &corev1.Secret{} },
		types:  map[string]reflect.Type{"v1": t(corev1.Secret{})}})
	add(&kindInfo{kind: "Job", current: "batch/v1", namespaced: true,
		newObj: func() runtime.Object { return &batchv1.Job{} },
		types:  map[string]reflect.Type{"batch/v1": t(batchv1.Job{})}})
	add(&kindInfo{kind: "CronJob", current: "batch/v1", namespaced: true,
		newObj: func() runtime.Object { return &batchv1.CronJob{} },
		types:  map[string]reflect.Type{"batch/v1": t(batchv1.CronJob{})}})
	add(&kindInfo{kind: "PodDisruptionBudget", current: "policy/v1", namespaced: true,
		newObj: func() runtime.Object { return &policyv1.PodDisruptionBudget{} },
		types:  map[string]reflect.Type{"policy/v1": t(policyv1.PodDisruptionBudget{})}})
	add(&kindInfo{kind: "Deployment", current: "apps/v1", namespaced: true,
		legacy: map[string]string{"extensions/v1beta1": "1.16", "apps/v1beta1": "1.16", "apps/v1beta2": "1.16"},
		newObj: func() runtime.Object { return &appsv1.Deployment{} },
		types: map[string]reflect.Type{
			"apps/v1":            t(appsv1.Deployment{}),
			"extensions/v1beta1": t(extv1beta1.Deployment{}),
			"apps/v1beta1":       t(appsv1beta1.Deployment{}),
			"apps/v1beta2":       t(appsv1beta2.Deployment{}),
		}})
	add(&kindInfo{kind: "ReplicaSet", current: "apps/v1", namespaced: true,
		legacy: map[string]string{"extensions/v1beta1": "1.16", "apps/v1beta2": "1.16"},
		newObj: func() runtime.Object { return &appsv1.ReplicaSet{} },
		types: map[string]reflect.Type{
			"apps/v1":            t(appsv1.ReplicaSet{}),
			"extensions/v1beta1": t(extv1beta1.ReplicaSet{}),
			"apps/v1beta2":       t(appsv1beta2.ReplicaSet{}),
		}})
	add(&kindInfo{kind: "DaemonSet", current: "apps/v1", namespaced: true,
		legacy: map[string]string{"extensions/v1beta1": "1.16", "apps/v1beta2": "1.16"},
		newObj: func() runtime.Object { return &appsv1.DaemonSet{} },
		types: map[string]reflect.Type{
			"apps/v1":            t(appsv1.DaemonSet{}),
			"extensions/v1beta1": t(extv1beta1.DaemonSet{}),
			"apps/v1beta2":       t(appsv1beta2.DaemonSet{}),
		}})
	add(&kindInfo{kind: "StatefulSet", current: "apps/v1", namespaced: true,
		legacy: map[string]string{"apps/v1beta1": "1.16", "apps/v1beta2": "1.16"},
		newObj: func() runtime.Object { return &appsv1.StatefulSet{} },
		types: map[string]reflect.Type{
			"apps/v1":      t(appsv1.StatefulSet{}),
			"apps/v1beta1": t(appsv1beta1.StatefulSet{}),
			"apps/v1beta2": t(appsv1beta2.StatefulSet{}),
		}})
	for _, k := range kinds {
		k.def = "#" + k.kind
	}
}

// apiVersions lists the versions accepted for k, current first.
func (k *kindInfo) apiVersions() []string {
	vs := []string{k.current}
	var legacy []string
	for v := range k.legacy {
		legacy = append(legacy, v)
	}
	sort.Strings(legacy)
	return append(vs, legacy...)
}

// SupportedKinds lists the kinds gitorch accepts, sorted.
func SupportedKinds() []string {
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// knownElsewhere are kinds that Kubernetes has and gitorch does not run;
// they are named as such so that the message is not "unknown kind".
var knownElsewhere = map[string]bool{
	"PersistentVolume": true, "PersistentVolumeClaim": true, "StorageClass": true,
	"Ingress": true, "IngressClass": true, "NetworkPolicy": true, "ServiceAccount": true,
	"Role": true, "RoleBinding": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"HorizontalPodAutoscaler": true,
	"ResourceQuota":           true, "LimitRange": true, "Endpoints": true, "EndpointSlice": true,
	"CustomResourceDefinition": true, "PodSecurityPolicy": true, "PriorityClass": true,
	"Node": true, "Event": true, "Binding": true, "ComponentStatus": true, "PodTemplate": true,
	"ControllerRevision": true, "Lease": true, "CSIDriver": true, "VolumeAttachment": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
	"APIService": true, "RuntimeClass": true, "CertificateSigningRequest": true,
}

func unsupportedKindMessage(apiVersion, kind string) string {
	var b strings.Builder
	b.WriteString("kind " + kind)
	if apiVersion != "" {
		b.WriteString(" (" + apiVersion + ")")
	}
	if knownElsewhere[kind] {
		b.WriteString(" is a Kubernetes kind that gitorch does not support")
	} else {
		b.WriteString(" is not supported by gitorch")
	}
	b.WriteString("; supported kinds: " + strings.Join(SupportedKinds(), ", "))
	return b.String()
}
