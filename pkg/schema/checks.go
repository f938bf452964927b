package schema

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gitorch/gitorch/pkg/plan"
)

// crossCheck finds what no single document shows: duplicate objects,
// selectors that do not match their template, references to ConfigMaps and
// Secrets that the tree does not define, a nodePort used twice, and a named
// targetPort that no selected pod declares.
//
// The checks only read the objects: they run in parallel, since after a
// commit that changed a few files they are most of what a load does, and
// their findings are put together in a fixed order. Objects of .cue files
// find their fields' positions in CUE values, which may not be read
// concurrently: with any of them, the checks run one after the other.
func crossCheck(objs []Object) []Finding {
	checks := []func([]Object) []Finding{
		checkDuplicates, checkSelectors, checkReferences, checkNodePorts, checkTargetPorts,
		func(objs []Object) []Finding {
			var fs []Finding
			for i := range objs {
				fs = append(fs, checkObject(&objs[i])...)
			}
			return fs
		},
	}
	found := make([][]Finding, len(checks))
	for i := range objs {
		if objs[i].src.ref.data == nil {
			for i, check := range checks {
				found[i] = check(objs)
			}
			return slices.Concat(found...)
		}
	}
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			found[i] = check(objs)
		}()
	}
	wg.Wait()
	return slices.Concat(found...)
}

// checkObject applies the rules of one object that its schema cannot
// express.
func checkObject(o *Object) []Finding {
	var fs []Finding
	switch w := o.Obj.(type) {
	case *corev1.Service:
		for pi, p := range w.Spec.Ports {
			if p.NodePort != 0 && w.Spec.Type != corev1.ServiceTypeNodePort {
				fs = append(fs, o.finding(SeverityError, []string{"spec", "ports", strconv.Itoa(pi), "nodePort"},
					fmt.Sprintf("nodePort needs type NodePort (this Service is %s)", w.Spec.Type)))
			}
		}
		if w.Spec.Type == corev1.ServiceTypeNodePort && len(w.Spec.Ports) == 0 {
			fs = append(fs, o.finding(SeverityError, []string{"spec", "ports"}, "a NodePort Service needs at least one port"))
		}
	case *batchv1.CronJob:
		tz := ""
		if w.Spec.TimeZone != nil {
			tz = *w.Spec.TimeZone
		}
		if _, err := plan.ParseCronSchedule(w.Spec.Schedule, tz); err != nil {
			field := []string{"spec", "schedule"}
			if strings.HasPrefix(err.Error(), "unknown time zone") {
				field = []string{"spec", "timeZone"}
			}
			fs = append(fs, o.finding(SeverityError, field, err.Error()))
		}
	}
	return fs
}

func (o *Object) finding(sev Severity, field []string, msg string) Finding {
	return Finding{Severity: sev, Pos: o.FieldPos(field...), Kind: o.Kind, Namespace: o.Namespace,
		Name: o.Name, Field: formatPath(field), Message: msg}
}

func (o *Object) id() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + "/" + o.Namespace + "/" + o.Name
}

func checkDuplicates(objs []Object) []Finding {
	var fs []Finding
	first := map[string]*Object{}
	for i := range objs {
		o := &objs[i]
		if prev, ok := first[o.id()]; ok {
			fs = append(fs, o.finding(SeverityError, []string{"metadata", "name"},
				fmt.Sprintf("duplicate %s: already defined at %s", o.id(), prev.Pos)))
			continue
		}
		first[o.id()] = o
	}
	return fs
}

// template is the pod template of a workload, or the pod itself, with the
// field path at which it is written.
type template struct {
	labels map[string]string
	spec   *corev1.PodSpec
	path   []string // path of the template (its metadata and spec are below)
}

func podTemplate(o *Object) (template, bool) {
	tp := []string{"spec", "template"}
	switch w := o.Obj.(type) {
	case *corev1.Pod:
		return template{labels: w.Labels, spec: &w.Spec, path: nil}, true
	case *appsv1.Deployment:
		return template{w.Spec.Template.Labels, &w.Spec.Template.Spec, tp}, true
	case *appsv1.ReplicaSet:
		return template{w.Spec.Template.Labels, &w.Spec.Template.Spec, tp}, true
	case *appsv1.DaemonSet:
		return template{w.Spec.Template.Labels, &w.Spec.Template.Spec, tp}, true
	case *appsv1.StatefulSet:
		return template{w.Spec.Template.Labels, &w.Spec.Template.Spec, tp}, true
	case *batchv1.Job:
		return template{w.Spec.Template.Labels, &w.Spec.Template.Spec, tp}, true
	case *batchv1.CronJob:
		t := &w.Spec.JobTemplate.Spec.Template
		return template{t.Labels, &t.Spec, []string{"spec", "jobTemplate", "spec", "template"}}, true
	case *corev1.ReplicationController:
		if w.Spec.Template == nil {
			return template{}, false
		}
		return template{w.Spec.Template.Labels, &w.Spec.Template.Spec, tp}, true
	}
	return template{}, false
}

func at(base []string, rest ...string) []string {
	return append(append([]string(nil), base...), rest...)
}

func checkSelectors(objs []Object) []Finding {
	var fs []Finding
	for i := range objs {
		o := &objs[i]
		var sel *metav1.LabelSelector
		switch w := o.Obj.(type) {
		case *appsv1.Deployment:
			sel = w.Spec.Selector
		case *appsv1.ReplicaSet:
			sel = w.Spec.Selector
		case *appsv1.DaemonSet:
			sel = w.Spec.Selector
		case *appsv1.StatefulSet:
			sel = w.Spec.Selector
		case *corev1.ReplicationController:
			if w.Spec.Template != nil && len(w.Spec.Selector) > 0 &&
				!labels.SelectorFromSet(w.Spec.Selector).Matches(labels.Set(w.Spec.Template.Labels)) {
				fs = append(fs, o.finding(SeverityError, []string{"spec", "selector"},
					"selector does not match the template's labels (spec.template.metadata.labels)"))
			}
			continue
		default:
			continue
		}
		if sel == nil {
			continue
		}
		t, _ := podTemplate(o)
		s, err := metav1.LabelSelectorAsSelector(sel)
		switch {
		case err != nil:
			fs = append(fs, o.finding(SeverityError, []string{"spec", "selector"}, "invalid selector: "+err.Error()))
		case s.Empty():
			fs = append(fs, o.finding(SeverityError, []string{"spec", "selector"}, "empty selector: it would select every pod"))
		case !s.Matches(labels.Set(t.labels)):
			fs = append(fs, o.finding(SeverityError, []string{"spec", "selector"},
				"selector does not match the template's labels (spec.template.metadata.labels)"))
		}
	}
	return fs
}

// checkReferences makes sure every ConfigMap and Secret a pod needs is in
// the tree, with the keys it names, unless the reference is optional.
func checkReferences(objs []Object) []Finding {
	type objKey struct{ namespace, name string }
	configMaps := map[objKey]map[string]bool{}
	secrets := map[objKey]map[string]bool{}
	for _, o := range objs {
		switch c := o.Obj.(type) {
		case *corev1.ConfigMap:
			keys := map[string]bool{}
			for k := range c.Data {
				keys[k] = true
			}
			for k := range c.BinaryData {
				keys[k] = true
			}
			configMaps[objKey{o.Namespace, o.Name}] = keys
		case *corev1.Secret:
			keys := map[string]bool{}
			for k := range c.Data {
				keys[k] = true
			}
			secrets[objKey{o.Namespace, o.Name}] = keys
		}
	}
	var fs []Finding
	for i := range objs {
		o := &objs[i]
		t, ok := podTemplate(o)
		if !ok {
			continue
		}
		// field makes the path of a finding: only a finding needs it.
		specPath := func(rest ...string) []string { return at(at(t.path, "spec"), rest...) }
		ref := func(kind string, store map[objKey]map[string]bool, name, key string, optional *bool, field func() []string) {
			if optional != nil && *optional {
				return
			}
			keys, ok := store[objKey{o.Namespace, name}]
			switch {
			case !ok:
				fs = append(fs, o.finding(SeverityError, field(),
					fmt.Sprintf("%s %s/%s is not defined in the repository (add it, or mark the reference optional: true)", kind, o.Namespace, name)))
			case key != "" && !keys[key]:
				fs = append(fs, o.finding(SeverityError, field(),
					fmt.Sprintf("%s %s/%s has no key %q", kind, o.Namespace, name, key)))
			}
		}
		for vi, v := range t.spec.Volumes {
			vp := func(rest ...string) func() []string {
				return func() []string { return specPath(append([]string{"volumes", strconv.Itoa(vi)}, rest...)...) }
			}
			if v.ConfigMap != nil {
				ref("ConfigMap", configMaps, v.ConfigMap.Name, "", v.ConfigMap.Optional, vp("configMap", "name"))
			}
			if v.Secret != nil {
				ref("Secret", secrets, v.Secret.SecretName, "", v.Secret.Optional, vp("secret", "secretName"))
			}
		}
		for _, group := range []struct {
			name       string
			containers []corev1.Container
		}{{"initContainers", t.spec.InitContainers}, {"containers", t.spec.Containers}} {
			for ci, c := range group.containers {
				cp := func(rest ...string) func() []string {
					return func() []string { return specPath(append([]string{group.name, strconv.Itoa(ci)}, rest...)...) }
				}
				for ei, e := range c.Env {
					if e.ValueFrom == nil {
						continue
					}
					if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
						ref("ConfigMap", configMaps, r.Name, r.Key, r.Optional, cp("env", strconv.Itoa(ei), "valueFrom", "configMapKeyRef"))
					}
					if r := e.ValueFrom.SecretKeyRef; r != nil {
						ref("Secret", secrets, r.Name, r.Key, r.Optional, cp("env", strconv.Itoa(ei), "valueFrom", "secretKeyRef"))
					}
				}
				for ei, e := range c.EnvFrom {
					if r := e.ConfigMapRef; r != nil {
						ref("ConfigMap", configMaps, r.Name, "", r.Optional, cp("envFrom", strconv.Itoa(ei), "configMapRef"))
					}
					if r := e.SecretRef; r != nil {
						ref("Secret", secrets, r.Name, "", r.Optional, cp("envFrom", strconv.Itoa(ei), "secretRef"))
					}
				}
			}
		}
	}
	return fs
}

func checkNodePorts(objs []Object) []Finding {
	var fs []Finding
	type use struct {
		o    *Object
		port int
	}
	first := map[int32]use{}
	for i := range objs {
		o := &objs[i]
		svc, ok := o.Obj.(*corev1.Service)
		if !ok {
			continue
		}
		for pi, p := range svc.Spec.Ports {
			if p.NodePort == 0 {
				continue
			}
			// TCP and UDP may share a number, as in Kubernetes.
			key := p.NodePort
			if p.Protocol == corev1.ProtocolUDP {
				key = -key
			}
			if prev, ok := first[key]; ok {
				fs = append(fs, o.finding(SeverityError, []string{"spec", "ports", strconv.Itoa(pi), "nodePort"},
					fmt.Sprintf("nodePort %d is already used by %s (%s)", p.NodePort, prev.o.id(), prev.o.FieldPos("spec", "ports", strconv.Itoa(prev.port), "nodePort"))))
				continue
			}
			first[key] = use{o, pi}
		}
	}
	return fs
}

// checkTargetPorts makes sure a Service's named targetPort is a port name
// of every pod template it selects. A Service that selects no pod of the
// tree is left alone: its pods may be defined elsewhere.
func checkTargetPorts(objs []Object) []Finding {
	// Templates indexed by namespace and one label, so that finding what a
	// selector matches does not compare every Service with every workload.
	type labelKey struct{ namespace, key, value string }
	byLabel := map[labelKey][]template{}
	for j := range objs {
		if t, ok := podTemplate(&objs[j]); ok {
			for k, v := range t.labels {
				lk := labelKey{objs[j].Namespace, k, v}
				byLabel[lk] = append(byLabel[lk], t)
			}
		}
	}
	var fs []Finding
	for i := range objs {
		o := &objs[i]
		svc, ok := o.Obj.(*corev1.Service)
		if !ok || len(svc.Spec.Selector) == 0 || !hasNamedTargetPort(svc) {
			continue
		}
		// Every selected template carries the selector's first pair.
		keys := make([]string, 0, len(svc.Spec.Selector))
		for k := range svc.Spec.Selector {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var selected []template
		for _, t := range byLabel[labelKey{o.Namespace, keys[0], svc.Spec.Selector[keys[0]]}] {
			if hasLabels(t.labels, svc.Spec.Selector) {
				selected = append(selected, t)
			}
		}
		for pi, port := range svc.Spec.Ports {
			if port.TargetPort.Type != intstr.String {
				continue
			}
			name := port.TargetPort.StrVal
			for _, t := range selected {
				if !declaresPort(t.spec, name) {
					fs = append(fs, o.finding(SeverityError, []string{"spec", "ports", strconv.Itoa(pi), "targetPort"},
						fmt.Sprintf("targetPort %q is not a port name of the selected pods (their ports: %s)", name, portNames(t.spec))))
					break
				}
			}
		}
	}
	return fs
}

// hasLabels reports whether labels has every pair of sel, as a selector
// made with labels.SelectorFromSet matches, without building one.
func hasLabels(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func hasNamedTargetPort(svc *corev1.Service) bool {
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.Type == intstr.String {
			return true
		}
	}
	return false
}

func declaresPort(spec *corev1.PodSpec, name string) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func portNames(spec *corev1.PodSpec) string {
	var names []string
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name != "" {
				names = append(names, p.Name)
			}
		}
	}
	if len(names) == 0 {
		return "none named"
	}
	sort.Strings(names)
	return fmt.Sprint(names)
}
