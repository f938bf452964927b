package apply

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// LogFile finds logs by the runtime's layout alone, so a runtime with no
// containerd client is enough to test it.
func TestLogFileFindsTheCurrentAndPreviousInstance(t *testing.T) {
	r := &Containerd{cfg: ContainerdConfig{DataDir: t.TempDir()}}
	write := func(pod, container string, names ...string) {
		t.Helper()
		dir := filepath.Join(r.podDir(pod), "logs", container)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Attempts compare as numbers (10 after 9); rotated copies (.log.1)
	// and strays are not instances.
	write("default_web", "app", "0.log", "1.log", "9.log", "10.log", "10.log.1", "9.log.2", "notes.txt", "x.log")
	write("default_web", "once", "0.log")
	write("default_web", "empty")
	logs := func(c string) string { return filepath.Join(r.podDir("default_web"), "logs", c) }
	for _, c := range []struct {
		name               string
		ns, pod, container string
		previous           bool
		want               string
		notFound           bool
	}{
		{"the current instance is the highest attempt", "default", "web", "app", false, filepath.Join(logs("app"), "10.log"), false},
		{"the previous is the one before", "default", "web", "app", true, filepath.Join(logs("app"), "9.log"), false},
		{"one start has a current log", "default", "web", "once", false, filepath.Join(logs("once"), "0.log"), false},
		{"one start has no previous", "default", "web", "once", true, "", true},
		{"a container not started yet has no log", "default", "web", "empty", false, "", true},
		{"an unknown container", "default", "web", "nope", false, "", true},
		{"an unknown pod", "shop", "web", "app", false, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := r.LogFile(c.ns, c.pod, c.container, c.previous)
			if c.notFound {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("LogFile = %q, %v; want an error wrapping ErrNotFound", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("LogFile = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
