package schema

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestImagePullPolicyDefault: Kubernetes' default, applied once here:
// Always for a :latest or untagged image, else IfNotPresent.
func TestImagePullPolicyDefault(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx":                 corev1.PullAlways,
		"nginx:latest":          corev1.PullAlways,
		"nginx:1.25":            corev1.PullIfNotPresent,
		"127.0.0.1:5000/app:v1": corev1.PullIfNotPresent,
		"127.0.0.1:5000/app":    corev1.PullAlways,
		"nginx@sha256:" + strings.Repeat("a", 64): corev1.PullIfNotPresent,
	} {
		c := corev1.Container{Image: image}
		defaultContainer(&c)
		if c.ImagePullPolicy != want {
			t.Errorf("%q: pull policy %s, want %s", image, c.ImagePullPolicy, want)
		}
	}
}
