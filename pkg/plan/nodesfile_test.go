package plan

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseNodesFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want []Node
	}{
		{"every field", `nodes:
- name: node-a
  address: 10.0.0.1
  labels: {zone: a}
  capacity: {cpu: "4", memory: 8Gi, pods: 50}
  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
  unschedulable: true
`, []Node{{Name: "node-a", Address: "10.0.0.1", Labels: map[string]string{"zone": "a"},
			Allocatable: Resources{4000, 8 << 30, 50}, Unschedulable: true,
			Taints: []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}}}},
		{"allocatable as a Kubernetes Node names it, numbers unquoted, pods by default", `nodes:
- name: b
  allocatable: {cpu: 3500m, memory: 1e9}
`, []Node{{Name: "b", Allocatable: Resources{3500, 1e9, 110}}}},
		{"anchors and aliases", `nodes:
- {name: a, capacity: &small {cpu: 1, memory: 1Gi}}
- {name: b, capacity: *small}
`, []Node{{Name: "a", Allocatable: Resources{1000, 1 << 30, 110}}, {Name: "b", Allocatable: Resources{1000, 1 << 30, 110}}}},
		{"empty file", "", nil},
		{"only comments", "# no nodes yet\n", nil},
		{"empty list", "nodes: []\n", []Node{}},
		{"null list", "nodes:\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNodesFile("nodes.yaml", []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseNodesFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"a list instead of the mapping", "- name: a\n  capacity: {cpu: 1, memory: 1Gi}\n",
			`nodes.yaml:1: expected a mapping with a "nodes:" list, see docs/placement.md`},
		{"a scalar", "node-a\n",
			`nodes.yaml:1: expected a mapping with a "nodes:" list, see docs/placement.md`},
		{"another top-level key", "\nmembers:\n- name: a\n",
			`nodes.yaml:2: members: unknown field: the file holds one "nodes:" list, see docs/placement.md`},
		{"nodes is a mapping", "nodes:\n  a: {cpu: 1}\n",
			`nodes.yaml:2: nodes: expected a list of nodes, got a mapping`},
		{"an entry is a string", "nodes:\n- a\n",
			`nodes.yaml:2: nodes[0]: expected a mapping (name:, capacity:, ...), got "a"`},
		{"no name", "nodes:\n- capacity: {cpu: 1, memory: 1Gi}\n",
			`nodes.yaml:2: nodes[0]: name is required`},
		{"name is a list", "nodes:\n- name: [a]\n  capacity: {cpu: 1, memory: 1Gi}\n",
			`nodes.yaml:2: nodes[0].name: expected a string, got a list`},
		{"unknown field", "nodes:\n- name: a\n  capcity: {cpu: 1, memory: 1Gi}\n",
			`nodes.yaml:3: nodes[0].capcity: unknown field (name, address, labels, capacity, allocatable, taints, unschedulable)`},
		{"listed twice", "nodes:\n- {name: a, capacity: {cpu: 1, memory: 1Gi}}\n- {name: a, capacity: {cpu: 1, memory: 1Gi}}\n",
			`nodes.yaml:3: node a is listed twice (first on line 2)`},
		{"no capacity", "nodes:\n- name: a\n",
			`nodes.yaml:2: node a: capacity is required (cpu and memory, or allocatable: as on a Kubernetes Node)`},
		{"capacity and allocatable", "nodes:\n- name: a\n  capacity: {cpu: 1, memory: 1Gi}\n  allocatable: {cpu: 1, memory: 1Gi}\n",
			`nodes.yaml:4: node a: both capacity (line 3) and allocatable are given: they mean the same here, what pods may use; keep one`},
		{"capacity is a list", "nodes:\n- name: a\n  capacity:\n  - cpu: 1\n",
			`nodes.yaml:4: node a: capacity: expected a mapping of cpu, memory and pods, got a list`},
		{"memory missing", "nodes:\n- name: a\n  capacity: {cpu: 1}\n",
			`nodes.yaml:3: node a: capacity.memory is required`},
		{"unknown resource", "nodes:\n- name: a\n  allocatable:\n    cpu: 1\n    memory: 1Gi\n    gpu: 1\n",
			`nodes.yaml:6: node a: allocatable.gpu: unknown resource (cpu, memory, pods)`},
		{"not a quantity", "nodes:\n- name: a\n  capacity:\n    cpu: lots\n    memory: 1Gi\n",
			`nodes.yaml:4: node a: capacity.cpu: "lots" is not a quantity (such as 4, 500m or 8Gi)`},
		{"a quantity given as a mapping", "nodes:\n- name: a\n  capacity:\n    cpu: {value: 1}\n    memory: 1Gi\n",
			`nodes.yaml:4: node a: capacity.cpu: expected a quantity such as 4, 500m or 8Gi, got a mapping`},
		{"labels as a list", "nodes:\n- name: a\n  capacity: {cpu: 1, memory: 1Gi}\n  labels: [zone=a]\n",
			`nodes.yaml:4: node a: labels: expected a mapping of label names to values, got a list`},
		{"a label value as a list", "nodes:\n- name: a\n  capacity: {cpu: 1, memory: 1Gi}\n  labels:\n    zone: [a]\n",
			`nodes.yaml:5: node a: labels.zone: expected a string, got a list`},
		{"taints as a mapping", "nodes:\n- name: a\n  capacity: {cpu: 1, memory: 1Gi}\n  taints: {key: x}\n",
			`nodes.yaml:4: node a: taints: expected a list of {key, value, effect}, got a mapping`},
		{"bad effect", "nodes:\n- name: a\n  capacity: {cpu: 1, memory: 1Gi}\n  taints:\n  - key: x\n    effect: Never\n",
			`nodes.yaml:6: node a: taints[0].effect: "Never" is not NoSchedule, PreferNoSchedule or NoExecute`},
		{"taint without effect", "nodes:\n- name: a\n  capacity: {cpu: 1, memory: 1Gi}\n  taints:\n  - key: x\n",
			`nodes.yaml:5: node a: taints[0].effect is required: NoSchedule, PreferNoSchedule or NoExecute`},
		{"unknown taint field", "nodes:\n- name: a\n  capacity: {cpu: 1, memory: 1Gi}\n  taints:\n  - {key: x, effect: NoSchedule, operator: Exists}\n",
			`nodes.yaml:5: node a: taints[0].operator: unknown field (key, value, effect)`},
		{"unschedulable as a string", "nodes:\n- name: a\n  capacity: {cpu: 1, memory: 1Gi}\n  unschedulable: \"yes\"\n",
			`nodes.yaml:4: node a: unschedulable: expected true or false, got "yes"`},
		{"a field given twice", "nodes:\n- name: a\n  capacity: {cpu: 1, memory: 1Gi}\n  name: b\n",
			`nodes.yaml:4: nodes[0].name: given twice`},
		{"not YAML", "nodes:\n- name: a\n capacity: {cpu: 1}\n",
			`nodes.yaml:2: not valid YAML: did not find expected key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNodesFile("nodes.yaml", []byte(tc.data))
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
	// Without a file name the line still says where.
	if _, err := ParseNodes([]byte("[]")); err == nil || err.Error() != `line 1: expected a mapping with a "nodes:" list, see docs/placement.md` {
		t.Errorf("ParseNodes: %v", err)
	}
}

func FuzzParseNodesFile(f *testing.F) {
	f.Add([]byte(testNodes))
	f.Add([]byte("nodes:\n- &a {name: a, capacity: &c {cpu: 1, memory: 1Gi}}\n- {name: b, allocatable: *c}\n"))
	f.Add([]byte("- a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, err := ParseNodesFile("f.yaml", data)
		if err == nil {
			for _, n := range nodes {
				if n.Name == "" {
					t.Errorf("accepted a node without a name: %q", data)
				}
			}
		}
	})
}
