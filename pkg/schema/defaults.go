package schema

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Defaults are Kubernetes' own, so that a manifest means in gitorch what it
// means in Kubernetes. Legacy apiVersions get the defaults of their time.

type defaultNote struct{ field, text string }

func ptr[T any](v T) *T { return &v }

func applyDefaults(obj runtime.Object, apiVersion string) []defaultNote {
	var notes []defaultNote
	if replicas, selector, tmpl := workloadFields(obj); tmpl != nil {
		if replicas != nil && *replicas == nil {
			*replicas = ptr(int32(1))
		}
		legacy := apiVersion == "extensions/v1beta1" || apiVersion == "apps/v1beta1" || apiVersion == "apps/v1beta2"
		if legacy && selector != nil && *selector == nil {
			*selector = &metav1.LabelSelector{MatchLabels: copyLabels(tmpl.Labels)}
			notes = append(notes, defaultNote{"spec.selector", "no selector: using the template's labels, as " + apiVersion + " did (apps/v1 requires spec.selector)"})
		}
		defaultPodSpec(&tmpl.Spec)
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		defaultPodSpec(&o.Spec)
	case *corev1.ReplicationController:
		if o.Spec.Replicas == nil {
			o.Spec.Replicas = ptr(int32(1))
		}
		if o.Spec.Template != nil {
			if len(o.Spec.Selector) == 0 {
				o.Spec.Selector = copyLabels(o.Spec.Template.Labels)
			}
			if len(o.Labels) == 0 {
				o.Labels = copyLabels(o.Spec.Template.Labels)
			}
			defaultPodSpec(&o.Spec.Template.Spec)
		}
	case *appsv1.Deployment:
		if o.Spec.Strategy.Type == "" {
			o.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
		}
		if o.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
			if o.Spec.Strategy.RollingUpdate == nil {
				o.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
			}
			ru := o.Spec.Strategy.RollingUpdate
			// extensions/v1beta1 defaulted both to 1; later versions to 25%.
			def := intstr.FromString("25%")
			if apiVersion == "extensions/v1beta1" {
				def = intstr.FromInt32(1)
			}
			if ru.MaxUnavailable == nil {
				ru.MaxUnavailable = ptr(def)
			}
			if ru.MaxSurge == nil {
				ru.MaxSurge = ptr(def)
			}
		}
		if o.Spec.ProgressDeadlineSeconds == nil && apiVersion != "extensions/v1beta1" {
			// extensions/v1beta1 had no deadline.
			o.Spec.ProgressDeadlineSeconds = ptr(int32(600))
		}
	case *appsv1.DaemonSet:
		if o.Spec.UpdateStrategy.Type == "" {
			// extensions/v1beta1 DaemonSets were updated only when their pods
			// were deleted.
			if apiVersion == "extensions/v1beta1" {
				o.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
			} else {
				o.Spec.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
			}
		}
		if o.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
			if o.Spec.UpdateStrategy.RollingUpdate == nil {
				o.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
			}
			if o.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable == nil {
				o.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptr(intstr.FromInt32(1))
			}
		}
	case *appsv1.StatefulSet:
		if o.Spec.PodManagementPolicy == "" {
			o.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
		}
		if o.Spec.UpdateStrategy.Type == "" {
			// apps/v1beta1 StatefulSets were updated only on pod deletion.
			if apiVersion == "apps/v1beta1" {
				o.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType
			} else {
				o.Spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
			}
		}
	case *batchv1.Job:
		defaultJobSpec(&o.Spec)
	case *batchv1.CronJob:
		defaultJobSpec(&o.Spec.JobTemplate.Spec)
		if o.Spec.ConcurrencyPolicy == "" {
			o.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent
		}
		if o.Spec.SuccessfulJobsHistoryLimit == nil {
			o.Spec.SuccessfulJobsHistoryLimit = ptr(int32(3))
		}
		if o.Spec.FailedJobsHistoryLimit == nil {
			o.Spec.FailedJobsHistoryLimit = ptr(int32(1))
		}
	case *policyv1.PodDisruptionBudget:
		if p := o.Spec.UnhealthyPodEvictionPolicy; p == nil || *p != policyv1.AlwaysAllow {
			// Kubernetes' default is IfHealthyBudget.
			notes = append(notes, defaultNote{"spec.unhealthyPodEvictionPolicy", "gitorch does not protect a pod that is not ready: rollouts and node leave disrupt it whatever the budget allows, as AlwaysAllow does"})
		}
	case *corev1.Service:
		if o.Spec.Type == "" {
			o.Spec.Type = corev1.ServiceTypeClusterIP
		}
		if o.Spec.Type == corev1.ServiceTypeLoadBalancer {
			o.Spec.Type = corev1.ServiceTypeNodePort
			notes = append(notes, defaultNote{"spec.type", "type LoadBalancer: gitorch has no load balancer; the Service is served as NodePort (its ClusterIP and a port on every node)"})
		}
		for i := range o.Spec.Ports {
			p := &o.Spec.Ports[i]
			if p.Protocol == "" {
				p.Protocol = corev1.ProtocolTCP
			}
			if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 && p.TargetPort.StrVal == "" {
				p.TargetPort = intstr.FromInt32(p.Port)
			}
		}
	case *corev1.Secret:
		if o.Type == "" {
			o.Type = corev1.SecretTypeOpaque
		}
		// Kubernetes merges stringData into data on write, stringData
		// winning.
		if len(o.StringData) > 0 {
			if o.Data == nil {
				o.Data = map[string][]byte{}
			}
			for k, v := range o.StringData {
				o.Data[k] = []byte(v)
			}
			o.StringData = nil
		}
	}
	return notes
}

// workloadFields points at the replica count, label selector and pod
// template of the workload kinds that have them (a nil pointer for a
// field the kind lacks; a nil template for the other kinds), so that
// their common defaults are written once. ReplicationController, whose
// selector is a plain map, is defaulted on its own.
func workloadFields(obj runtime.Object) (replicas **int32, selector **metav1.LabelSelector, tmpl *corev1.PodTemplateSpec) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Replicas, &o.Spec.Selector, &o.Spec.Template
	case *appsv1.ReplicaSet:
		return &o.Spec.Replicas, &o.Spec.Selector, &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Replicas, &o.Spec.Selector, &o.Spec.Template
	case *appsv1.DaemonSet:
		return nil, &o.Spec.Selector, &o.Spec.Template
	case *batchv1.Job:
		return nil, nil, &o.Spec.Template
	case *batchv1.CronJob:
		return nil, nil, &o.Spec.JobTemplate.Spec.Template
	}
	return nil, nil, nil
}

func defaultJobSpec(s *batchv1.JobSpec) {
	if s.Completions == nil && s.Parallelism == nil {
		s.Completions = ptr(int32(1))
		s.Parallelism = ptr(int32(1))
	}
	if s.Parallelism == nil {
		s.Parallelism = ptr(int32(1))
	}
	if s.BackoffLimit == nil {
		s.BackoffLimit = ptr(int32(6))
	}
}

func defaultPodSpec(s *corev1.PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr(int64(30))
	}
	for i := range s.InitContainers {
		defaultContainer(&s.InitContainers[i])
	}
	for i := range s.Containers {
		defaultContainer(&s.Containers[i])
	}
	for i := range s.Volumes {
		v := &s.Volumes[i]
		// A volume with no source is an empty directory, as in Kubernetes.
		if v.EmptyDir == nil && v.ConfigMap == nil && v.Secret == nil && v.HostPath == nil {
			v.VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		}
		if v.ConfigMap != nil && v.ConfigMap.DefaultMode == nil {
			v.ConfigMap.DefaultMode = ptr(int32(0o644))
		}
		// A secret's files are readable by their owner only, where
		// Kubernetes makes them 0644.
		if v.Secret != nil && v.Secret.DefaultMode == nil {
			v.Secret.DefaultMode = ptr(int32(SecretDefaultMode))
		}
	}
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = corev1.PullIfNotPresent
		if imageTag(c.Image) == "latest" {
			c.ImagePullPolicy = corev1.PullAlways
		}
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p == nil {
			continue
		}
		if p.PeriodSeconds == 0 {
			p.PeriodSeconds = 10
		}
		if p.TimeoutSeconds == 0 {
			p.TimeoutSeconds = 1
		}
		if p.SuccessThreshold == 0 {
			p.SuccessThreshold = 1
		}
		if p.FailureThreshold == 0 {
			p.FailureThreshold = 3
		}
		if p.HTTPGet != nil {
			if p.HTTPGet.Path == "" {
				p.HTTPGet.Path = "/"
			}
			if p.HTTPGet.Scheme == "" {
				p.HTTPGet.Scheme = corev1.URISchemeHTTP
			}
		}
	}
}

// imageTag is the tag of an image reference: "latest" when it names none
// (and has no digest), "" when it is pinned by digest.
func imageTag(image string) string {
	if strings.Contains(image, "@") {
		return ""
	}
	name := image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.LastIndex(name, ":"); i >= 0 {
		return name[i+1:]
	}
	return "latest"
}

func copyLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// setNamespace writes the defaulted namespace into the object.
func setNamespace(obj runtime.Object, d *docInfo) {
	if m, ok := obj.(metav1.Object); ok && d.info.namespaced {
		m.SetNamespace(d.namespace)
	}
}

// SecretDefaultMode is the mode of a secret volume's files when the
// volume sets no defaultMode.
const SecretDefaultMode = 0o400
