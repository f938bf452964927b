package node_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/secrets"
)

const dbSecret = `apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: correct-horse-battery
`

const dbPod = `apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  containers:
  - name: app
    image: busybox:1.36
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

func sealFor(t *testing.T, plain string, ids ...*age.X25519Identity) string {
	t.Helper()
	var rs []string
	for _, id := range ids {
		rs = append(rs, id.Recipient().String())
	}
	out, err := secrets.Encrypt([]byte(plain), rs, secrets.SecretRules, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// valueIn fails the test when value is in any file under dir.
func valueNotIn(t *testing.T, dir, value string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(value)) {
			t.Errorf("%s holds the secret value", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Encrypt, commit, and the pod gets the value in its environment and its
// volume file (mode 0400); revisions the node cannot trust are refused
// while the last good one runs.
func TestFakeAgentDecryptsSecrets(t *testing.T) {
	id, other := newAgeIdentity(t), newAgeIdentity(t)
	n := newFakeNode(t)
	enc := sealFor(t, dbSecret, id)
	good := n.src.commit(map[string]string{"db-secret.yaml": enc, "pod.yaml": dbPod})
	logs := &lockedBuffer{}
	ag, _ := n.start(t, func(c *node.Config) {
		c.Identities = []age.Identity{id}
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	waitFor(t, "the pod running", func() bool { return countPhase(ag, plan.PhaseRunning) == 1 })

	spec, ok := n.rt.Spec("default", "client")
	if !ok {
		t.Fatal("no pod client")
	}
	if env := strings.Join(spec.Containers[0].Env, " "); !strings.Contains(env, "DB_PASSWORD=correct-horse-battery") {
		t.Errorf("env %s, want DB_PASSWORD decrypted", env)
	}
	var file *apply.VolumeFile
	for _, v := range spec.Volumes {
		if v.Name == "creds" {
			if !v.Memory {
				t.Error("the secret volume is not on tmpfs")
			}
			for i := range v.Files {
				file = &v.Files[i]
			}
		}
	}
	if file == nil || file.Path != "password" || string(file.Data) != "correct-horse-battery" || file.Mode != 0o400 {
		t.Fatalf("volume file %+v, want password, decrypted, 0400", file)
	}

	// Revisions refused: the pod keeps running with the good one.
	ciphertext := enc[strings.Index(enc, "password: ")+len("password: ") : strings.Index(enc, "\nsops:")]
	mac := enc[strings.Index(enc, "mac: ")+len("mac: "):]
	mac = mac[:strings.Index(mac, "\n")]
	for _, tc := range []struct {
		name, file, want string
	}{
		{"foreign recipient", sealFor(t, dbSecret, other),
			"db-secret.yaml: Secret/default/db: cannot decrypt: no identity matches its recipients " + other.Recipient().String()},
		{"tampered value", strings.Replace(enc, ciphertext, flipData(ciphertext), 1),
			"db-secret.yaml: Secret/default/db: cannot decrypt: line 6: stringData.password: authentication failed"},
		{"tampered MAC", strings.Replace(enc, mac, flipData(mac), 1),
			"db-secret.yaml: Secret/default/db: cannot decrypt: MAC mismatch"},
		{"truncated value", strings.Replace(enc, ciphertext, ciphertext[:len(ciphertext)/2], 1), "malformed encrypted value: truncated"},
		{"metadata missing", enc[:strings.Index(enc, "sops:")], "encrypted values but no sops metadata"},
		{"huge value", strings.Replace(enc, ciphertext, "ENC[AES256_GCM,data:"+strings.Repeat("QUFB", 400_000)+",iv:x,tag:y,type:str]", 1), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := n.src.commit(map[string]string{"db-secret.yaml": tc.file, "pod.yaml": dbPod})
			ag.Sync()
			waitFor(t, "the refusal", func() bool { r := ag.Status().Refused; return r != nil && r.Commit == bad })
			st := ag.Status()
			if st.Running.Commit != good {
				t.Fatalf("running %s, want the good %s", st.Running.Commit, good)
			}
			if got := strings.Join(st.Refused.Errors, "\n"); !strings.Contains(got, tc.want) {
				t.Errorf("refused with:\n%s\nwant %q", got, tc.want)
			}
			if countPhase(ag, plan.PhaseRunning) != 1 {
				t.Errorf("the pod stopped: %v", n.rt.Ops())
			}
		})
	}
	if got := n.rt.Count("stop"); got != 0 {
		t.Fatalf("a refused revision stopped something: %v", n.rt.Ops())
	}
	valueNotIn(t, n.dataDir, "correct-horse-battery")
	evs, _ := ag.Events(0)
	if logs.contains("correct-horse-battery") {
		t.Error("the agent's log holds the secret value")
	}
	if !logs.contains("revision refused") {
		t.Error("the log capture saw nothing of the refusals")
	}
	for what, v := range map[string]any{"status": ag.Status(), "events": evs} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("correct-horse-battery")) {
			t.Errorf("the %s hold the secret value", what)
		}
	}
}

func newAgeIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// flipData changes the first base64 digit of an ENC[...] value's data.
func flipData(v string) string {
	i := strings.Index(v, "data:") + len("data:")
	c := byte('A')
	if v[i] == 'A' {
		c = 'B'
	}
	return v[:i] + string(c) + v[i+1:]
}
