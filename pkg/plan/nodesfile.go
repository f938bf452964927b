package plan

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// nodesFile is the format of a membership file (gitorch plan --nodes):
//
//	nodes:
//	- name: node-a
//	  address: 10.0.0.1
//	  labels: {zone: a}
//	  capacity: {cpu: "4", memory: 8Gi, pods: 110}
//	  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
//	  unschedulable: false
type nodesFile struct {
	Nodes []struct {
		Name          string            `json:"name"`
		Address       string            `json:"address"`
		Labels        map[string]string `json:"labels"`
		Capacity      map[string]any    `json:"capacity"`
		Taints        []corev1.Taint    `json:"taints"`
		Unschedulable bool              `json:"unschedulable"`
	} `json:"nodes"`
}

// ParseNodes reads a membership file. cpu and memory are Kubernetes
// quantities ("500m", "8Gi") and required; pods defaults to 110.
func ParseNodes(data []byte) ([]Node, error) {
	var f nodesFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	nodes := make([]Node, 0, len(f.Nodes))
	for i, n := range f.Nodes {
		if n.Name == "" {
			return nil, fmt.Errorf("nodes[%d]: name is required", i)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("nodes[%d]: node %s is listed twice", i, n.Name)
		}
		seen[n.Name] = true
		node := Node{Name: n.Name, Address: n.Address, Labels: n.Labels, Taints: n.Taints, Unschedulable: n.Unschedulable}
		for k := range n.Capacity {
			if k != "cpu" && k != "memory" && k != "pods" {
				return nil, fmt.Errorf("node %s: capacity.%s: unknown resource (cpu, memory, pods)", n.Name, k)
			}
		}
		for _, k := range []string{"cpu", "memory"} {
			v, ok := n.Capacity[k]
			s := fmt.Sprint(v)
			if !ok {
				return nil, fmt.Errorf("node %s: capacity.%s is required", n.Name, k)
			}
			q, err := resource.ParseQuantity(s)
			if err != nil {
				return nil, fmt.Errorf("node %s: capacity.%s: %q is not a quantity", n.Name, k, s)
			}
			if k == "cpu" {
				node.Allocatable.MilliCPU = q.MilliValue()
			} else {
				node.Allocatable.Memory = q.Value()
			}
		}
		node.Allocatable.Pods = 110
		if v, ok := n.Capacity["pods"]; ok {
			s := fmt.Sprint(v)
			q, err := resource.ParseQuantity(s)
			if err != nil {
				return nil, fmt.Errorf("node %s: capacity.pods: %q is not a number", n.Name, s)
			}
			node.Allocatable.Pods = q.Value()
		}
		for j, t := range n.Taints {
			switch t.Effect {
			case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
			default:
				return nil, fmt.Errorf("node %s: taints[%d].effect: %q is not NoSchedule, PreferNoSchedule or NoExecute", n.Name, j, t.Effect)
			}
		}
		nodes = append(nodes, node)
	}
	return nodes, nil
}
