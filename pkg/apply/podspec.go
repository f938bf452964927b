package apply

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/gitorch/gitorch/pkg/plan"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// PodInputs is what a pod's containers need besides the pod itself
// (plan.PodInputs, computed with the node's share).
type PodInputs = plan.PodInputs

// PodSpecFor turns a Kubernetes pod into what the runtime runs: images
// named in full, environment resolved (env, envFrom, service links,
// $(VAR) expansion), volumes with their contents, resources as cgroup
// numbers. It does no I/O. Init containers come out in InitContainers;
// RunPod does not start them (the caller runs them, in order, with
// StartContainer before RunPod).
func PodSpecFor(pod *corev1.Pod, in PodInputs) (PodSpec, error) {
	out := PodSpec{
		Namespace:    pod.Namespace,
		Name:         pod.Name,
		Revision:     in.Revision,
		TemplateHash: in.TemplateHash,
		Hostname:     pod.Spec.Hostname,
	}
	if rc, ok := PodResolvConf(pod, in.DNS); ok {
		out.ResolvConf = FormatResolvConf(rc)
	}
	for _, v := range pod.Spec.Volumes {
		vol, err := volumeFor(v, in)
		if err != nil {
			return PodSpec{}, fmt.Errorf("spec.volumes[%s]: %w", v.Name, err)
		}
		out.Volumes = append(out.Volumes, vol)
	}
	for i := range pod.Spec.InitContainers {
		c, err := containerFor(pod, &pod.Spec.InitContainers[i], in)
		if err != nil {
			return PodSpec{}, fmt.Errorf("spec.initContainers[%s]: %w", pod.Spec.InitContainers[i].Name, err)
		}
		out.InitContainers = append(out.InitContainers, c)
	}
	for i := range pod.Spec.Containers {
		c, err := containerFor(pod, &pod.Spec.Containers[i], in)
		if err != nil {
			return PodSpec{}, fmt.Errorf("spec.containers[%s]: %w", pod.Spec.Containers[i].Name, err)
		}
		out.Containers = append(out.Containers, c)
	}
	return out, nil
}

func containerFor(pod *corev1.Pod, c *corev1.Container, in PodInputs) (ContainerSpec, error) {
	img, err := NormalizeImage(c.Image)
	if err != nil {
		return ContainerSpec{}, err
	}
	env, err := ContainerEnv(pod, c, in)
	if err != nil {
		return ContainerSpec{}, err
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	// The pull policy was defaulted with the manifest (pkg/schema).
	policy := PullPolicy(c.ImagePullPolicy)
	out := ContainerSpec{
		Name:       c.Name,
		Image:      img,
		PullPolicy: policy,
		Command:    expandAll(c.Command, vars),
		Args:       expandAll(c.Args, vars),
		Env:        env,
		WorkingDir: c.WorkingDir,
	}
	for _, m := range c.VolumeMounts {
		out.Mounts = append(out.Mounts, Mount{Volume: m.Name, SubPath: m.SubPath, Destination: m.MountPath, ReadOnly: m.ReadOnly})
	}
	if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		out.Resources.CPURequestMilli = q.MilliValue()
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		out.Resources.CPULimitMilli = q.MilliValue()
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		out.Resources.MemoryLimit = q.Value()
	}
	return out, nil
}

// NormalizeImage names an image as containerd stores it: "nginx" is
// docker.io/library/nginx:latest.
func NormalizeImage(image string) (string, error) {
	if image == "" {
		return "", fmt.Errorf("image: empty")
	}
	n, err := reference.ParseDockerRef(image)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", image, err)
	}
	return n.String(), nil
}

// ContainerEnv computes a container's environment as kubelet does: the
// pod's service link variables, then envFrom, then env (later definitions
// win), with $(VAR) in env values expanded from the variables defined
// before them. The result is KEY=value in order of first definition,
// the service variables last.
func ContainerEnv(pod *corev1.Pod, c *corev1.Container, in PodInputs) ([]string, error) {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	services := map[string]string{}
	var serviceOrder []string
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		for _, kv := range ServiceEnv(in.Services) {
			k, v, _ := strings.Cut(kv, "=")
			services[k] = v
			serviceOrder = append(serviceOrder, k)
		}
	}
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := in.ConfigMaps[from.ConfigMapRef.Name]
			if !ok {
				if isOptional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("envFrom: configMap %q not found", from.ConfigMapRef.Name)
			}
			data = cm.Data
		case from.SecretRef != nil:
			s, ok := in.Secrets[from.SecretRef.Name]
			if !ok {
				if isOptional(from.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("envFrom: secret %q not found", from.SecretRef.Name)
			}
			data = secretData(s)
		default:
			return nil, fmt.Errorf("envFrom: neither configMapRef nor secretRef")
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			name := from.Prefix + k
			if !validEnvName(name) {
				continue // kubelet skips invalid names too
			}
			set(name, data[k])
		}
	}
	lookup := func(name string) (string, bool) {
		if v, ok := vals[name]; ok {
			return v, true
		}
		v, ok := services[name]
		return v, ok
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, Expand(e.Value, lookup))
			continue
		}
		v, skip, err := envValueFrom(pod, c, e.ValueFrom, in)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if !skip {
			set(e.Name, v)
		}
	}
	for _, k := range serviceOrder {
		if _, ok := vals[k]; !ok {
			set(k, services[k])
		}
	}
	out := make([]string, len(order))
	for i, k := range order {
		out[i] = k + "=" + vals[k]
	}
	return out, nil
}

// envValueFrom resolves one valueFrom. skip is set for a missing optional
// key, which defines no variable.
func envValueFrom(pod *corev1.Pod, c *corev1.Container, from *corev1.EnvVarSource, in PodInputs) (v string, skip bool, err error) {
	switch {
	case from.FieldRef != nil:
		v, err := fieldValue(pod, from.FieldRef.FieldPath, in)
		return v, false, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, ok := in.ConfigMaps[ref.Name]
		if !ok {
			return "", isOptional(ref.Optional), missing(ref.Optional, "configMap %q not found", ref.Name)
		}
		if v, ok := cm.Data[ref.Key]; ok {
			return v, false, nil
		}
		if b, ok := cm.BinaryData[ref.Key]; ok {
			return string(b), false, nil
		}
		return "", isOptional(ref.Optional), missing(ref.Optional, "configMap %q has no key %q", ref.Name, ref.Key)
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s, ok := in.Secrets[ref.Name]
		if !ok {
			return "", isOptional(ref.Optional), missing(ref.Optional, "secret %q not found", ref.Name)
		}
		if v, ok := secretData(s)[ref.Key]; ok {
			return v, false, nil
		}
		return "", isOptional(ref.Optional), missing(ref.Optional, "secret %q has no key %q", ref.Name, ref.Key)
	case from.ResourceFieldRef != nil:
		v, err := resourceValue(c, from.ResourceFieldRef)
		return v, false, err
	}
	return "", false, fmt.Errorf("valueFrom sets no source")
}

func isOptional(p *bool) bool { return p != nil && *p }

func missing(optional *bool, format string, args ...any) error {
	if isOptional(optional) {
		return nil
	}
	return fmt.Errorf(format, args...)
}

func secretData(s *corev1.Secret) map[string]string {
	out := make(map[string]string, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	// stringData is write-only in Kubernetes and wins over data.
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

func fieldValue(pod *corev1.Pod, path string, in PodInputs) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return in.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		if !in.PodIP.IsValid() {
			return "", nil
		}
		return in.PodIP.String(), nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if rest, ok := strings.CutPrefix(path, prefix+"['"); ok {
			if key, ok := strings.CutSuffix(rest, "']"); ok {
				return m[key], nil
			}
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported", path)
}

func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		return "", fmt.Errorf("resourceFieldRef of another container (%s) is not supported", ref.ContainerName)
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	var list corev1.ResourceList
	switch kind {
	case "limits":
		list = c.Resources.Limits
	case "requests":
		list = c.Resources.Requests
	}
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef %q is not supported", ref.Resource)
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		return "", fmt.Errorf("resourceFieldRef %q: the container sets no %s", ref.Resource, ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	switch corev1.ResourceName(name) {
	case corev1.ResourceCPU:
		return strconv.FormatInt(ceilDiv(q.MilliValue(), divisor.MilliValue()), 10), nil
	case corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
		return strconv.FormatInt(ceilDiv(q.Value(), divisor.Value()), 10), nil
	}
	return "", fmt.Errorf("resourceFieldRef %q is not supported", ref.Resource)
}

func ceilDiv(a, b int64) int64 {
	if b <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// ServiceEnv returns the service link variables of services, as kubelet
// sets them: <NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT (and one per named
// port), and the Docker link style <NAME>_PORT... variables. Services
// without a cluster IP (headless, or not yet assigned) have none.
func ServiceEnv(services []*corev1.Service) []string {
	sorted := append([]*corev1.Service(nil), services...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var out []string
	for _, s := range sorted {
		ip := s.Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		name := envName(s.Name)
		first := s.Spec.Ports[0]
		out = append(out,
			name+"_SERVICE_HOST="+ip,
			name+"_SERVICE_PORT="+strconv.Itoa(int(first.Port)),
		)
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				out = append(out, name+"_SERVICE_PORT_"+envName(p.Name)+"="+strconv.Itoa(int(p.Port)))
			}
		}
		hostPort := func(p corev1.ServicePort) string {
			if strings.Contains(ip, ":") {
				return "[" + ip + "]:" + strconv.Itoa(int(p.Port))
			}
			return ip + ":" + strconv.Itoa(int(p.Port))
		}
		out = append(out, name+"_PORT="+protocol(first)+"://"+hostPort(first))
		for _, p := range s.Spec.Ports {
			prefix := name + "_PORT_" + strconv.Itoa(int(p.Port)) + "_" + strings.ToUpper(protocol(p))
			out = append(out,
				prefix+"="+protocol(p)+"://"+hostPort(p),
				prefix+"_PROTO="+protocol(p),
				prefix+"_PORT="+strconv.Itoa(int(p.Port)),
				prefix+"_ADDR="+ip,
			)
		}
	}
	return out
}

func protocol(p corev1.ServicePort) string {
	if p.Protocol == "" {
		return "tcp"
	}
	return strings.ToLower(string(p.Protocol))
}

func envName(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

// validEnvName is Kubernetes' rule for environment variable names: any
// printable ASCII but '=', not starting with a digit.
func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '=' {
			return false
		}
	}
	return true
}

// Expand replaces $(NAME) in s by lookup(NAME) as Kubernetes does: $$ is
// a literal $, and a reference that lookup does not know stays as it is.
func Expand(s string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func expandAll(ss []string, vars map[string]string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = Expand(s, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	}
	return out
}

// volumeFor turns one pod volume into what the runtime mounts.
func volumeFor(v corev1.Volume, in PodInputs) (Volume, error) {
	out := Volume{Name: v.Name}
	switch {
	case v.EmptyDir != nil:
		out.EmptyDir = true
		out.Memory = v.EmptyDir.Medium == corev1.StorageMediumMemory
	case v.HostPath != nil:
		out.HostPath = v.HostPath.Path
		if v.HostPath.Type != nil {
			out.HostPathType = string(*v.HostPath.Type)
		}
	case v.PersistentVolumeClaim != nil:
		name := v.PersistentVolumeClaim.ClaimName
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return Volume{}, fmt.Errorf("claim name %q: %s", name, errs[0])
		}
		out.Claim = name
	case v.ConfigMap != nil:
		src := v.ConfigMap
		cm, ok := in.ConfigMaps[src.Name]
		if !ok {
			if isOptional(src.Optional) {
				return out, nil
			}
			return Volume{}, fmt.Errorf("configMap %q not found", src.Name)
		}
		data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
		for k, val := range cm.Data {
			data[k] = []byte(val)
		}
		for k, val := range cm.BinaryData {
			data[k] = val
		}
		files, err := projectFiles(data, src.Items, src.DefaultMode, 0o644, src.Optional)
		if err != nil {
			return Volume{}, fmt.Errorf("configMap %q: %w", src.Name, err)
		}
		out.Files = files
	case v.Secret != nil:
		src := v.Secret
		out.Memory = true
		s, ok := in.Secrets[src.SecretName]
		if !ok {
			if isOptional(src.Optional) {
				return out, nil
			}
			return Volume{}, fmt.Errorf("secret %q not found", src.SecretName)
		}
		data := map[string][]byte{}
		for k, val := range secretData(s) {
			data[k] = []byte(val)
		}
		files, err := projectFiles(data, src.Items, src.DefaultMode, 0o400, src.Optional)
		if err != nil {
			return Volume{}, fmt.Errorf("secret %q: %w", src.SecretName, err)
		}
		out.Files = files
	default:
		return Volume{}, fmt.Errorf("volume type is not supported (supported: emptyDir, hostPath, configMap, secret)")
	}
	return out, nil
}

// projectFiles lays out keys as files: every key under its own name, or,
// with items, the listed keys under their paths. Files are mode
// defaultMode, or perm when it is nil.
func projectFiles(data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, perm os.FileMode, optional *bool) ([]VolumeFile, error) {
	mode := perm
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode) & os.ModePerm
	}
	var out []VolumeFile
	if len(items) == 0 {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, err := cleanRel(k); err != nil || strings.Contains(k, "/") {
				return nil, fmt.Errorf("key %q cannot be a file name", k)
			}
			out = append(out, VolumeFile{Path: k, Data: data[k], Mode: mode})
		}
		return out, nil
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			if isOptional(optional) {
				continue
			}
			return nil, fmt.Errorf("no key %q", it.Key)
		}
		if _, err := cleanRel(it.Path); err != nil {
			return nil, fmt.Errorf("items path: %w", err)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode) & os.ModePerm
		}
		out = append(out, VolumeFile{Path: it.Path, Data: b, Mode: m})
	}
	return out, nil
}
