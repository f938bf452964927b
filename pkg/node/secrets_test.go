package node_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
)

// The pod prints digests of what it got, never the value, so that its
// log (under the data dir) cannot hold it.
const secretReader = `apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: gitorch.test/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo env=$(printf %s \"$DB_PASSWORD\" | sha256sum | cut -c1-64) file=$(sha256sum < /creds/password | cut -c1-64) mode=$(stat -c %a /creds/password) fs=$(awk '$2==\"/creds\"{print $3}' /proc/mounts); trap 'exit 0' TERM; while true; do sleep 1; done"]
    env:
    - name: DB_PASSWORD
      valueFrom:
        secretKeyRef: {name: db, key: password}
    volumeMounts:
    - {name: creds, mountPath: /creds}
  volumes:
  - name: creds
    secret: {secretName: db}
`

// An encrypted Secret committed to Git reaches the pod's environment and
// its volume file (0400, on tmpfs); a Secret for another node is refused
// with the pod left running; the value is in no file of the data dir
// (the tmpfs of the pod's secret volume aside) nor in the Git cache.
func TestAgentRunsAnEncryptedSecret(t *testing.T) {
	id, other := newAgeIdentity(t), newAgeIdentity(t)
	n := newTestNode(t)
	a := n.start(t, func(c *node.Config) { c.Identities = []age.Identity{id} })
	const value = "correct-horse-battery"
	sum := sha256.Sum256([]byte(value))
	digest := hex.EncodeToString(sum[:])
	good := a.apply(t, n, "encrypted secret", map[string]string{"db-secret.yaml": sealFor(t, dbSecret, id), "reader.yaml": secretReader})
	p := a.waitPod(t, "default", "reader", time.Minute, "running", func(p plan.PodStatus) bool { return p.Phase == plan.PhaseRunning })
	log := n.waitLog(t, "default", "reader", "app", "fs=", 30*time.Second)
	if want := "env=" + digest + " file=" + digest + " mode=400 fs=tmpfs"; !strings.Contains(log, want) {
		t.Fatalf("the pod saw:\n%s\nwant %s", log, want)
	}

	bad := n.commit(t, "for another node", map[string]string{"db-secret.yaml": sealFor(t, dbSecret, other), "reader.yaml": secretReader})
	a.Sync()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := a.WaitRevision(ctx, bad); err == nil {
		t.Fatal("a Secret for another node was accepted")
	}
	st := a.Status()
	if st.Running.Commit != good || st.Refused == nil || !strings.Contains(strings.Join(st.Refused.Errors, "\n"),
		"db-secret.yaml: Secret/default/db: cannot decrypt: no identity matches its recipients "+other.Recipient().String()) {
		t.Fatalf("running %s, refused %+v", st.Running.Commit, st.Refused)
	}
	if q, _ := a.Pod("default", "reader"); q.Phase != plan.PhaseRunning || pids(q)["app"] != pids(p)["app"] {
		t.Fatalf("the pod did not keep running: %+v", q)
	}
	noValueOnDisk(t, n.DataDir, value)
}

// noValueOnDisk fails when value is in a file under dir on dir's own
// file system (mounts below it, the pods' tmpfs, are not the disk).
func noValueOnDisk(t *testing.T, dir, value string) {
	t.Helper()
	var root syscall.Stat_t
	if err := syscall.Stat(dir, &root); err != nil {
		t.Fatal(err)
	}
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != root.Dev {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, []byte(value)) {
			t.Errorf("%s holds the secret value", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no file in the data dir")
	}
}
