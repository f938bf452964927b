package schema

import (
	"fmt"
	"strconv"

	"cuelang.org/go/cue"
	corev1 "k8s.io/api/core/v1"

	"github.com/gitorch/gitorch/schemas"
)

// guardsFile holds the schemas' checks across the fields of one pod,
// container, probe, hook, environment variable and volume, and a
// workload's required selector. The cue command applies
// them; newValidator leaves the file out and checkGuards applies the same
// checks to the decoded object, with the same messages: as CUE
// comprehensions they were the largest part of a cold load's CPU time.
// A change to these checks changes loaderVersion too.
const guardsFile = schemas.GuardsFile

// checkGuards applies the checks of guardsFile to an object that its
// schema accepted, doc its document, and reports every one that fails.
func checkGuards(o *Object, doc cue.Value) []Finding {
	var fs []Finding
	add := func(path []string, msg string) {
		fs = append(fs, o.finding(SeverityError, path, msg))
	}
	if svc, ok := o.Obj.(*corev1.Service); ok {
		checkServiceGuards(&svc.Spec, add)
		return fs
	}
	t, ok := podTemplate(o)
	if !ok {
		return nil
	}
	// Read in the document: the defaults of apps/v1beta2 set a selector
	// that was left out.
	if (o.APIVersion == "apps/v1" || o.APIVersion == "apps/v1beta2") &&
		!doc.LookupPath(cue.MakePath(cue.Str("spec"), cue.Str("selector"))).Exists() {
		add([]string{"spec", "selector"}, "field is required but not present")
	}
	spec := at(t.path, "spec")
	if len(t.spec.Containers) == 0 {
		add(spec, "containers is empty: a pod needs at least one container")
	}
	if t.spec.DNSPolicy == corev1.DNSNone {
		// The words are CUE's, as the cue command gives them.
		switch dc := t.spec.DNSConfig; {
		case dc == nil:
			add(at(spec, "dnsConfig"), "field is required but not present")
		case dc.Nameservers == nil:
			add(at(spec, "dnsConfig", "nameservers"), "field is required but not present")
		case len(dc.Nameservers) == 0:
			add(at(spec, "dnsConfig", "nameservers"), "incompatible list lengths (0 and 1)")
		}
	}
	for i := range t.spec.InitContainers {
		checkContainerGuards(&t.spec.InitContainers[i], at(spec, "initContainers", strconv.Itoa(i)), true, add)
	}
	for i := range t.spec.Containers {
		checkContainerGuards(&t.spec.Containers[i], at(spec, "containers", strconv.Itoa(i)), false, add)
	}
	for i := range t.spec.Volumes {
		checkVolumeGuards(&t.spec.Volumes[i], at(spec, "volumes", strconv.Itoa(i)), add)
	}
	return fs
}

// oneOf reports a message for each pair of sources that are both set, in
// the order of names: "<what> has one <kind>, not a and b".
func oneOf(path []string, prefix string, names []string, set []bool, add func([]string, string)) {
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if set[i] && set[j] {
				add(path, prefix+", not "+names[i]+" and "+names[j])
			}
		}
	}
}

func checkContainerGuards(c *corev1.Container, path []string, init bool, add func([]string, string)) {
	for i, e := range c.EnvFrom {
		p := at(path, "envFrom", strconv.Itoa(i))
		if e.ConfigMapRef == nil && e.SecretRef == nil {
			add(path, "envFrom["+strconv.Itoa(i)+"] needs a source: configMapRef or secretRef")
		}
		oneOf(p, "envFrom has one source", []string{"configMapRef", "secretRef"},
			[]bool{e.ConfigMapRef != nil, e.SecretRef != nil}, add)
	}
	for i, e := range c.Env {
		if e.ValueFrom == nil {
			continue
		}
		p := at(path, "env", strconv.Itoa(i))
		s := e.ValueFrom
		if e.Value != "" {
			add(p, "env "+e.Name+": value and valueFrom may not both be set")
		}
		if s.ConfigMapKeyRef == nil && s.SecretKeyRef == nil && s.FieldRef == nil && s.ResourceFieldRef == nil {
			add(p, "env "+e.Name+": valueFrom needs a source: configMapKeyRef, secretKeyRef, fieldRef or resourceFieldRef")
		}
		oneOf(at(p, "valueFrom"), "valueFrom has one source",
			[]string{"configMapKeyRef", "secretKeyRef", "fieldRef", "resourceFieldRef"},
			[]bool{s.ConfigMapKeyRef != nil, s.SecretKeyRef != nil, s.FieldRef != nil, s.ResourceFieldRef != nil}, add)
	}
	if init {
		// An init container has no probes and no hooks (its schema
		// refuses them).
		return
	}
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}} {
		if pr.probe == nil {
			continue
		}
		h := pr.probe.ProbeHandler
		if h.Exec == nil && h.HTTPGet == nil && h.TCPSocket == nil {
			add(path, pr.name+" needs a handler: exec, httpGet or tcpSocket")
		}
		oneOf(at(path, pr.name), "a probe has one handler", []string{"exec", "httpGet", "tcpSocket"},
			[]bool{h.Exec != nil, h.HTTPGet != nil, h.TCPSocket != nil}, add)
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		h := c.Lifecycle.PreStop
		oneOf(at(path, "lifecycle", "preStop"), "a lifecycle hook has one handler", []string{"exec", "httpGet"},
			[]bool{h.Exec != nil, h.HTTPGet != nil}, add)
	}
}

func checkVolumeGuards(v *corev1.Volume, path []string, add func([]string, string)) {
	s := v.VolumeSource
	oneOf(path, "volume "+v.Name+" has one source", []string{"emptyDir", "configMap", "secret", "hostPath"},
		[]bool{s.EmptyDir != nil, s.ConfigMap != nil, s.Secret != nil, s.HostPath != nil}, add)
}

// checkServiceGuards applies the rules of a Service's type. The type is
// defaulted: left out, it is ClusterIP, for which the rules are the same.
func checkServiceGuards(s *corev1.ServiceSpec, add func([]string, string)) {
	spec := []string{"spec"}
	external := s.Type == corev1.ServiceTypeExternalName
	if s.ExternalTrafficPolicy != "" && (s.Type == corev1.ServiceTypeClusterIP || external) {
		add(spec, "externalTrafficPolicy may only be set when type is NodePort or LoadBalancer")
	}
	if s.SessionAffinityConfig != nil && s.SessionAffinity != corev1.ServiceAffinityClientIP {
		add(spec, "sessionAffinityConfig may only be set when sessionAffinity is ClientIP")
	}
	if external {
		if s.ExternalName == "" {
			add(at(spec, "externalName"), "field is required but not present")
		}
		if s.ClusterIP != "" {
			add(at(spec, "clusterIP"), "clusterIP may not be set when type is ExternalName")
		}
	} else if s.ExternalName != "" {
		add(spec, "externalName may only be set when type is ExternalName")
	}
	// Every Service but a headless or ExternalName one has a port (the
	// words are CUE's).
	if !external && s.ClusterIP != corev1.ClusterIPNone {
		switch {
		case s.Ports == nil:
			add(at(spec, "ports"), "field is required but not present")
		case len(s.Ports) == 0:
			add(at(spec, "ports"), "incompatible list lengths (0 and 1)")
		}
	}
	if len(s.Ports) > 1 {
		for i, p := range s.Ports {
			if p.Name == "" {
				add(spec, fmt.Sprintf("ports[%d] (port %d) needs a name: every port of a Service with more than one port has a name", i, p.Port))
			}
		}
	}
	for i, p := range s.Ports {
		for j := i + 1; j < len(s.Ports); j++ {
			if p.Name != "" && p.Name == s.Ports[j].Name {
				add(spec, fmt.Sprintf("ports[%d] and ports[%d] have the same name %s", i, j, p.Name))
			}
		}
	}
	if s.ClusterIP == corev1.ClusterIPNone && s.Type != corev1.ServiceTypeClusterIP {
		add(spec, "clusterIP None (headless) may only be used with type ClusterIP")
	}
	if s.Type == corev1.ServiceTypeClusterIP || external {
		for i, p := range s.Ports {
			if p.NodePort != 0 {
				add(at(spec, "ports", strconv.Itoa(i), "nodePort"), "nodePort may only be set when type is NodePort or LoadBalancer")
			}
		}
	}
}
