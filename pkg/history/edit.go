package history

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// restoreTemplate returns cur (the file curName) with the spec.template of
// ref's document replaced by the one in old (the file oldName, YAML or
// JSON). Only that document is rewritten; the others keep their text.
func restoreTemplate(cur []byte, curName string, old []byte, oldName string, ref Ref) ([]byte, error) {
	if !isYAML(curName) {
		return nil, fmt.Errorf("%s: only a YAML manifest can be rewritten; restore the template of %s by hand", curName, ref)
	}
	if ext := path.Ext(oldName); !isYAML(oldName) && ext != ".json" {
		return nil, fmt.Errorf("%s: the earlier template is written in %s; restore it by hand", oldName, ext)
	}
	oldTmpl, err := templateNode(old, oldName, ref)
	if err != nil {
		return nil, err
	}
	plainStyle(oldTmpl)
	docs := splitDocuments(cur)
	for i, d := range docs {
		var n yaml.Node
		if err := yaml.Unmarshal(d.body, &n); err != nil || !isRef(&n, ref) {
			continue
		}
		spec := mapValue(n.Content[0], "spec")
		if spec == nil || mapValue(spec, "template") == nil {
			return nil, fmt.Errorf("%s: %s has no spec.template", curName, ref)
		}
		setMapValue(spec, "template", oldTmpl)
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(&n); err != nil {
			return nil, err
		}
		enc.Close()
		docs[i].body = b.Bytes()
		var out []byte
		for _, d := range docs {
			out = append(out, d.sep...)
			out = append(out, d.body...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: no YAML document of %s", curName, ref)
}

func isYAML(name string) bool {
	ext := path.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

// templateNode is spec.template of ref's document in data.
func templateNode(data []byte, name string, ref Ref) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			return nil, fmt.Errorf("%s: no document of %s: %v", name, ref, err)
		}
		if !isRef(&n, ref) {
			continue
		}
		if t := mapValue(mapValue(n.Content[0], "spec"), "template"); t != nil {
			return t, nil
		}
		return nil, fmt.Errorf("%s: %s has no spec.template", name, ref)
	}
}

func isRef(doc *yaml.Node, ref Ref) bool {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return false
	}
	m := doc.Content[0]
	if scalar(mapValue(m, "kind")) != ref.Kind {
		return false
	}
	meta := mapValue(m, "metadata")
	ns := scalar(mapValue(meta, "namespace"))
	if ns == "" {
		ns = "default"
	}
	return scalar(mapValue(meta, "name")) == ref.Name && ns == ref.Namespace
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
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

func setMapValue(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// plainStyle drops the flow and quoting styles JSON brings, so that the
// node is written as block YAML (a string that needs quotes still gets
// them).
func plainStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle | yaml.DoubleQuotedStyle
	for _, c := range n.Content {
		plainStyle(c)
	}
}

type document struct {
	sep  []byte // the "---" line before it, if any
	body []byte
}

// splitDocuments splits a YAML stream at its "---" lines.
func splitDocuments(data []byte) []document {
	var docs []document
	cur := document{}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
		}
		data = data[len(line):]
		t := strings.TrimRight(string(line), "\r\n")
		if t == "---" || strings.HasPrefix(t, "--- ") {
			docs = append(docs, cur)
			cur = document{sep: line}
			continue
		}
		cur.body = append(cur.body, line...)
	}
	return append(docs, cur)
}

func writeFile(name string, data []byte) error {
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	return os.WriteFile(name, data, fi.Mode().Perm())
}
