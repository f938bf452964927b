package plan

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The format of a membership file (gitorch plan --nodes), as
// docs/placement.md describes it:
//
//	nodes:
//	- name: node-a
//	  address: 10.0.0.1
//	  labels: {zone: a}
//	  capacity: {cpu: "4", memory: 8Gi, pods: 110}
//	  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
//	  unschedulable: false
//
// allocatable: may stand for capacity:, as a Kubernetes Node names what
// pods may use.
const nodesFileDoc = "docs/placement.md"

var nodeFields = []string{"name", "address", "labels", "capacity", "allocatable", "taints", "unschedulable"}

// ParseNodes reads a membership file; its errors give line numbers only.
// See ParseNodesFile.
func ParseNodes(data []byte) ([]Node, error) { return ParseNodesFile("", data) }

// ParseNodesFile reads the membership file called file (a name for
// messages; the caller reads it). cpu and memory are Kubernetes quantities
// ("500m", "8Gi") and required; pods defaults to 110. Every error starts
// with file:line: and says what was expected there; unknown fields are
// errors, so that a typo does not silently change the plan.
func ParseNodesFile(file string, data []byte) ([]Node, error) {
	p := nodesParser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, p.syntaxError(err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty, or only comments: no nodes
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, p.errorf(root, `expected a mapping with a "nodes:" list, see %s`, nodesFileDoc)
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "nodes" {
			return nil, p.errorf(k, `%s: unknown field: the file holds one "nodes:" list, see %s`, k.Value, nodesFileDoc)
		}
		list = v
	}
	if list == nil {
		return nil, p.errorf(root, `expected a mapping with a "nodes:" list, see %s`, nodesFileDoc)
	}
	list = yamlDeref(list)
	if yamlNull(list) {
		return nil, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, p.errorf(list, "nodes: expected a list of nodes, got %s", yamlKind(list))
	}
	seen := map[string]int{}
	nodes := make([]Node, 0, len(list.Content))
	for i, item := range list.Content {
		n, err := p.node(i, item)
		if err != nil {
			return nil, err
		}
		if line, ok := seen[n.Name]; ok {
			return nil, p.errorf(item, "node %s is listed twice (first on line %d)", n.Name, line)
		}
		seen[n.Name] = item.Line
		nodes = append(nodes, n)
	}
	return nodes, nil
}

type nodesParser struct{ file string }

func (p nodesParser) errorf(at *yaml.Node, format string, args ...any) error {
	return p.errorAt(at.Line, fmt.Sprintf(format, args...))
}

func (p nodesParser) errorAt(line int, msg string) error {
	if p.file == "" {
		return fmt.Errorf("line %d: %s", line, msg)
	}
	return fmt.Errorf("%s:%d: %s", p.file, line, msg)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError puts the YAML parser's line where the other errors have
// theirs.
func (p nodesParser) syntaxError(err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return p.errorAt(line, "not valid YAML: "+m[2])
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return p.errorAt(1, "not valid YAML: "+msg)
}

// node reads the i-th entry of the list.
func (p nodesParser) node(i int, item *yaml.Node) (Node, error) {
	item = yamlDeref(item)
	where := fmt.Sprintf("nodes[%d]", i)
	if item.Kind != yaml.MappingNode {
		return Node{}, p.errorf(item, "%s: expected a mapping (name:, capacity:, ...), got %s", where, yamlKind(item))
	}
	fields := map[string]*yaml.Node{}
	keys := map[string]*yaml.Node{}
	for j := 0; j+1 < len(item.Content); j += 2 {
		k, v := item.Content[j], item.Content[j+1]
		if !slices.Contains(nodeFields, k.Value) {
			return Node{}, p.errorf(k, "%s.%s: unknown field (%s)", where, k.Value, strings.Join(nodeFields, ", "))
		}
		if _, dup := fields[k.Value]; dup {
			return Node{}, p.errorf(k, "%s.%s: given twice", where, k.Value)
		}
		fields[k.Value], keys[k.Value] = v, k
	}
	var n Node
	name, ok := fields["name"]
	if !ok || yamlNull(name) {
		return Node{}, p.errorf(item, "%s: name is required", where)
	}
	var err error
	if n.Name, err = p.str(name, where+".name"); err != nil {
		return Node{}, err
	}
	if n.Name == "" {
		return Node{}, p.errorf(name, "%s: name is required", where)
	}
	where = "node " + n.Name
	if v, ok := fields["address"]; ok {
		if n.Address, err = p.str(v, where+": address"); err != nil {
			return Node{}, err
		}
	}
	if v, ok := fields["labels"]; ok {
		if n.Labels, err = p.labels(v, where+": labels"); err != nil {
			return Node{}, err
		}
	}
	if v, ok := fields["unschedulable"]; ok {
		v = yamlDeref(v)
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
			return Node{}, p.errorf(v, "%s: unschedulable: expected true or false, got %s", where, yamlKind(v))
		}
		n.Unschedulable = v.Value == "true" || v.Value == "True" || v.Value == "TRUE"
	}
	res, field := fields["capacity"], "capacity"
	if a, ok := fields["allocatable"]; ok {
		if res != nil {
			return Node{}, p.errorf(keys["allocatable"], "%s: both capacity (line %d) and allocatable are given: they mean the same here, what pods may use; keep one", where, keys["capacity"].Line)
		}
		res, field = a, "allocatable"
	}
	if res == nil {
		return Node{}, p.errorf(item, "%s: capacity is required (cpu and memory, or allocatable: as on a Kubernetes Node)", where)
	}
	if n.Allocatable, err = p.resources(res, where+": "+field); err != nil {
		return Node{}, err
	}
	if v, ok := fields["taints"]; ok {
		if n.Taints, err = p.taints(v, where+": taints"); err != nil {
			return Node{}, err
		}
	}
	return n, nil
}

func (p nodesParser) str(v *yaml.Node, where string) (string, error) {
	v = yamlDeref(v)
	if v.Kind != yaml.ScalarNode || yamlNull(v) {
		return "", p.errorf(v, "%s: expected a string, got %s", where, yamlKind(v))
	}
	return v.Value, nil
}

func (p nodesParser) labels(v *yaml.Node, where string) (map[string]string, error) {
	v = yamlDeref(v)
	if yamlNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.MappingNode {
		return nil, p.errorf(v, "%s: expected a mapping of label names to values, got %s", where, yamlKind(v))
	}
	out := map[string]string{}
	for j := 0; j+1 < len(v.Content); j += 2 {
		k, val := v.Content[j], v.Content[j+1]
		s, err := p.str(val, where+"."+k.Value)
		if err != nil {
			return nil, err
		}
		out[k.Value] = s
	}
	return out, nil
}

// resources reads capacity (or allocatable): cpu, memory and pods.
func (p nodesParser) resources(v *yaml.Node, where string) (Resources, error) {
	v = yamlDeref(v)
	if v.Kind != yaml.MappingNode {
		return Resources{}, p.errorf(v, "%s: expected a mapping of cpu, memory and pods, got %s", where, yamlKind(v))
	}
	vals := map[string]*yaml.Node{}
	for j := 0; j+1 < len(v.Content); j += 2 {
		k, val := v.Content[j], yamlDeref(v.Content[j+1])
		switch k.Value {
		case "cpu", "memory", "pods":
		default:
			return Resources{}, p.errorf(k, "%s.%s: unknown resource (cpu, memory, pods)", where, k.Value)
		}
		if val.Kind != yaml.ScalarNode || yamlNull(val) {
			return Resources{}, p.errorf(val, "%s.%s: expected a quantity such as 4, 500m or 8Gi, got %s", where, k.Value, yamlKind(val))
		}
		vals[k.Value] = val
	}
	r := Resources{Pods: 110}
	for _, k := range []string{"cpu", "memory", "pods"} {
		val, ok := vals[k]
		if !ok {
			if k == "pods" {
				continue
			}
			return Resources{}, p.errorf(v, "%s.%s is required", where, k)
		}
		q, err := resource.ParseQuantity(val.Value)
		if err != nil {
			return Resources{}, p.errorf(val, "%s.%s: %q is not a quantity (such as 4, 500m or 8Gi)", where, k, val.Value)
		}
		switch k {
		case "cpu":
			r.MilliCPU = q.MilliValue()
		case "memory":
			r.Memory = q.Value()
		case "pods":
			r.Pods = q.Value()
		}
	}
	return r, nil
}

func (p nodesParser) taints(v *yaml.Node, where string) ([]corev1.Taint, error) {
	v = yamlDeref(v)
	if yamlNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, p.errorf(v, "%s: expected a list of {key, value, effect}, got %s", where, yamlKind(v))
	}
	var out []corev1.Taint
	for j, t := range v.Content {
		at := fmt.Sprintf("%s[%d]", where, j)
		t = yamlDeref(t)
		if t.Kind != yaml.MappingNode {
			return nil, p.errorf(t, "%s: expected a mapping {key, value, effect}, got %s", at, yamlKind(t))
		}
		var taint corev1.Taint
		for k := 0; k+1 < len(t.Content); k += 2 {
			key, val := t.Content[k], t.Content[k+1]
			s, err := p.str(val, at+"."+key.Value)
			if err != nil {
				return nil, err
			}
			switch key.Value {
			case "key":
				taint.Key = s
			case "value":
				taint.Value = s
			case "effect":
				taint.Effect = corev1.TaintEffect(s)
				switch taint.Effect {
				case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
				default:
					return nil, p.errorf(val, "%s.effect: %q is not NoSchedule, PreferNoSchedule or NoExecute", at, s)
				}
			default:
				return nil, p.errorf(key, "%s.%s: unknown field (key, value, effect)", at, key.Value)
			}
		}
		if taint.Effect == "" {
			return nil, p.errorf(t, "%s.effect is required: NoSchedule, PreferNoSchedule or NoExecute", at)
		}
		out = append(out, taint)
	}
	return out, nil
}

// deref follows an alias (*name) to the node its anchor (&name) marks.
func yamlDeref(v *yaml.Node) *yaml.Node {
	for i := 0; v.Kind == yaml.AliasNode && v.Alias != nil && i < 100; i++ {
		v = v.Alias
	}
	return v
}

func yamlNull(v *yaml.Node) bool { return v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" }

// describe names what a node holds, for "expected X, got Y".
func yamlKind(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if yamlNull(v) {
			return "nothing"
		}
		return strconv.Quote(v.Value)
	}
	return "an empty document"
}
