package apply_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

// TestPodFromManifestWithVolumesAndEnv runs a Kubernetes pod through
// PodSpecFor: environment from a configMap, a secret and the pod's own
// fields, a configMap and a secret as files, and an emptyDir shared by two
// containers. A changed configMap reaches the running container.
func TestPodFromManifestWithVolumesAndEnv(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart-7f-0"},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cart"}}}},
				{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "cart-db"}}},
				{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			Containers: []corev1.Container{
				{
					Name: "writer", Image: applytest.BusyboxRef, ImagePullPolicy: corev1.PullIfNotPresent,
					Command:      []string{"sh", "-c", "echo from-writer > /shared/msg; exec sleep 3600"},
					VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}},
				},
				{
					Name: "reader", Image: applytest.BusyboxRef, ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sh", "-c", `
i=0; until [ -f /shared/msg ]; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.1; done
echo "shared=$(cat /shared/msg)"
echo "env=$MODE $DB_PASSWORD $POD_IP $MY_NAME"
echo "secret=$(cat /etc/creds/password) fs=$(grep ' /etc/creds ' /proc/mounts | cut -d' ' -f3)"
i=0; while [ $i -lt 600 ]; do echo "mode=$(cat /etc/app/mode)"; i=$((i+1)); sleep 0.1; done`},
					Env: []corev1.EnvVar{
						{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cart"}, Key: "mode"}}},
						{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cart-db"}, Key: "password"}}},
						{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
						{Name: "MY_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					},
					VolumeMounts: []corev1.VolumeMount{
						{Name: "shared", MountPath: "/shared"},
						{Name: "config", MountPath: "/etc/app", ReadOnly: true},
						{Name: "creds", MountPath: "/etc/creds", ReadOnly: true},
					},
				},
			},
		},
	}
	in := apply.PodInputs{
		NodeName:   "node-a",
		ConfigMaps: map[string]*corev1.ConfigMap{"cart": {Data: map[string]string{"mode": "blue"}}},
		Secrets:    map[string]*corev1.Secret{"cart-db": {Data: map[string][]byte{"password": []byte("hunter2")}}},
	}
	ip, err := n.Runtime.CreateSandbox(ctx, apply.PodSpec{Namespace: pod.Namespace, Name: pod.Name})
	if err != nil {
		t.Fatal(err)
	}
	in.PodIP = ip
	spec, err := apply.PodSpecFor(pod, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Runtime.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	logHas := func(s string) func(apply.ContainerStatus) bool {
		return func(c apply.ContainerStatus) bool {
			return strings.Contains(readLog(t, c), s) || c.State == apply.StateExited
		}
	}
	reader := waitContainer(t, n.Runtime, "shop", "cart-7f-0", "reader", 30*time.Second, logHas("mode=blue"))
	log := readLog(t, reader)
	for _, want := range []string{
		"shared=from-writer\n",
		"env=blue hunter2 " + ip.String() + " cart-7f-0\n",
		"secret=hunter2 fs=tmpfs\n",
		"mode=blue\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("reader log lacks %q:\n%s", want, log)
		}
	}

	// The configMap changes; the next RunPod rewrites the file and the
	// running container reads the new content.
	in.ConfigMaps["cart"] = &corev1.ConfigMap{Data: map[string]string{"mode": "green"}}
	spec, err = apply.PodSpecFor(pod, in)
	if err != nil {
		t.Fatal(err)
	}
	st, err := n.Runtime.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Container("reader"); c.PID != reader.PID {
		t.Fatalf("reader restarted by a configMap change: PID %d, was %d", c.PID, reader.PID)
	}
	reader = waitContainer(t, n.Runtime, "shop", "cart-7f-0", "reader", 30*time.Second, logHas("mode=green"))
	if !strings.Contains(readLog(t, reader), "mode=green") {
		t.Fatalf("reader never saw the new configMap:\n%s", readLog(t, reader))
	}
	if err := n.Runtime.StopPod(ctx, "shop", "cart-7f-0", 0); err != nil {
		t.Fatal(err)
	}
}
