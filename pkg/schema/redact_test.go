package schema

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestSecretFindingsShowNoValue: a Secret whose values are wrong in every
// way CUE and gitorch's checks catch is refused with findings that say
// where and what, and quote no value, plain or base64.
func TestSecretFindingsShowNoValue(t *testing.T) {
	values := []string{"987654321", "bm90LWJhc2U2NA", "not-base64", "s3cr3t-in-a-list", "zz-struct-value", "c2VjcmV0LWRhdGE=", "secret-data", "tls-cert-value", "cue-secret-value"}
	res := load(t, map[string]string{
		"db.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: db
data:
  password: 987654321
  user: bm90LWJhc2U2NA
  tls.crt: [tls-cert-value]
stringData:
  token: [s3cr3t-in-a-list]
  other: {zz-struct-value: 1}
---
apiVersion: v1
kind: Secret
metadata:
  name: whole
data: c2VjcmV0LWRhdGE=
`,
		"ann.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ann\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: 12345678\n",
		"s.json":   `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "js"}, "stringData": {"k": 987654321}}`,
		"cue/s.cue": `package s
secret: {
	apiVersion: "v1"
	kind:       "Secret"
	metadata: name: "cue"
	data: key: 123456789
	stringData: k2: ["cue-secret-value"]
}
`,
	})
	expect(t, res,
		`db.yaml:6:13: Secret/default/db: data.password: mismatched types int and string; the value is not shown`,
		`db.yaml:7:9: Secret/default/db: data.user: must be base64 (use stringData for plain text); the value is not shown`,
		`db.yaml:8:12: Secret/default/db: data["tls.crt"]: mismatched types list and string; the value is not shown`,
		`db.yaml:10:10: Secret/default/db: stringData.token: mismatched types list and string; the value is not shown`,
		`db.yaml:11:10: Secret/default/db: stringData.other: mismatched types struct and string; the value is not shown`,
		`db.yaml:11:11: Secret/default/db: stringData.other: invalid value; the value is not shown`,
		`db.yaml:17:7: Secret/default/whole: data: mismatched types struct and string; the value is not shown`,
		`ann.yaml:6:55: Secret/default/ann: metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]: mismatched types int and string; the value is not shown`,
		`s.json:1:`,
		`Secret/default/js: stringData.k: mismatched types int and string; the value is not shown`,
		`Secret/default/cue: data.key: `,
		`Secret/default/cue: stringData.k2: `,
	)
	out := findings(res)
	for _, v := range append(values, "123456789", "12345678") {
		forms := []string{v, base64.StdEncoding.EncodeToString([]byte(v))}
		if b, err := base64.StdEncoding.DecodeString(v); err == nil {
			forms = append(forms, string(b))
		}
		for _, form := range forms {
			if strings.Contains(out, form) {
				t.Errorf("findings quote %q:\n%s", form, out)
			}
		}
	}
}

func TestValuePath(t *testing.T) {
	for in, want := range map[string]string{
		"data":                  "data",
		"data.password":         "data.password",
		"data.password.x":       "data.password",
		"stringData.other[0].a": "stringData.other",
		`data["tls.crt"]`:       `data["tls.crt"]`,
		`data["tls.crt"][0]`:    `data["tls.crt"]`,
		`stringData["a\"b"].c`:  `stringData["a\"b"]`,
		`data["unterminated`:    `data["unterminated`,
	} {
		if got := valuePath(in); got != want {
			t.Errorf("valuePath(%q) = %q, want %q", in, got, want)
		}
	}
}
