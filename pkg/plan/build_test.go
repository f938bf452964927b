package plan

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
)

const testNodes = `
nodes:
- name: node-a
  address: 10.0.0.1
  labels: {zone: a}
  capacity: {cpu: "2", memory: 4Gi, pods: 110}
- name: node-b
  capacity: {cpu: 2, memory: 4Gi}
- name: node-c
  capacity: {cpu: 2, memory: 4Gi}
  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
`

func TestParseNodes(t *testing.T) {
	nodes, err := ParseNodes([]byte(testNodes))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 || nodes[0].Allocatable != (Resources{2000, 4 << 30, 110}) || nodes[1].Allocatable.Pods != 110 || nodes[2].Taints[0].Key != "dedicated" {
		t.Errorf("got %+v", nodes)
	}
	for _, bad := range []string{
		"nodes: [{capacity: {cpu: 1, memory: 1Gi}}]",
		"nodes: [{name: a, capacity: {cpu: 1}}]",
		"nodes: [{name: a, capacity: {cpu: 1, memory: 1Gi, gpu: 1}}]",
		"nodes: [{name: a, capacity: {cpu: 1, memory: 1Gi}}, {name: a, capacity: {cpu: 1, memory: 1Gi}}]",
		"nodes: [{name: a, capcity: {cpu: 1, memory: 1Gi}}]",
	} {
		if _, err := ParseNodes([]byte(bad)); err == nil {
			t.Errorf("ParseNodes(%q) accepted it", bad)
		}
	}
}

func TestBuildAndRender(t *testing.T) {
	nodes, _ := ParseNodes([]byte(testNodes))
	old := []runtime.Object{deployment("web", 2, "nginx:1.7.9"), svc("default", "web", "")}
	big := deployment("big", 1, "db")
	big.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("8Gi")}
	new := []runtime.Object{deployment("web", 2, "nginx:1.9.1"), big, svc("default", "web", ""), svc("default", "db", "None")}
	p := Build(old, new, nodes, nodes[:2], Options{})
	var buf bytes.Buffer
	if err := p.WriteText(&buf, false); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{
		"+ Deployment big\n",
		"~ Deployment web\n    spec.template.spec.containers[nginx].image: nginx:1.7.9 → nginx:1.9.1\n",
		"! pod big-",
		": unplaceable: 0/2 nodes are available: 2 insufficient memory.\n",
		"- pod web-",
		"+ pod web-",
		"  db  None (headless)\n",
		"Plan: 2 to add, 1 to change, 0 to destroy; 2 pods placed, 0 moved, 1 unplaceable.\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text plan lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\x1b") {
		t.Error("colour without asking")
	}
	buf.Reset()
	p.WriteText(&buf, true)
	if !strings.Contains(buf.String(), "\x1b[32m+\x1b[0m Deployment big") {
		t.Errorf("no colour when asked:\n%q", buf.String())
	}
	buf.Reset()
	if err := p.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["version"] != 1.0 || doc["summary"].(map[string]any)["unplaceable"] != 1.0 {
		t.Errorf("json: %s", buf.String())
	}
	if !p.HasChanges() {
		t.Error("HasChanges is false")
	}
	same := Build(new, new, nodes, nodes, Options{})
	if same.HasChanges() {
		t.Errorf("a plan from a revision to itself has changes: %+v", same)
	}
}

func TestBuildMoveWhenNodeLeaves(t *testing.T) {
	nodes, _ := ParseNodes([]byte(testNodes))
	objs := []runtime.Object{deployment("web", 4, "nginx")}
	p := Build(objs, objs, nodes[:2], nodes[1:2], Options{})
	if p.Summary.Moved != 2 {
		t.Fatalf("moved %d, want the 2 pods of node-a: %+v", p.Summary.Moved, p.Pods)
	}
	for _, c := range p.Pods {
		if c.Action != ActionMove || c.From != "node-a" || c.Node != "node-b" || c.Reason != "node-a left" {
			t.Errorf("unexpected %+v", c)
		}
	}
}

// Against the live cluster: a pod that runs where the plan puts it is no
// change; one that runs elsewhere moves; one that runs but is no longer
// asked for is destroyed.
func TestBuildAgainstActualPlacement(t *testing.T) {
	objs := []runtime.Object{deployment("web", 2, "nginx:1.7.9")}
	nodes := []Node{node("n1", 4000, 8192, nil), node("n2", 4000, 8192, nil)}
	placed := Schedule(objs, nodes)
	actual := map[Key]string{}
	for _, p := range placed.Pods {
		actual[p.Key()] = p.Node
	}
	if p := Build(objs, objs, nodes, nodes, Options{Actual: actual}); p.HasChanges() {
		t.Fatalf("pods where the plan puts them: %+v", p.Pods)
	}
	first := placed.Pods[0]
	other := map[string]string{"n1": "n2", "n2": "n1"}[first.Node]
	actual[first.Key()] = other
	actual[Key{"default", "stray-0"}] = "n1"
	p := Build(objs, objs, nodes, nodes, Options{Actual: actual})
	var got []string
	for _, c := range p.Pods {
		got = append(got, string(c.Action)+" "+c.Name+" "+c.From+">"+c.Node)
	}
	want := []string{"destroy stray-0 >n1", "move " + first.Name + " " + other + ">" + first.Node}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
}
