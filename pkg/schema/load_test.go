package schema

import (
	"strings"
	"testing"
	"testing/fstest"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - {containerPort: 80, name: http}
`

func load(t *testing.T, files map[string]string) *Result {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	res, err := Load(fsys, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return res
}

// findings renders res's findings one a line, for comparison.
func findings(res *Result) string {
	var lines []string
	for _, f := range res.Findings {
		lines = append(lines, f.String())
	}
	return strings.Join(lines, "\n")
}

// expect checks that every wanted line is among the findings, and that
// there are no error findings beyond those wanted.
func expect(t *testing.T, res *Result, want ...string) {
	t.Helper()
	got := findings(res)
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing finding %q; got:\n%s", w, got)
		}
	}
	for _, f := range res.Findings {
		if f.Severity != SeverityError {
			continue
		}
		matched := false
		for _, w := range want {
			if strings.Contains(f.String(), w) {
				matched = true
			}
		}
		if !matched {
			t.Errorf("unexpected error: %s", f)
		}
	}
}

func TestValidDeploymentDecodesWithDefaults(t *testing.T) {
	res := load(t, map[string]string{"web.yaml": deployment})
	expect(t, res)
	if len(res.Objects) != 1 {
		t.Fatalf("got %d objects, want 1", len(res.Objects))
	}
	o := res.Objects[0]
	d, ok := o.Obj.(*appsv1.Deployment)
	if !ok {
		t.Fatalf("Obj is %T, want *appsv1.Deployment", o.Obj)
	}
	if o.Namespace != "default" || d.Namespace != "default" {
		t.Errorf("namespace = %q/%q, want default", o.Namespace, d.Namespace)
	}
	if d.APIVersion != "apps/v1" || d.Kind != "Deployment" {
		t.Errorf("TypeMeta = %s %s", d.APIVersion, d.Kind)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.ImagePullPolicy != corev1.PullIfNotPresent || c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("container defaults not applied: %+v", c)
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		d.Spec.Strategy.RollingUpdate.MaxSurge.String() != "25%" {
		t.Errorf("strategy defaults not applied: %+v", d.Spec.Strategy)
	}
	if o.Pos.String() != "web.yaml:1:1" {
		t.Errorf("Pos = %s, want web.yaml:1:1", o.Pos)
	}
}

func TestSchemaErrorsCarryPositionAndFieldPath(t *testing.T) {
	res := load(t, map[string]string{"bad.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: Bad_Name
spec:
  replicas: -1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      restartPolicy: Sometimes
      contianers:
      - name: nginx
        image: nginx
`})
	expect(t, res,
		`bad.yaml:4:9: Deployment/default/Bad_Name: metadata.name: invalid value "Bad_Name"`,
		`bad.yaml:6:13: Deployment/default/Bad_Name: spec.replicas: invalid value -1`,
		`bad.yaml:13:22: Deployment/default/Bad_Name: spec.template.spec.restartPolicy: invalid value "Sometimes"`,
		`bad.yaml:14:7: Deployment/default/Bad_Name: spec.template.spec.contianers: unknown field "contianers" (did you mean "containers"?)`,
	)
	if len(res.Objects) != 0 {
		t.Errorf("an invalid document was decoded: %v", res.Objects)
	}
}

func TestKubernetesFieldGitorchLacksIsIgnoredWithWarning(t *testing.T) {
	doc := strings.Replace(deployment, "    spec:\n      containers:", "    spec:\n      hostNetwork: true\n      containers:", 1)
	res := load(t, map[string]string{"web.yaml": doc})
	expect(t, res, "web.yaml:13:7: Deployment/default/web: spec.template.spec.hostNetwork: warning: ignored: spec.template.spec.hostNetwork (not supported by gitorch)")
	if len(res.Objects) != 1 {
		t.Fatalf("got %d objects, want the document accepted", len(res.Objects))
	}
	if res.Objects[0].Obj.(*appsv1.Deployment).Spec.Template.Spec.HostNetwork {
		t.Error("an ignored field reached the decoded object")
	}
}

func TestStatusAndServerFieldsAreDroppedSilently(t *testing.T) {
	doc := strings.Replace(deployment, "  name: web\n", "  name: web\n  creationTimestamp: null\n  uid: 1234\n", 1) + "status: {}\n"
	res := load(t, map[string]string{"web.yaml": doc})
	if len(res.Findings) != 0 || len(res.Objects) != 1 {
		t.Fatalf("want the document accepted with no findings, got:\n%s", findings(res))
	}
}

func TestUnsupportedAndMissingKinds(t *testing.T) {
	res := load(t, map[string]string{"x.yaml": `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
---
apiVersion: example.com/v1
kind: Frobnicator
metadata: {name: f}
---
metadata: {name: nothing}
---
apiVersion: v1
metadata: {name: nokind}
---
- just
- a list
`})
	expect(t, res,
		"x.yaml:2:7: Ingress/web: kind: kind Ingress (networking.k8s.io/v1) is a Kubernetes kind that gitorch does not support",
		"Frobnicator/f: kind: kind Frobnicator (example.com/v1) is not supported by gitorch",
		"x.yaml:9:1: missing apiVersion and kind",
		"x.yaml:11:1: kind: missing kind",
		"x.yaml:14:1: a manifest must be a mapping with apiVersion and kind, not list",
	)
}

func TestWrongAPIVersionForKind(t *testing.T) {
	res := load(t, map[string]string{"x.yaml": strings.Replace(deployment, "apps/v1", "v1", 1)})
	expect(t, res, "x.yaml:1:13: Deployment/default/web: apiVersion: apiVersion v1 is not valid for Deployment; use apps/v1 or")
}

func TestLegacyDeploymentGetsOldDefaults(t *testing.T) {
	res := load(t, map[string]string{"old.yaml": `apiVersion: extensions/v1beta1
kind: Deployment
metadata: {name: old}
spec:
  template:
    metadata: {labels: {app: old}}
    spec:
      containers: [{name: c, image: busybox}]
`})
	expect(t, res,
		"old.yaml:1:13: Deployment/default/old: apiVersion: warning: Deployment extensions/v1beta1 is deprecated",
		"spec.selector: warning: no selector: using the template's labels",
	)
	d := res.Objects[0].Obj.(*appsv1.Deployment)
	if d.APIVersion != "apps/v1" || d.Spec.Selector.MatchLabels["app"] != "old" {
		t.Errorf("not converted: %s %+v", d.APIVersion, d.Spec.Selector)
	}
	if *d.Spec.Strategy.RollingUpdate.MaxSurge != intstr.FromInt32(1) {
		t.Errorf("extensions/v1beta1 maxSurge default = %v, want 1", d.Spec.Strategy.RollingUpdate.MaxSurge)
	}
	if d.Spec.Template.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways {
		t.Error("an image without a tag should default to imagePullPolicy Always")
	}
}

func TestCrossObjectChecks(t *testing.T) {
	res := load(t, map[string]string{
		"a.yaml": deployment,
		"b.yaml": deployment, // same kind, namespace and name
		"svc.yaml": `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: htp, nodePort: 30001}]
---
apiVersion: v1
kind: Service
metadata: {name: web2}
spec:
  type: NodePort
  ports: [{port: 80, nodePort: 30001}]
`,
		"ref.yaml": `apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: p}}
spec:
  containers:
  - name: c
    image: busybox
    env:
    - name: A
      valueFrom: {configMapKeyRef: {name: settings, key: absent}}
    - name: B
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    - name: C
      valueFrom: {secretKeyRef: {name: maybe, key: x, optional: true}}
  volumes:
  - name: v
    configMap: {name: nowhere}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {level: info}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mismatch}
spec:
  selector: {matchLabels: {app: one}}
  template:
    metadata: {labels: {app: two}}
    spec:
      containers: [{name: c, image: busybox}]
`,
	})
	expect(t, res,
		"b.yaml:4:9: Deployment/default/web: metadata.name: duplicate Deployment/default/web: already defined at a.yaml:1:1",
		`svc.yaml:7:34: Service/default/web: spec.ports[0].targetPort: targetPort "htp" is not a port name of the selected pods (their ports: [http])`,
		"svc.yaml:14:32: Service/default/web2: spec.ports[0].nodePort: nodePort 30001 is already used by Service/default/web (svc.yaml:7:49)",
		`Pod/default/p: spec.containers[0].env[0].valueFrom.configMapKeyRef: ConfigMap default/settings has no key "absent"`,
		"Pod/default/p: spec.containers[0].env[1].valueFrom.secretKeyRef: Secret default/creds is not defined in the repository",
		"Pod/default/p: spec.volumes[0].configMap.name: ConfigMap default/nowhere is not defined in the repository",
		"Deployment/default/mismatch: spec.selector: selector does not match the template's labels",
	)
}

func TestTreeWalkIgnoresAndFormats(t *testing.T) {
	cm := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {k: v}\n"
	}
	res := load(t, map[string]string{
		".git/config.yaml":    cm("from-git-dir"),
		".gitorchignore":      "drafts/\n*.tmp.yaml\n",
		"drafts/wip.yaml":     "this: is: not: yaml",
		"x.tmp.yaml":          cm("ignored-by-pattern"),
		"apps/.gitorchignore": "local.yaml\n",
		"apps/local.yaml":     cm("ignored-nested"),
		"apps/one.yml":        cm("one"),
		"apps/two.json":       `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}, "data": {"k": "v"}}`,
		"apps/list.yaml":      "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(cm("three"), "\n", "\n  "),
		"notes.md":            "# not a manifest",
		"cue/app.cue":         "package app\n\n_base: {apiVersion: \"v1\", kind: \"ConfigMap\", data: k: \"v\"}\nconfig: [N=string]: _base & {metadata: name: N}\nconfig: four: {}\nconfig: five: {}\n",
		"cue/more.cue":        "package app\n\nlists: [{apiVersion: \"v1\", kind: \"Namespace\", metadata: name: \"six\"}]\n",
	})
	expect(t, res)
	var names []string
	for _, o := range res.Objects {
		names = append(names, o.Name)
	}
	if got := strings.Join(names, ","); got != "three,one,two,four,five,six" {
		t.Errorf("objects = %s", got)
	}
}

func TestParseErrorsHaveLines(t *testing.T) {
	res := load(t, map[string]string{
		"bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: bad indent\n",
		"bad.json": "{\"apiVersion\": \"v1\",\n \"kind\": }\n",
		"bad.cue":  "package x\n\na: {\n",
	})
	got := findings(res)
	for _, want := range []string{"bad.yaml:4:", "bad.json:2:", "bad.cue:"} {
		if !strings.Contains(got, want) {
			t.Errorf("no finding at %s; got:\n%s", want, got)
		}
	}
	if res.Errors() != 3 {
		t.Errorf("got %d errors, want 3:\n%s", res.Errors(), got)
	}
}

func TestPathsRestrictLoading(t *testing.T) {
	fsys := fstest.MapFS{
		"a/web.yaml":  {Data: []byte(deployment)},
		"b/bad.yaml":  {Data: []byte("kind: Nonsense\n")},
		"c/notes.txt": {Data: []byte(strings.Replace(deployment, "name: web", "name: web2", 1))},
	}
	res, err := Load(fsys, Options{Paths: []string{"a", "c/notes.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 2 || res.Errors() != 0 {
		t.Fatalf("got %d objects, findings:\n%s", len(res.Objects), findings(res))
	}
	if _, err := Load(fsys, Options{Paths: []string{"../outside"}}); err == nil {
		t.Error("a path outside the tree was accepted")
	}
}

func TestOldMacLineBreaksAreLineBreaks(t *testing.T) {
	// CUE's YAML decoder panics on lone carriage returns; they are YAML
	// line breaks, so the loader reads them as such.
	doc := strings.ReplaceAll("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad\n", "\n", "\r")
	res := load(t, map[string]string{"mac.yaml": doc})
	expect(t, res, `mac.yaml:4:9: ConfigMap/default/Bad: metadata.name: invalid value "Bad"`)
}

func TestRuntimeObjects(t *testing.T) {
	res := load(t, map[string]string{
		"a.yaml": deployment,
		"b.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
	})
	objs := res.RuntimeObjects()
	if len(objs) != 2 || len(res.Objects) != 2 {
		t.Fatalf("%d runtime objects of %d objects, want 2: %v", len(objs), len(res.Objects), res.Findings)
	}
	if _, ok := objs[0].(*appsv1.Deployment); !ok || objs[0] != res.Objects[0].Obj {
		t.Errorf("objs[0] = %T, want the *appsv1.Deployment of Objects[0]", objs[0])
	}
	if _, ok := objs[1].(*corev1.Service); !ok || objs[1] != res.Objects[1].Obj {
		t.Errorf("objs[1] = %T, want the *corev1.Service of Objects[1]", objs[1])
	}
	if got := (&Result{}).RuntimeObjects(); len(got) != 0 {
		t.Errorf("empty result: %v", got)
	}
}
