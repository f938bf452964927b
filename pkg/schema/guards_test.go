package schema

import (
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gitorch/gitorch/schemas"
)

// guardPods break each check of guards.cue.

const guardPods = `apiVersion: v1
kind: Pod
metadata: {name: env}
spec:
  containers:
  - name: c
    image: busybox
    env:
    - name: BOTH
      value: x
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: NONE
      valueFrom: {}
    - name: TWO
      valueFrom:
        configMapKeyRef: {name: a, key: k}
        secretKeyRef: {name: a, key: k}
    envFrom:
    - prefix: X_
    - configMapRef: {name: a}
      secretRef: {name: b}
---
apiVersion: v1
kind: Pod
metadata: {name: probes}
spec:
  initContainers:
  - name: init
    image: busybox
    envFrom: [{prefix: Y_}]
  containers:
  - name: c
    image: busybox
    readinessProbe: {periodSeconds: 5}
    livenessProbe:
      exec: {command: [echo]}
      tcpSocket: {port: 80}
    startupProbe:
      exec: {command: [echo]}
      httpGet: {port: 80}
      tcpSocket: {port: 80}
    lifecycle:
      preStop:
        exec: {command: [x]}
        httpGet: {port: 80}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: vols}
spec:
  selector: {matchLabels: {app: v}}
  template:
    metadata: {labels: {app: v}}
    spec:
      volumes:
      - name: a
        emptyDir: {}
        configMap: {name: c}
        secret: {secretName: s}
        hostPath: {path: /x}
      - {name: b, emptyDir: {}}
      containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: empty}
spec:
  containers: []
---
apiVersion: v1
kind: Pod
metadata: {name: dns1}
spec:
  dnsPolicy: None
  containers: [{name: c, image: i}]
---
apiVersion: v1
kind: Pod
metadata: {name: dns2}
spec:
  dnsPolicy: None
  dnsConfig: {searches: [a.b]}
  containers: [{name: c, image: i}]
---
apiVersion: v1
kind: Pod
metadata: {name: dns3}
spec:
  dnsPolicy: None
  dnsConfig: {nameservers: []}
  containers: [{name: c, image: i}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nosel}
spec:
  template:
    metadata: {labels: {app: v}}
    spec:
      containers: [{name: c, image: busybox}]
---
apiVersion: apps/v1beta2
kind: StatefulSet
metadata: {name: nosel}
spec:
  template:
    metadata: {labels: {app: v}}
    spec:
      containers: [{name: c, image: busybox}]
`

// svcDocs break each rule of a Service in guards.cue; the last ones keep
// them.
const svcDocs = `apiVersion: v1
kind: Service
metadata: {name: en1}
spec: {type: ExternalName}
---
apiVersion: v1
kind: Service
metadata: {name: en2}
spec: {type: ExternalName, externalName: db.example.com, clusterIP: 10.0.0.1}
---
apiVersion: v1
kind: Service
metadata: {name: en3}
spec: {externalName: db.example.com, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: en4}
spec: {type: NodePort, externalName: db.example.com, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: noports}
spec: {selector: {app: a}}
---
apiVersion: v1
kind: Service
metadata: {name: emptyports}
spec: {type: ClusterIP, clusterIP: 10.0.0.2, ports: []}
---
apiVersion: v1
kind: Service
metadata: {name: names}
spec:
  ports:
  - {port: 80}
  - {name: a, port: 81}
  - {name: a, port: 82}
  - {port: 83}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {type: NodePort, clusterIP: None, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: np1}
spec:
  ports: [{port: 80, nodePort: 30001}]
---
apiVersion: v1
kind: Service
metadata: {name: np2}
spec:
  type: ClusterIP
  ports: [{port: 80, nodePort: 0}, {name: b, port: 81, nodePort: 30002}]
---
apiVersion: v1
kind: Service
metadata: {name: ok1}
spec: {clusterIP: None}
---
apiVersion: v1
kind: Service
metadata: {name: ok2}
spec: {type: ExternalName, externalName: db.example.com, clusterIP: ""}
---
apiVersion: v1
kind: Service
metadata: {name: ok3}
spec: {type: NodePort, ports: [{port: 80, nodePort: 30003}]}
---
apiVersion: v1
kind: Service
metadata: {name: etp}
spec: {externalTrafficPolicy: Local, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: affinity}
spec: {sessionAffinity: None, sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: ok4}
spec: {type: NodePort, externalTrafficPolicy: Local, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}, ports: [{port: 80}]}
`

// withCUEGuards is the schemas as the cue command reads them: with
// guardsFile, under a name newValidator does not leave out.
type withCUEGuards struct{ fstest.MapFS }

func cueGuardsFS(t *testing.T) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	entries, err := fs.ReadDir(schemas.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := fs.ReadFile(schemas.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		name := e.Name()
		if name == guardsFile {
			name = "cue-" + name
		}
		m[name] = &fstest.MapFile{Data: data}
	}
	return &withCUEGuards{m}
}

// The checks of guards.cue, applied in Go, report what CUE reports of them,
// with the same position, field and message; CUE stops at some of them
// (it gives one error per struct), Go reports every one.
func TestGuardsInGoReportWhatCUEReports(t *testing.T) {
	files := map[string]string{"p.yaml": guardPods, "s.yaml": svcDocs}
	inGo := findings(load(t, files))

	saved := schemaFS
	schemaFS = cueGuardsFS(t)
	defer func() { schemaFS = saved }()
	inCUE := findings(load(t, files))

	if inCUE == "" {
		t.Fatal("the schemas with guards.cue found nothing: the test documents do not exercise it")
	}
	for _, line := range strings.Split(strings.TrimSpace(inCUE), "\n") {
		if !strings.Contains(inGo+"\n", line+"\n") {
			t.Errorf("CUE reports %q, the Go checks do not; Go reports:\n%s", line, inGo)
		}
	}
	// What CUE leaves out (it gives one error per struct), Go reports
	// too, and nothing else but the warnings of decoding (the Go checks
	// run after it).
	extra := []string{
		"p.yaml:38:5: Pod/default/probes: spec.containers[0].startupProbe: a probe has one handler, not exec and httpGet",
		"p.yaml:38:5: Pod/default/probes: spec.containers[0].startupProbe: a probe has one handler, not exec and tcpSocket",
		"p.yaml:102:1: StatefulSet/default/nosel: spec.selector: warning: no selector: using the template's labels, as apps/v1beta2 did (apps/v1 requires spec.selector)",
		"p.yaml:6:5: Pod/default/env: spec.containers[0]: envFrom[0] needs a source: configMapRef or secretRef",
		"p.yaml:38:5: Pod/default/probes: spec.containers[0].startupProbe: a probe has one handler, not httpGet and tcpSocket",
		"p.yaml:43:7: Pod/default/probes: spec.containers[0].lifecycle.preStop: a lifecycle hook has one handler, not exec and httpGet",
		"s.yaml:55:1: Service/default/np2: spec: ports[0] (port 80) needs a name: every port of a Service with more than one port has a name",
	}
	for _, line := range strings.Split(strings.TrimSpace(inGo), "\n") {
		if !strings.Contains(inCUE+"\n", line+"\n") && !slices.Contains(extra, line) {
			t.Errorf("the Go checks report %q, CUE does not", line)
		}
	}
	for _, want := range extra {
		if !strings.Contains(inGo+"\n", want+"\n") {
			t.Errorf("missing %q; got:\n%s", want, inGo)
		}
	}
}

// Documents the guards accept are accepted both ways, and the objects are
// kept.
func TestGuardsAcceptWhatCUEAccepts(t *testing.T) {
	files := map[string]string{"ok.yaml": `apiVersion: v1
kind: Pod
metadata: {name: ok}
spec:
  volumes: [{name: cfg, configMap: {name: c}}, {name: tmp}]
  initContainers:
  - name: init
    image: busybox
    envFrom: [{configMapRef: {name: c}}]
  containers:
  - name: c
    image: busybox
    env:
    - {name: A, value: "", valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: B, valueFrom: {secretKeyRef: {name: s, key: k}}}
    envFrom: [{secretRef: {name: s}, prefix: S_}]
    livenessProbe: {tcpSocket: {port: 80}}
    readinessProbe: {httpGet: {port: 80}}
    startupProbe: {exec: {command: ["true"]}}
    lifecycle: {preStop: {exec: {command: [x]}}}
---
{apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
---
{apiVersion: v1, kind: Secret, metadata: {name: s}, stringData: {k: v}}
`}
	for name, fsys := range map[string]fs.FS{"Go": schemaFS, "CUE": cueGuardsFS(t)} {
		saved := schemaFS
		schemaFS = fsys
		res := load(t, files)
		schemaFS = saved
		if len(res.Objects) != 3 || res.Errors() != 0 {
			t.Errorf("%s: %d objects, findings:\n%s", name, len(res.Objects), findings(res))
		}
	}
}
