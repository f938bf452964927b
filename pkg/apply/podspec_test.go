package apply

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ptr[T any](v T) *T { return &v }

func testInputs() PodInputs {
	return PodInputs{
		NodeName: "node-a",
		PodIP:    netip.MustParseAddr("10.244.0.5"),
		ConfigMaps: map[string]*corev1.ConfigMap{
			"app": {Data: map[string]string{"mode": "fast", "LEVEL": "3", "bad=name": "x"}},
		},
		Secrets: map[string]*corev1.Secret{
			"db": {Data: map[string][]byte{"password": []byte("s3cret")}},
		},
		Services: []*corev1.Service{
			{ObjectMeta: metav1.ObjectMeta{Name: "redis-master"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10",
				Ports: []corev1.ServicePort{{Name: "redis", Port: 6379, Protocol: corev1.ProtocolTCP}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "headless"}, Spec: corev1.ServiceSpec{ClusterIP: "None",
				Ports: []corev1.ServicePort{{Port: 80}}}},
		},
	}
}

func testPod(c corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-abc-0", UID: "u-1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
	}
}

func TestContainerEnv(t *testing.T) {
	c := corev1.Container{
		Name: "web",
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}, Prefix: "APP_"},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr(true)}},
		},
		Env: []corev1.EnvVar{
			{Name: "GREETING", Value: "hello"},
			{Name: "MESSAGE", Value: "$(GREETING) from $(POD_NAME) $$(GREETING) $(UNKNOWN) $(REDIS_MASTER_SERVICE_HOST)"},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "APP_LABEL", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}, Key: "mode"}}},
			{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}},
			{Name: "MAYBE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "nope", Optional: ptr(true)}}},
			{Name: "APP_mode", Value: "overridden"},
		},
	}
	got, err := ContainerEnv(testPod(c), &c, testInputs())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"APP_LEVEL=3",
		"APP_mode=overridden",
		"GREETING=hello",
		// POD_NAME is defined after MESSAGE, so it is not expanded.
		"MESSAGE=hello from $(POD_NAME) $(GREETING) $(UNKNOWN) 10.96.0.10",
		"POD_NAME=web-abc-0",
		"POD_NAMESPACE=shop",
		"POD_IP=10.244.0.5",
		"NODE=node-a",
		"APP_LABEL=web",
		"MODE=fast",
		"DB_PASSWORD=s3cret",
		"REDIS_MASTER_SERVICE_HOST=10.96.0.10",
		"REDIS_MASTER_SERVICE_PORT=6379",
		"REDIS_MASTER_SERVICE_PORT_REDIS=6379",
		"REDIS_MASTER_PORT=tcp://10.96.0.10:6379",
		"REDIS_MASTER_PORT_6379_TCP=tcp://10.96.0.10:6379",
		"REDIS_MASTER_PORT_6379_TCP_PROTO=tcp",
		"REDIS_MASTER_PORT_6379_TCP_PORT=6379",
		"REDIS_MASTER_PORT_6379_TCP_ADDR=10.96.0.10",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("env:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestContainerEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  corev1.EnvVar
		want string
	}{
		{"missing configMap", corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}}, `configMap "nope" not found`},
		{"missing key", corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}, Key: "k"}}}, `has no key "k"`},
		{"missing secret", corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}}, `secret "nope" not found`},
		{"unsupported field", corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}}, `not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := corev1.Container{Name: "c", Env: []corev1.EnvVar{tc.env}}
			_, err := ContainerEnv(testPod(c), &c, testInputs())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestServiceLinksCanBeDisabled(t *testing.T) {
	c := corev1.Container{Name: "c"}
	pod := testPod(c)
	pod.Spec.EnableServiceLinks = ptr(false)
	got, err := ContainerEnv(pod, &c, testInputs())
	if err != nil || len(got) != 0 {
		t.Fatalf("env = %q, %v; want none", got, err)
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"":              "",
		"plain":         "plain",
		"$(A)":          "1",
		"x$(A)y$(B)z":   "x1ytwoz",
		"$$(A)":         "$(A)",
		"$$$(A)":        "$1",
		"$(C)":          "$(C)",
		"$(A":           "$(A",
		"cost $5":       "cost $5",
		"trailing $":    "trailing $",
		"$(A)$(A)$(B)":  "11two",
		"echo $HOME":    "echo $HOME",
		"$()":           "$()",
		"nested $((A))": "nested $((A))",
	} {
		if got := Expand(in, lookup); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPodSpecFor(t *testing.T) {
	c := corev1.Container{
		Name:            "web",
		Image:           "nginx",
		ImagePullPolicy: corev1.PullAlways,
		Command:         []string{"sh", "-c"},
		Args:            []string{"echo $(GREETING)"},
		Env:             []corev1.EnvVar{{Name: "GREETING", Value: "hi"}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "config", MountPath: "/etc/app", ReadOnly: true},
			{Name: "scratch", MountPath: "/scratch", SubPath: "web"},
		},
	}
	pod := testPod(c)
	pod.Spec.EnableServiceLinks = ptr(false)
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app"},
			Items:                []corev1.KeyToPath{{Key: "mode", Path: "conf/mode.txt", Mode: ptr(int32(0o600))}},
		}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}},
		{Name: "logs", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/log/app", Type: ptr(corev1.HostPathDirectoryOrCreate)}}},
	}
	in := testInputs()
	in.Revision, in.TemplateHash = "r1", "h1"
	got, err := PodSpecFor(pod, in)
	if err != nil {
		t.Fatal(err)
	}
	want := PodSpec{
		Namespace: "shop", Name: "web-abc-0", Revision: "r1", TemplateHash: "h1",
		Volumes: []Volume{
			{Name: "config", Files: []VolumeFile{{Path: "conf/mode.txt", Data: []byte("fast"), Mode: 0o600}}},
			{Name: "scratch", EmptyDir: true, Memory: true},
			{Name: "creds", Memory: true, Files: []VolumeFile{{Path: "password", Data: []byte("s3cret"), Mode: 0o400}}},
			{Name: "logs", HostPath: "/var/log/app", HostPathType: "DirectoryOrCreate"},
		},
		Containers: []ContainerSpec{{
			Name:       "web",
			Image:      "docker.io/library/nginx:latest",
			PullPolicy: PullAlways,
			Command:    []string{"sh", "-c"},
			Args:       []string{"echo hi"},
			Env:        []string{"GREETING=hi"},
			Mounts: []Mount{
				{Volume: "config", Destination: "/etc/app", ReadOnly: true},
				{Volume: "scratch", Destination: "/scratch", SubPath: "web"},
			},
			Resources: Resources{CPURequestMilli: 250, CPULimitMilli: 1000, MemoryLimit: 64 << 20},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PodSpecFor:\n got %+v\nwant %+v", got, want)
	}
}

func TestPodSpecForRefusesWhatItCannotRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		vol  corev1.Volume
		want string
	}{
		{"pvc named out of its directory", corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "../x"}}}, `claim name "../x"`},
		{"unknown source", corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "s", Path: "/"}}}, "not supported"},
		{"missing configMap", corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}}}, `configMap "nope" not found`},
		{"item escapes", corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}, Items: []corev1.KeyToPath{{Key: "mode", Path: "../../etc/passwd"}}}}}, "stay inside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod(corev1.Container{Name: "c", Image: "busybox"})
			pod.Spec.Volumes = []corev1.Volume{tc.vol}
			_, err := PodSpecFor(pod, testInputs())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "spec.volumes[v]") {
				t.Fatalf("err = %v, want spec.volumes[v] ... %q", err, tc.want)
			}
		})
	}
}

func TestProcessArgs(t *testing.T) {
	ep, cmd := []string{"/entry"}, []string{"default-arg"}
	for _, tc := range []struct {
		name          string
		command, args []string
		want          []string
	}{
		{"image defaults", nil, nil, []string{"/entry", "default-arg"}},
		{"args replace cmd", nil, []string{"x"}, []string{"/entry", "x"}},
		{"command replaces both", []string{"/bin/sh"}, nil, []string{"/bin/sh"}},
		{"command and args", []string{"/bin/sh", "-c"}, []string{"echo"}, []string{"/bin/sh", "-c", "echo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processArgs(tc.command, tc.args, ep, cmd)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("= %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := processArgs(nil, nil, nil, nil); err == nil {
		t.Fatal("no command at all: no error")
	}
}

func TestContainerID(t *testing.T) {
	if got := containerID("default", "web-abc-0", "nginx"); got != "default_web-abc-0_nginx" {
		t.Errorf("readable id = %q", got)
	}
	long := containerID("default", strings.Repeat("a", 80), "c")
	if !validID(long) || !strings.HasPrefix(long, "gitorch-") {
		t.Errorf("long id %q", long)
	}
	if a, b := containerID("a--b", "p", "c"), containerID("a--b", "p", "d"); a == b || !validID(a) {
		t.Errorf("ids %q %q", a, b)
	}
}

func TestSyncFiles(t *testing.T) {
	dir := t.TempDir()
	if err := syncFiles(dir, []VolumeFile{{Path: "a", Data: []byte("1")}, {Path: "sub/b", Data: []byte("2"), Mode: 0o600}}); err != nil {
		t.Fatal(err)
	}
	if err := syncFiles(dir, []VolumeFile{{Path: "a", Data: []byte("changed")}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dir + "/a"); string(b) != "changed" {
		t.Errorf("a = %q", b)
	}
	if _, err := os.Stat(dir + "/sub/b"); !os.IsNotExist(err) {
		t.Errorf("sub/b not removed: %v", err)
	}
	if err := syncFiles(dir, []VolumeFile{{Path: "../x"}}); err == nil {
		t.Error("path leaving the volume accepted")
	}
}
