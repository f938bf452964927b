package apply

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// A claim is a directory under the data dir, outside the pod's own, that
// a mount binds and that is there again, with its data, for the next pod.
func TestClaimVolumeOutlivesThePod(t *testing.T) {
	v, err := volumeFor(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-db-0"}}}, PodInputs{})
	if err != nil || v.Claim != "data-db-0" {
		t.Fatalf("volumeFor = %+v, %v; want claim data-db-0", v, err)
	}
	dataDir := t.TempDir()
	r := &Containerd{cfg: ContainerdConfig{DataDir: dataDir}}
	pod := PodSpec{Namespace: "shop", Name: "db-0", Volumes: []Volume{v}}
	if err := r.syncVolumes(pod); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dataDir, "volumes", "shop", "data-db-0")
	src, err := r.mountSource(pod, Mount{Destination: "/var/lib/db", Volume: "data"})
	if err != nil || src != want {
		t.Fatalf("mount source %q, %v; want %s", src, err, want)
	}
	if err := os.WriteFile(filepath.Join(src, "row"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The pod's directory goes with the pod; the claim stays.
	if err := os.RemoveAll(r.podDir(pod.dirName())); err != nil {
		t.Fatal(err)
	}
	if err := r.syncVolumes(pod); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(want, "row")); err != nil || string(b) != "1" {
		t.Fatalf("claim data after the pod went: %q, %v", b, err)
	}
}

func TestClaimVolumeRefusesNamesOutOfTheDataDir(t *testing.T) {
	r := &Containerd{cfg: ContainerdConfig{DataDir: t.TempDir()}}
	for _, pod := range []PodSpec{
		{Namespace: "default", Name: "p", Volumes: []Volume{{Name: "data", Claim: "../../etc"}}},
		{Namespace: "..", Name: "p", Volumes: []Volume{{Name: "data", Claim: "data-p"}}},
	} {
		if err := r.syncVolumes(pod); err == nil {
			t.Errorf("claim %q in namespace %q accepted", pod.Volumes[0].Claim, pod.Namespace)
		}
	}
}
