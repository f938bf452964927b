package schema

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/gitorch/gitorch/pkg/secrets"
)

const plainDBSecret = `apiVersion: v1
kind: Secret
metadata:
  name: db
data:
  password: aHVudGVyMg==
stringData:
  user: admin
`

const dbClient = `apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  containers:
  - name: c
    image: busybox
    env:
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: db, key: %s}
    volumeMounts:
    - {name: creds, mountPath: /creds}
  volumes:
  - name: creds
    secret:
      secretName: db
      items:
      - {key: user, path: user}
`

func encryptFor(t *testing.T, plain string, ids ...*age.X25519Identity) string {
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

func identity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Without a key: the structure and keys are checked, references resolve.
func TestEncryptedSecretValidatesWithoutKey(t *testing.T) {
	id := identity(t)
	enc := encryptFor(t, plainDBSecret, id)
	res := load(t, map[string]string{"db-secret.yaml": enc, "pod.yaml": strings.Replace(dbClient, "%s", "password", 1)})
	expect(t, res)
	var s *corev1.Secret
	for _, o := range res.Objects {
		if o.Kind == "Secret" {
			s = o.Obj.(*corev1.Secret)
			if o.Encrypted == nil {
				t.Error("the Secret is not marked encrypted")
			}
		}
	}
	if s == nil || len(s.Data) != 2 {
		t.Fatalf("secret = %+v, want the keys password and user", s)
	}
	if strings.Contains(string(s.Data["password"]), "hunter2") || string(s.Data["user"]) == "admin" {
		t.Error("a value is known without a key")
	}

	res = load(t, map[string]string{"db-secret.yaml": enc, "pod.yaml": strings.Replace(dbClient, "%s", "pasword", 1)})
	expect(t, res, `Secret default/db has no key "pasword"`)

	// The node's side: decrypted with the identity.
	res = load(t, map[string]string{"db-secret.yaml": enc, "pod.yaml": strings.Replace(dbClient, "%s", "password", 1)})
	if fs := Decrypt(res, []age.Identity{id}); len(fs) != 0 {
		t.Fatalf("decrypt: %v", fs)
	}
	for _, o := range res.Objects {
		if s, ok := o.Obj.(*corev1.Secret); ok {
			if string(s.Data["password"]) != "hunter2" || string(s.Data["user"]) != "admin" {
				t.Errorf("decrypted data = %q", s.Data)
			}
		}
	}
}

func TestEncryptedSecretForAnotherNode(t *testing.T) {
	mine, theirs := identity(t), identity(t)
	res := load(t, map[string]string{"db-secret.yaml": encryptFor(t, plainDBSecret, theirs)})
	expect(t, res)
	fs := Decrypt(res, []age.Identity{mine})
	want := "db-secret.yaml: Secret/default/db: cannot decrypt: no identity matches its recipients " + theirs.Recipient().String()
	if len(fs) != 1 || fs[0].String() != want {
		t.Fatalf("findings = %v, want %s", fs, want)
	}
}

func TestSopsToolSecretValidates(t *testing.T) {
	data, err := os.ReadFile("../secrets/testdata/flux/global-secret.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := load(t, map[string]string{"secret.yaml": string(data)})
	expect(t, res)
	if len(res.Objects) != 1 || res.Objects[0].Name != "global-age-secret" {
		t.Fatalf("objects = %v", res.Objects)
	}
}

func TestEncryptedSecretBadInput(t *testing.T) {
	id := identity(t)
	enc := encryptFor(t, plainDBSecret, id)
	everything, err := secrets.Encrypt([]byte(plainDBSecret), []string{id.Recipient().String()}, secrets.Rules{}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"metadata missing", enc[:strings.Index(enc, "sops:")], "db.yaml:6:13: Secret/default/db: encrypted values but no sops metadata"},
		{"structure encrypted", string(everything), "db.yaml:1:13: apiVersion: encrypted, but only data and stringData may be"},
		{"structure encrypted, metadata", string(everything), "db.yaml:4:9: metadata: encrypted"},
		{"not a Secret", strings.Replace(enc, "kind: Secret", "kind: ConfigMap", 1), "only a Secret may be encrypted with SOPS"},
		{"no age key", strings.Replace(enc, "recipient:", "recipient_:", 1), "sops: sops metadata missing: sops.age[0] has no recipient"},
		{"truncated mac", strings.Replace(enc, ",type:str]\n  encrypted_regex", "\n  encrypted_regex", 1), "sops: sops.mac: malformed encrypted value: truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := load(t, map[string]string{"db.yaml": tc.data})
			if res.Errors() == 0 {
				t.Fatalf("no error; findings:\n%s", findings(res))
			}
			if got := findings(res); !strings.Contains(got, tc.want) {
				t.Errorf("findings:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}

func TestSopsConfigIsNotAManifest(t *testing.T) {
	res := load(t, map[string]string{".sops.yaml": "creation_rules:\n  - age: age1x\n", "sub/.sops.yaml": "creation_rules: []\n"})
	expect(t, res)
	if len(res.Objects) != 0 {
		t.Errorf("objects %v", res.Objects)
	}
}

// A SOPS file in JSON, as sops writes for a .json manifest.
func TestEncryptedSecretInJSON(t *testing.T) {
	data, err := os.ReadFile("../secrets/testdata/flux/algorithms-age.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	res := load(t, map[string]string{"age.json": string(js)})
	expect(t, res)
	if len(res.Objects) != 1 || res.Objects[0].Encrypted == nil {
		t.Fatalf("objects %+v", res.Objects)
	}
	ids := readIdentities(t, "../secrets/testdata/flux/keys-age.txt")
	if fs := Decrypt(res, ids); len(fs) != 0 {
		t.Fatal(fs)
	}
	if got := string(res.Objects[0].Obj.(*corev1.Secret).Data["key"]); got != "value" {
		t.Errorf("key = %q", got)
	}
}

func readIdentities(t *testing.T, path string) []age.Identity {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// Text that quotes the format is not an encrypted value outside a SOPS
// Secret.
func TestEncryptedLookingTextElsewhere(t *testing.T) {
	res := load(t, map[string]string{"cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: docs
  annotations:
    example: "ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]"
data:
  example: "ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]"
`})
	expect(t, res)
	if len(res.Objects) != 1 || res.Objects[0].Encrypted != nil {
		t.Fatalf("objects %+v", res.Objects)
	}
}
