package plan

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func secret(name string, data, stringData map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Type:       corev1.SecretTypeOpaque,
		StringData: stringData,
	}
	if data != nil {
		s.Data = map[string][]byte{}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
	}
	return s
}

func TestDiffSecretValues(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new *corev1.Secret
		want     []FieldChange
	}{{
		name: "a changed value is changed, an added key added, a removed key removed",
		old:  secret("db", map[string]string{"password": "hunter2", "user": "admin", "old": "x"}, nil),
		new:  secret("db", map[string]string{"password": "correcthorse", "user": "admin", "new": "y"}, nil),
		want: []FieldChange{
			{Path: "data.new", Sensitive: SensitiveAdded},
			{Path: "data.old", Sensitive: SensitiveRemoved},
			{Path: "data.password", Sensitive: SensitiveChanged},
		},
	}, {
		name: "data absent on one side lists each key",
		old:  secret("db", nil, nil),
		new:  secret("db", map[string]string{"password": "hunter2", "user": "admin"}, nil),
		want: []FieldChange{
			{Path: "data.password", Sensitive: SensitiveAdded},
			{Path: "data.user", Sensitive: SensitiveAdded},
		},
	}, {
		name: "stringData is sensitive too",
		old:  secret("db", nil, map[string]string{"token": "s3cr3t-token"}),
		new:  secret("db", nil, map[string]string{"token": "n3w-token"}),
		want: []FieldChange{{Path: "stringData.token", Sensitive: SensitiveChanged}},
	}, {
		name: "other fields keep their values, in field order",
		old: func() *corev1.Secret {
			s := secret("db", map[string]string{"password": "hunter2"}, nil)
			s.Labels = map[string]string{"tier": "db"}
			return s
		}(),
		new: func() *corev1.Secret {
			s := secret("db", map[string]string{"password": "hunter3"}, nil)
			s.Labels = map[string]string{"tier": "cache"}
			s.Type = "kubernetes.io/basic-auth"
			return s
		}(),
		want: []FieldChange{
			{Path: "data.password", Sensitive: SensitiveChanged},
			{Path: "metadata.labels.tier", Old: "db", New: "cache"},
			{Path: "type", Old: "Opaque", New: "kubernetes.io/basic-auth"},
		},
	}, {
		name: "kubectl's last applied copy is as sensitive as the values, in its place",
		old: func() *corev1.Secret {
			s := secret("db", map[string]string{"password": "hunter2"}, nil)
			s.Annotations = map[string]string{LastAppliedAnnotation: `{"data":{"password":"aHVudGVyMg=="}}`, "team": "a"}
			s.Labels = map[string]string{"tier": "db"}
			return s
		}(),
		new: func() *corev1.Secret {
			s := secret("db", map[string]string{"password": "hunter2"}, nil)
			s.Annotations = map[string]string{LastAppliedAnnotation: `{"data":{"password":"aHVudGVyMw=="}}`, "team": "b"}
			s.Labels = map[string]string{"tier": "cache"}
			return s
		}(),
		want: []FieldChange{
			{Path: "metadata.annotations." + LastAppliedAnnotation, Sensitive: SensitiveChanged},
			{Path: "metadata.annotations.team", Old: "a", New: "b"},
			{Path: "metadata.labels.tier", Old: "db", New: "cache"},
		},
	}, {
		name: "a value that is its fingerprint is the same value",
		old:  secret("db", map[string]string{"password": Fingerprint("default", "db", "password", []byte("hunter2"))}, nil),
		new:  secret("db", map[string]string{"password": "hunter2"}, nil),
	}, {
		name: "a fingerprint of another value is a change",
		old:  secret("db", map[string]string{"password": Fingerprint("default", "db", "password", []byte("hunter3"))}, nil),
		new:  secret("db", map[string]string{"password": "hunter2"}, nil),
		want: []FieldChange{{Path: "data.password", Sensitive: SensitiveChanged}},
	}, {
		name: "a fingerprint is bound to its Secret and key",
		old:  secret("db", map[string]string{"password": Fingerprint("default", "other", "password", []byte("hunter2"))}, nil),
		new:  secret("db", map[string]string{"password": "hunter2"}, nil),
		want: []FieldChange{{Path: "data.password", Sensitive: SensitiveChanged}},
	}, {
		name: "the same values are no change",
		old:  secret("db", map[string]string{"password": "hunter2"}, map[string]string{"a": "b"}),
		new:  secret("db", map[string]string{"password": "hunter2"}, map[string]string{"a": "b"}),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff([]runtime.Object{tc.old}, []runtime.Object{tc.new})
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("got %+v, want no change", got)
				}
				return
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0].Fields, tc.want) {
				t.Fatalf("got %+v\nwant fields %+v", got, tc.want)
			}
		})
	}
}

// TestPlanNeverWritesSecretValues renders a plan that changes, adds and
// removes Secret keys in every format and looks for the values in every
// form a reader could recognise.
func TestPlanNeverWritesSecretValues(t *testing.T) {
	values := []string{"hunter2-plain", "correct-horse-battery", "removed-value-1", "added-value-2", "string-data-3", "string-data-4"}
	old := []runtime.Object{
		secret("db", map[string]string{"password": values[0], "gone": values[2]}, map[string]string{"sd": values[4]}),
	}
	new := []runtime.Object{
		secret("db", map[string]string{"password": values[1], "fresh": values[3]}, map[string]string{"sd": values[5]}),
	}
	// kubectl's copy, on the new side only: the annotations map is added
	// whole.
	new[0].(*corev1.Secret).Annotations = map[string]string{
		LastAppliedAnnotation: `{"apiVersion":"v1","data":{"password":"` + base64.StdEncoding.EncodeToString([]byte(values[1])) + `"},"stringData":{"sd":"` + values[5] + `"}}`,
	}
	p := Build(old, new, nil, nil, Options{})
	var text, color, js bytes.Buffer
	if err := p.WriteText(&text, false); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteText(&color, true); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{text.String(), color.String(), js.String()} {
		for _, v := range values {
			for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v))} {
				if strings.Contains(out, form) {
					t.Errorf("output has %q (of %q):\n%s", form, v, out)
				}
			}
		}
	}
	for _, line := range []string{
		"    data.fresh: (sensitive, added)\n",
		"    data.gone: (sensitive, removed)\n",
		"    data.password: (sensitive, changed)\n",
		"    stringData.sd: (sensitive, changed)\n",
	} {
		if !strings.Contains(text.String(), line) {
			t.Errorf("text plan lacks %q:\n%s", line, text.String())
		}
	}
	var doc struct {
		Changes []Change `json:"changes"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Changes) != 1 || !slices.Contains(doc.Changes[0].Fields, FieldChange{Path: "data.password", Sensitive: SensitiveChanged}) {
		t.Errorf("JSON plan does not say data.password changed:\n%s", js.String())
	}
}

func TestSensitiveField(t *testing.T) {
	for _, tc := range []struct {
		kind, field string
		want        bool
	}{
		{"Secret", "data", true},
		{"Secret", "data.password", true},
		{"Secret", `data["tls.crt"]`, true},
		{"Secret", "stringData.token[0]", true},
		{"Secret", "metadata.annotations." + LastAppliedAnnotation, true},
		{"Secret", `metadata.annotations["` + LastAppliedAnnotation + `"]`, true},
		{"Secret", "metadata.annotations.team", false},
		{"Secret", "metadata.name", false},
		{"Secret", "type", false},
		{"Secret", "database", false},
		{"ConfigMap", "data.password", false},
		{"Deployment", "spec.template.spec.containers[0].env[0].value", false},
	} {
		if got := SensitiveField(tc.kind, tc.field); got != tc.want {
			t.Errorf("SensitiveField(%q, %q) = %v, want %v", tc.kind, tc.field, got, tc.want)
		}
	}
}

// BenchmarkDiffSecrets1k: 1000 Secrets of 10 keys of 64 bytes, one key of
// each changed; every value is fingerprinted on both sides.
func BenchmarkDiffSecrets1k(b *testing.B) {
	var old, new []runtime.Object
	for i := range 1000 {
		data := map[string]string{}
		for k := range 10 {
			data[fmt.Sprintf("key-%d", k)] = strings.Repeat(fmt.Sprintf("%d-%d.", i, k), 64)[:64]
		}
		old = append(old, secret(fmt.Sprintf("s%04d", i), data, nil))
		data["key-0"] = "changed"
		new = append(new, secret(fmt.Sprintf("s%04d", i), data, nil))
	}
	b.ResetTimer()
	for b.Loop() {
		if d := Diff(old, new); len(d) != 1000 {
			b.Fatalf("%d changes", len(d))
		}
	}
}
