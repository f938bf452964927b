package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gitorch/gitorch/pkg/plan"
)

// ErrSecretInCUE is RedactSecrets' answer for a CUE file that may define a
// Secret: its values cannot be taken out of the source. The objects of its
// directory are served instead (RedactObjects, CUEObjectsFile).
var ErrSecretInCUE = errors.New("a CUE file that may define a Secret cannot be served without its values")

// CUEObjectsFile is the name under which a node serves, in the place of the
// .cue files of a directory that may define a Secret, the objects of that
// directory's CUE package (RedactObjects).
const CUEObjectsFile = "cue-objects.gitorch.json"

// RedactObjects writes objs as JSON, one object a line, without status,
// each Secret with the plan.Fingerprint of each value in place of the
// value: what a node serves for a CUE package that defines a Secret,
// whose source cannot be rewritten value by value. Loaded again, the
// objects are those given, but for the values.
func RedactObjects(objs []runtime.Object) ([]byte, error) {
	var buf bytes.Buffer
	for _, o := range objs {
		if s, ok := o.(*corev1.Secret); ok {
			s = s.DeepCopy()
			for k, v := range s.Data {
				s.Data[k] = []byte(plan.Fingerprint(s.Namespace, s.Name, k, v))
			}
			for k, v := range s.StringData {
				s.StringData[k] = plan.Fingerprint(s.Namespace, s.Name, k, []byte(v))
			}
			if v, ok := s.Annotations[plan.LastAppliedAnnotation]; ok {
				s.Annotations[plan.LastAppliedAnnotation] = plan.Fingerprint(s.Namespace, s.Name, plan.LastAppliedAnnotation, []byte(v))
			}
			o = s
		}
		b, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		delete(m, "status")
		if md, ok := m["metadata"].(map[string]any); ok {
			delete(md, "creationTimestamp")
		}
		if b, err = json.Marshal(m); err != nil {
			return nil, err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// RedactSecrets rewrites the manifest file name (data) so that every
// Secret in it carries, in place of each data and stringData value (and of
// kubectl's last-applied copy, plan.LastAppliedAnnotation), its
// plan.Fingerprint: what a node serves of its revision's files, so that a
// plan can tell which values changed without any of them leaving the
// node. A file without a plain Secret comes back as it is, and changed
// reports false; a SOPS-encrypted Secret (one with a top-level sops key)
// is left alone, its values being encrypted already. YAML is re-encoded,
// so comments and layout of a rewritten file may differ; JSON is
// re-indented. A .cue file that mentions Secret is ErrSecretInCUE. A file
// that does not parse comes back as it is: it defines no object, so no
// Secret.
func RedactSecrets(name string, data []byte) (out []byte, changed bool, err error) {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml":
		return redactYAML(data)
	case ".json":
		return redactJSON(data)
	case ".cue":
		if bytes.Contains(data, []byte("Secret")) {
			return nil, false, fmt.Errorf("%s: %w", name, ErrSecretInCUE)
		}
	}
	return data, false, nil
}

func redactYAML(data []byte) ([]byte, bool, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	changed := false
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			return data, false, nil
		}
		if len(doc.Content) == 1 && redactYAMLSecret(doc.Content[0]) {
			changed = true
		}
		docs = append(docs, &doc)
	}
	if !changed {
		return data, false, nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, false, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, false, err
	}
	return buf.Bytes(), true, nil
}

// yamlField is the value of key in mapping m, or nil.
func yamlField(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// redactYAMLSecret replaces the values of m when it is a plain Secret.
func redactYAMLSecret(m *yaml.Node) bool {
	if k := yamlField(m, "kind"); k == nil || k.Value != "Secret" || yamlField(m, "sops") != nil {
		return false
	}
	ns, name := "default", ""
	md := yamlField(m, "metadata")
	if n := yamlField(md, "namespace"); n != nil && n.Value != "" {
		ns = n.Value
	}
	if n := yamlField(md, "name"); n != nil {
		name = n.Value
	}
	changed := false
	if ann := yamlField(md, "annotations"); ann != nil && ann.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(ann.Content); i += 2 {
			if ann.Content[i].Value == plan.LastAppliedAnnotation {
				ann.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str",
					Value: plan.Fingerprint(ns, name, plan.LastAppliedAnnotation, []byte(ann.Content[i+1].Value))}
				changed = true
			}
		}
	}
	for _, field := range []string{"data", "stringData"} {
		f := yamlField(m, field)
		if f == nil {
			continue
		}
		if f.Kind != yaml.MappingNode {
			*f = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: plan.Fingerprint(ns, name, "", nil)}
			changed = true
			continue
		}
		for i := 0; i+1 < len(f.Content); i += 2 {
			key, v := f.Content[i].Value, f.Content[i+1]
			for v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			value := []byte(v.Value)
			if field == "data" {
				if b, err := base64.StdEncoding.DecodeString(v.Value); err == nil {
					value = b
				}
			}
			fp := plan.Fingerprint(ns, name, key, value)
			if field == "data" {
				fp = base64.StdEncoding.EncodeToString([]byte(fp))
			}
			f.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fp}
			changed = true
		}
	}
	return changed
}

func redactJSON(data []byte) ([]byte, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var values []any
	changed := false
	for {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			return data, false, nil
		}
		if m, ok := v.(map[string]any); ok && redactJSONSecret(m) {
			changed = true
		}
		values = append(values, v)
	}
	if !changed {
		return data, false, nil
	}
	var buf bytes.Buffer
	for _, v := range values {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, false, err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), true, nil
}

func redactJSONSecret(m map[string]any) bool {
	if m["kind"] != "Secret" || m["sops"] != nil {
		return false
	}
	ns, name, changed := "default", "", false
	if md, ok := m["metadata"].(map[string]any); ok {
		if s, ok := md["namespace"].(string); ok && s != "" {
			ns = s
		}
		name, _ = md["name"].(string)
		if ann, ok := md["annotations"].(map[string]any); ok {
			if v, ok := ann[plan.LastAppliedAnnotation]; ok {
				s, _ := v.(string)
				ann[plan.LastAppliedAnnotation] = plan.Fingerprint(ns, name, plan.LastAppliedAnnotation, []byte(s))
				changed = true
			}
		}
	}
	for _, field := range []string{"data", "stringData"} {
		f, ok := m[field]
		if !ok {
			continue
		}
		values, ok := f.(map[string]any)
		if !ok {
			m[field] = plan.Fingerprint(ns, name, "", nil)
			changed = true
			continue
		}
		for key, v := range values {
			s, _ := v.(string)
			value := []byte(s)
			if field == "data" {
				if b, err := base64.StdEncoding.DecodeString(s); err == nil {
					value = b
				}
			}
			fp := plan.Fingerprint(ns, name, key, value)
			if field == "data" {
				fp = base64.StdEncoding.EncodeToString([]byte(fp))
			}
			values[key] = fp
			changed = true
		}
	}
	return changed
}
