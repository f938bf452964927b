package schema

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/gitorch/gitorch/pkg/plan"
)

const redactYAMLFile = `# the database
apiVersion: v1
kind: ConfigMap
metadata: {name: conf}
data: {mode: plain-config-value}
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"data":{"password":"aHVudGVyMi1hbm5vdGF0aW9u"}}'
    team: payments
data:
  password: aHVudGVyMi15YW1s   # hunter2-yaml
  other: &o b3RoZXItdmFsdWU=
stringData:
  token: yaml-token-value
`

const redactJSONFile = `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "js", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"stringData\":{\"token\":\"json-annotated-token\"}}"}},
 "data": {"password": "aHVudGVyMi1qc29u"}, "stringData": {"token": "json-token-value"}}
{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"n": "1"}}
`

// TestRedactSecretsKeepsWhatAPlanCompares: a redacted file holds no value
// of its Secrets, loads into the same objects but for the values, and a
// plan finds no change between it and the file it came from.
func TestRedactSecretsKeepsWhatAPlanCompares(t *testing.T) {
	secrets := []string{"hunter2-yaml", "aHVudGVyMi15YW1s", "other-value", "b3RoZXItdmFsdWU=", "yaml-token-value", "hunter2-json", "aHVudGVyMi1qc29u", "json-token-value", "aHVudGVyMi1hbm5vdGF0aW9u", "hunter2-annotation", "json-annotated-token"}
	for name, src := range map[string]string{"db.yaml": redactYAMLFile, "db.json": redactJSONFile} {
		t.Run(name, func(t *testing.T) {
			out, changed, err := RedactSecrets(name, []byte(src))
			if err != nil || !changed {
				t.Fatalf("RedactSecrets: changed %v, %v", changed, err)
			}
			for _, v := range secrets {
				if strings.Contains(string(out), v) || strings.Contains(string(out), base64.StdEncoding.EncodeToString([]byte(v))) {
					t.Errorf("%q is still there:\n%s", v, out)
				}
			}
			if !strings.Contains(string(out), "plain-config-value") && name == "db.yaml" {
				t.Errorf("the ConfigMap lost its value:\n%s", out)
			}
			before := load(t, map[string]string{name: src})
			after := load(t, map[string]string{name: string(out)})
			if len(after.Findings) != 0 || len(after.Objects) != len(before.Objects) {
				t.Fatalf("the redacted file loads with %v, %d objects of %d:\n%s", after.Findings, len(after.Objects), len(before.Objects), out)
			}
			if d := plan.Diff(before.RuntimeObjects(), after.RuntimeObjects()); len(d) != 0 {
				t.Errorf("the redacted file differs: %+v\n%s", d, out)
			}
			changedSrc := strings.Replace(src, "token-value", "token-value-2", 1)
			d := plan.Diff(after.RuntimeObjects(), load(t, map[string]string{name: changedSrc}).RuntimeObjects())
			if len(d) != 1 || len(d[0].Fields) != 1 || d[0].Fields[0] != (plan.FieldChange{Path: "data.token", Sensitive: plan.SensitiveChanged}) {
				t.Errorf("a changed token against the redacted file: %+v", d)
			}
		})
	}
}

func TestRedactSecretsLeavesOtherFilesAlone(t *testing.T) {
	sops := "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  password: ENC[AES256_GCM,data:abc=,iv:def=,tag:ghi=,type:str]\nsops:\n  version: 3.9.0\n"
	for name, src := range map[string]string{
		"sops.yaml":  sops,
		"web.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}  # kept as written\n",
		"broken.yml": "kind: Secret\ndata: {a: [\n",
		"notes.txt":  "kind: Secret\npassword: not-a-manifest\n",
		"web.cue":    "package web\nweb: {kind: \"Service\"}\n",
	} {
		out, changed, err := RedactSecrets(name, []byte(src))
		if err != nil || changed || string(out) != src {
			t.Errorf("%s: changed %v, %v:\n%s", name, changed, err, out)
		}
	}
	if _, _, err := RedactSecrets("db.cue", []byte("package db\ndb: {kind: \"Secret\"}\n")); !errors.Is(err, ErrSecretInCUE) {
		t.Errorf("a CUE Secret: %v", err)
	}
}

func FuzzRedactSecrets(f *testing.F) {
	f.Add("a.yaml", redactYAMLFile)
	f.Add("a.json", redactJSONFile)
	f.Add("a.yaml", "kind: Secret\ndata: *x\n")
	f.Add("a.yaml", "kind: Secret\nmetadata: [1]\ndata: 3\nstringData: {a: {b: c}}\n")
	f.Fuzz(func(t *testing.T, name, src string) {
		out, changed, err := RedactSecrets(name, []byte(src))
		if err == nil && !changed && string(out) != src {
			t.Fatalf("unchanged but different")
		}
		if changed {
			// What was rewritten parses again, and still holds a Secret.
			if _, again, err := RedactSecrets(name, out); err != nil || !again {
				t.Fatalf("the rewritten file: changed %v, %v:\n%s", again, err, out)
			}
		}
	})
}
