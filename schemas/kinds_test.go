package schemas

import (
	"strings"
	"testing"

	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
)

// A case is one document and what the schema says of it: want is empty for
// a valid document, or a piece of the error.
type docCase struct {
	name, kind, doc, want string
}

func runCases(t *testing.T, cases []docCase) {
	t.Helper()
	pkg := compile(t, cuecontext.New())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := check(t, pkg, c.kind, c.doc)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("valid document refused:\n%s\n%s", c.doc, errors.Details(err, nil))
			case c.want != "" && err == nil:
				t.Errorf("invalid document accepted (want %q):\n%s", c.want, c.doc)
			case c.want != "" && !strings.Contains(errors.Details(err, nil), c.want):
				t.Errorf("error does not say %q:\n%s", c.want, errors.Details(err, nil))
			}
		})
	}
}

// pod is a Pod with the given spec, indented as the spec's fields.
func pod(spec string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n" + indent(spec, "  ")
}

// podWith is a Pod whose one container has the given extra fields.
func podWith(container string) string {
	return pod("containers:\n- name: c\n  image: busybox\n" + indent(container, "  "))
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// workload is a document of a workload kind with a template of one
// container and the given extra spec fields.
func workload(apiVersion, kind, spec string) string {
	return "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata: {name: w}\nspec:\n" + indent(spec, "  ") +
		"  template:\n    metadata: {labels: {app: w}}\n    spec:\n      containers: [{name: c, image: busybox}]\n"
}

const selector = "selector: {matchLabels: {app: w}}"

func TestMetadata(t *testing.T) {
	runCases(t, []docCase{
		{"labels and annotations", "Pod", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web.example-1\n  namespace: shop\n  labels: {app: web, app.kubernetes.io/name: web, tier: \"\", x_y.z: A-1}\n  annotations: {description: \"any text, even: this\", example.com/owner: ops}\nspec:\n  containers: [{name: c, image: i}]\n", ""},
		{"name is required", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\nspec: {containers: [{name: c, image: i}]}\n", "metadata.name: field is required"},
		{"name with capitals", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: Web}\nspec: {containers: [{name: c, image: i}]}\n", "metadata.name: invalid value \"Web\""},
		{"name too long", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: " + strings.Repeat("a", 254) + "}\nspec: {containers: [{name: c, image: i}]}\n", "MaxRunes(253)"},
		{"name ending in a dash", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: web-}\nspec: {containers: [{name: c, image: i}]}\n", "metadata.name"},
		{"namespace is a DNS label, no dots", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a.b}\nspec: {containers: [{name: c, image: i}]}\n", "metadata.namespace"},
		{"generateName is not supported", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, generateName: p-}\nspec: {containers: [{name: c, image: i}]}\n", "metadata.generateName: field not allowed"},
		{"status is not in the schema", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\nstatus: {phase: Running}\n", "status: field not allowed"},
		{"label key with two slashes", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a/b/c: x}}\nspec: {containers: [{name: c, image: i}]}\n", "invalid key a/b/c"},
		{"label key name too long", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {" + strings.Repeat("k", 64) + ": x}}\nspec: {containers: [{name: c, image: i}]}\n", "invalid key"},
		{"label value with a space", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: my app}}\nspec: {containers: [{name: c, image: i}]}\n", "metadata.labels.app"},
		{"label value too long", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: " + strings.Repeat("v", 64) + "}}\nspec: {containers: [{name: c, image: i}]}\n", "MaxRunes(63)"},
		{"label value must be a string", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {version: 2}}\nspec: {containers: [{name: c, image: i}]}\n", "metadata.labels.version"},
		{"wrong kind for the definition", "Pod", "apiVersion: v1\nkind: Service\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n", "kind"},
	})
}

func TestPod(t *testing.T) {
	runCases(t, []docCase{
		{"minimal", "Pod", podWith(""), ""},
		{"every implemented field", "Pod", pod(`
restartPolicy: OnFailure
terminationGracePeriodSeconds: 10
enableServiceLinks: false
hostname: web-0
subdomain: web
nodeSelector: {disktype: ssd}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}
        - {key: gpu, operator: DoesNotExist}
        - {key: cores, operator: Gt, values: ["4"]}
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      preference:
        matchExpressions: [{key: zone, operator: NotIn, values: [a]}]
tolerations:
- {key: dedicated, operator: Equal, value: web, effect: NoSchedule}
- {operator: Exists}
- {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 30}
volumes:
- {name: scratch, emptyDir: {}}
- {name: cache, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
- {name: config, configMap: {name: web-config, items: [{key: nginx.conf, path: conf/nginx.conf, mode: 0644}], defaultMode: 0444, optional: true}}
- {name: tls, secret: {secretName: web-tls, defaultMode: 256}}
- {name: logs, hostPath: {path: /var/log, type: DirectoryOrCreate}}
- {name: plain}
initContainers:
- name: init
  image: busybox
  command: [sh, -c, "echo ready > /work/ready"]
  volumeMounts: [{name: scratch, mountPath: /work}]
containers:
- name: web
  image: nginx:1.27
  imagePullPolicy: IfNotPresent
  command: [nginx]
  args: [-g, daemon off;]
  workingDir: /srv
  ports:
  - {name: http, containerPort: 80, protocol: TCP}
  - {containerPort: 53, protocol: UDP}
  env:
  - {name: MODE, value: production}
  - {name: EMPTY, value: ""}
  - name: LEVEL
    valueFrom: {configMapKeyRef: {name: web-config, key: level, optional: true}}
  - name: PASSWORD
    valueFrom: {secretKeyRef: {name: web-secret, key: password}}
  - name: POD_IP
    valueFrom: {fieldRef: {fieldPath: status.podIP}}
  - name: NODE
    valueFrom: {fieldRef: {apiVersion: v1, fieldPath: spec.nodeName}}
  envFrom:
  - {configMapRef: {name: web-config}, prefix: CFG_}
  - {secretRef: {name: web-secret, optional: true}}
  volumeMounts:
  - {name: config, mountPath: /etc/nginx, readOnly: true}
  - {name: scratch, mountPath: /tmp/x, subPath: a/b}
  resources:
    requests: {cpu: 100m, memory: 64Mi}
    limits: {cpu: 1, memory: 1G}
  livenessProbe:
    httpGet:
      path: /healthz
      port: http
      scheme: HTTP
      httpHeaders: [{name: X-Probe, value: "1"}]
    initialDelaySeconds: 5
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
    successThreshold: 1
  readinessProbe:
    tcpSocket: {port: 80}
    successThreshold: 2
  startupProbe:
    exec: {command: [cat, /tmp/ready]}
  lifecycle:
    preStop:
      exec: {command: [nginx, -s, quit]}
`), ""},

		// Containers.
		{"containers is required", "Pod", pod("restartPolicy: Always\n"), "spec.containers: field is required"},
		{"containers may not be empty", "Pod", pod("containers: []\n"), "a pod needs at least one container"},
		{"image is required", "Pod", pod("containers: [{name: c}]\n"), "image: field is required"},
		{"image may not be empty", "Pod", pod("containers: [{name: c, image: \"\"}]\n"), "image: invalid value \"\""},
		{"container name is a DNS label", "Pod", pod("containers: [{name: Web_1, image: i}]\n"), "containers.0.name"},
		{"unknown container field", "Pod", podWith("imagePullPolice: Always\n"), "imagePullPolice: field not allowed"},
		{"Kubernetes field gitorch leaves out", "Pod", podWith("securityContext: {privileged: true}\n"), "securityContext: field not allowed"},
		{"hostPort is left out", "Pod", podWith("ports: [{containerPort: 80, hostPort: 8080}]\n"), "hostPort: field not allowed"},
		{"imagePullPolicy value", "Pod", podWith("imagePullPolicy: Sometimes\n"), "imagePullPolicy"},
		{"restartPolicy value", "Pod", pod("restartPolicy: Sometimes\ncontainers: [{name: c, image: i}]\n"), "restartPolicy"},
		{"negative grace period", "Pod", pod("terminationGracePeriodSeconds: -1\ncontainers: [{name: c, image: i}]\n"), "terminationGracePeriodSeconds"},
		{"command is a list of strings", "Pod", podWith("command: nginx -g daemon\n"), "command"},

		// Ports.
		{"containerPort 0", "Pod", podWith("ports: [{containerPort: 0}]\n"), "containerPort: invalid value 0"},
		{"containerPort above 65535", "Pod", podWith("ports: [{containerPort: 70000}]\n"), "containerPort: invalid value 70000"},
		{"containerPort as a string", "Pod", podWith("ports: [{containerPort: \"80\"}]\n"), "containerPort"},
		{"protocol is case-sensitive", "Pod", podWith("ports: [{containerPort: 80, protocol: tcp}]\n"), "protocol"},
		{"port name longer than 15", "Pod", podWith("ports: [{containerPort: 80, name: http-alternative-1}]\n"), "MaxRunes(15)"},
		{"port name without a letter", "Pod", podWith("ports: [{containerPort: 80, name: \"8080\"}]\n"), "ports.0.name"},
		{"port name with a double dash", "Pod", podWith("ports: [{containerPort: 80, name: a--b}]\n"), "ports.0.name"},

		// Environment.
		{"env value is a string", "Pod", podWith("env: [{name: N, value: 3}]\n"), "env.0.value"},
		{"env name may not hold =", "Pod", podWith("env: [{name: A=B, value: x}]\n"), "env.0.name"},
		{"env value and valueFrom", "Pod", podWith("env: [{name: N, value: x, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n"), "value and valueFrom may not both be set"},
		{"env valueFrom without a source", "Pod", podWith("env: [{name: N, valueFrom: {}}]\n"), "valueFrom needs a source"},
		{"env valueFrom with two sources", "Pod", podWith("env: [{name: N, valueFrom: {configMapKeyRef: {name: a, key: k}, secretKeyRef: {name: a, key: k}}}]\n"), "valueFrom has one source, not configMapKeyRef and secretKeyRef"},
		{"configMapKeyRef needs a key", "Pod", podWith("env: [{name: N, valueFrom: {configMapKeyRef: {name: a}}}]\n"), "key: field is required"},
		{"fieldRef path gitorch does not provide", "Pod", podWith("env: [{name: N, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}]\n"), "fieldPath"},
		{"fieldRef to a label", "Pod", podWith("env: [{name: N, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app.kubernetes.io/name']\"}}}]\n"), ""},
		{"fieldRef to all labels", "Pod", podWith("env: [{name: N, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}]\n"), "fieldPath"},
		{"resourceFieldRef", "Pod", podWith("resources: {limits: {memory: 1Gi}}\nenv: [{name: MEM, valueFrom: {resourceFieldRef: {containerName: c, resource: limits.memory, divisor: 1Mi}}}]\n"), ""},
		{"resourceFieldRef resource gitorch does not count", "Pod", podWith("env: [{name: N, valueFrom: {resourceFieldRef: {resource: limits.ephemeral-storage}}}]\n"), "resource"},
		{"envFrom without a source", "Pod", podWith("envFrom: [{prefix: X_}]\n"), "envFrom[0] needs a source"},
		{"envFrom with two sources", "Pod", podWith("envFrom: [{configMapRef: {name: a}, secretRef: {name: b}}]\n"), "envFrom has one source"},

		// Resources.
		{"quantities as numbers and strings", "Pod", podWith("resources:\n  requests: {cpu: 0.5, memory: 1e3}\n  limits: {cpu: \"2\", memory: 1.5Gi}\n"), ""},
		{"quantity forms", "Pod", podWith("resources:\n  requests: {cpu: .5, memory: 128974848}\n  limits: {cpu: 250m, memory: 129e6}\n"), ""},
		{"quantity with a unit Kubernetes does not know", "Pod", podWith("resources: {limits: {memory: 64MB}}\n"), "memory"},
		{"quantity with a space", "Pod", podWith("resources: {limits: {memory: 64 Mi}}\n"), "memory"},
		{"negative quantity", "Pod", podWith("resources: {requests: {cpu: -1}}\n"), "cpu"},
		{"resource gitorch does not count", "Pod", podWith("resources: {limits: {nvidia.com/gpu: 1}}\n"), "field not allowed"},

		// Volumes and mounts.
		{"volume with two sources", "Pod", pod("volumes: [{name: v, emptyDir: {}, hostPath: {path: /x}}]\ncontainers: [{name: c, image: i}]\n"), "volume v has one source, not emptyDir and hostPath"},
		{"volume source gitorch leaves out", "Pod", pod("volumes: [{name: v, persistentVolumeClaim: {claimName: data}}]\ncontainers: [{name: c, image: i}]\n"), "persistentVolumeClaim: field not allowed"},
		{"hostPath is absolute", "Pod", pod("volumes: [{name: v, hostPath: {path: var/log}}]\ncontainers: [{name: c, image: i}]\n"), "hostPath.path"},
		{"hostPath type value", "Pod", pod("volumes: [{name: v, hostPath: {path: /x, type: Folder}}]\ncontainers: [{name: c, image: i}]\n"), "hostPath.type"},
		{"hostPath types Kubernetes has", "Pod", pod("volumes:\n- {name: a, hostPath: {path: /run/docker.sock, type: Socket}}\n- {name: b, hostPath: {path: /dev/null, type: CharDevice}}\n- {name: c, hostPath: {path: /dev/sda, type: BlockDevice}}\n- {name: d, hostPath: {path: /var/log/x.log, type: FileOrCreate}}\ncontainers: [{name: c, image: i}]\n"), ""},
		{"configMap volume needs a name", "Pod", pod("volumes: [{name: v, configMap: {optional: true}}]\ncontainers: [{name: c, image: i}]\n"), "configMap.name: field is required"},
		{"secret volume needs secretName", "Pod", pod("volumes: [{name: v, secret: {name: s}}]\ncontainers: [{name: c, image: i}]\n"), "secret.name: field not allowed"},
		{"item path may not go up", "Pod", pod("volumes: [{name: v, configMap: {name: c, items: [{key: k, path: ../k}]}}]\ncontainers: [{name: c, image: i}]\n"), "items.0.path"},
		{"file mode above 0777", "Pod", pod("volumes: [{name: v, secret: {secretName: s, defaultMode: 01000}}]\ncontainers: [{name: c, image: i}]\n"), "defaultMode"},
		{"emptyDir medium value", "Pod", pod("volumes: [{name: v, emptyDir: {medium: Disk}}]\ncontainers: [{name: c, image: i}]\n"), "medium"},
		{"mountPath is required", "Pod", podWith("volumeMounts: [{name: v}]\n"), "mountPath: field is required"},
		{"subPath is relative", "Pod", podWith("volumeMounts: [{name: v, mountPath: /m, subPath: /etc}]\n"), "subPath"},
		{"subPath may not go up", "Pod", podWith("volumeMounts: [{name: v, mountPath: /m, subPath: a/../../etc}]\n"), "subPath"},

		// Probes and hooks.
		{"probe without a handler", "Pod", podWith("readinessProbe: {periodSeconds: 5}\n"), "readinessProbe needs a handler"},
		{"probe with two handlers", "Pod", podWith("livenessProbe: {exec: {command: [echo]}, tcpSocket: {port: 80}}\n"), "a probe has one handler, not exec and tcpSocket"},
		{"probe handler gitorch leaves out", "Pod", podWith("livenessProbe: {grpc: {port: 9000}}\n"), "grpc: field not allowed"},
		{"probe fields 0 mean the defaults", "Pod", podWith("readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 0, timeoutSeconds: 0, successThreshold: 0, failureThreshold: 0}\nlivenessProbe: {tcpSocket: {port: 80}, successThreshold: 0}\n"), ""},
		{"probe period negative", "Pod", podWith("readinessProbe: {tcpSocket: {port: 80}, periodSeconds: -1}\n"), "periodSeconds"},
		{"probe timeout negative", "Pod", podWith("readinessProbe: {tcpSocket: {port: 80}, timeoutSeconds: -5}\n"), "timeoutSeconds"},
		{"liveness successThreshold is 1", "Pod", podWith("livenessProbe: {tcpSocket: {port: 80}, successThreshold: 2}\n"), "successThreshold"},
		{"startup successThreshold is 1", "Pod", podWith("startupProbe: {tcpSocket: {port: 80}, successThreshold: 3}\n"), "successThreshold"},
		{"httpGet needs a port", "Pod", podWith("readinessProbe: {httpGet: {path: /}}\n"), "httpGet.port: field is required"},
		{"httpGet port by a bad name", "Pod", podWith("readinessProbe: {httpGet: {path: /, port: HTTP}}\n"), "httpGet.port"},
		{"httpGet scheme value", "Pod", podWith("readinessProbe: {httpGet: {port: 80, scheme: FTP}}\n"), "scheme"},
		{"exec needs a command", "Pod", podWith("livenessProbe: {exec: {command: []}}\n"), "command"},
		{"init containers have no probes", "Pod", pod("initContainers: [{name: i, image: i, readinessProbe: {tcpSocket: {port: 1}}}]\ncontainers: [{name: c, image: i}]\n"), "readinessProbe: field not allowed"},
		{"preStop with two handlers", "Pod", podWith("lifecycle: {preStop: {exec: {command: [x]}, httpGet: {port: 80}}}\n"), "a lifecycle hook has one handler"},
		{"postStart is left out", "Pod", podWith("lifecycle: {postStart: {exec: {command: [x]}}}\n"), "postStart: field not allowed"},

		// Placement.
		{"In needs values", "Pod", pod("affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: a, operator: In}]}]}}}\ncontainers: [{name: c, image: i}]\n"), "values: field is required"},
		{"Exists takes no values", "Pod", pod("affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: a, operator: Exists, values: [x]}]}]}}}\ncontainers: [{name: c, image: i}]\n"), "values"},
		{"Gt takes one integer", "Pod", pod("affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: a, operator: Gt, values: [four]}]}]}}}\ncontainers: [{name: c, image: i}]\n"), "values"},
		{"operator value", "Pod", pod("affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: a, operator: Equals, values: [x]}]}]}}}\ncontainers: [{name: c, image: i}]\n"), "operator"},
		{"required terms may not be empty", "Pod", pod("affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}}}\ncontainers: [{name: c, image: i}]\n"), "nodeSelectorTerms"},
		{"preference weight 0", "Pod", pod("affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 0, preference: {}}]}}\ncontainers: [{name: c, image: i}]\n"), "weight"},
		{"preference weight above 100", "Pod", pod("affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 101, preference: {}}]}}\ncontainers: [{name: c, image: i}]\n"), "weight"},
		{"pod affinity is left out", "Pod", pod("affinity: {podAntiAffinity: {}}\ncontainers: [{name: c, image: i}]\n"), "podAntiAffinity: field not allowed"},
		{"toleration Exists with a value", "Pod", pod("tolerations: [{key: k, operator: Exists, value: v}]\ncontainers: [{name: c, image: i}]\n"), "tolerations.0.value"},
		{"toleration without key needs Exists", "Pod", pod("tolerations: [{operator: Equal, value: v}]\ncontainers: [{name: c, image: i}]\n"), "tolerations.0.operator"},
		{"tolerationSeconds needs NoExecute", "Pod", pod("tolerations: [{key: k, operator: Exists, effect: NoSchedule, tolerationSeconds: 5}]\ncontainers: [{name: c, image: i}]\n"), "tolerations.0.effect"},
		{"toleration value is a label value", "Pod", pod("tolerations: [{key: k, operator: Equal, value: a b}]\ncontainers: [{name: c, image: i}]\n"), "tolerations.0.value"},
		{"toleration effect value", "Pod", pod("tolerations: [{key: k, operator: Exists, effect: NoRun}]\ncontainers: [{name: c, image: i}]\n"), "effect"},
		{"nodeSelector values are label values", "Pod", pod("nodeSelector: {disk: fast ssd}\ncontainers: [{name: c, image: i}]\n"), "nodeSelector.disk"},
		{"hostNetwork is left out", "Pod", pod("hostNetwork: true\ncontainers: [{name: c, image: i}]\n"), "hostNetwork: field not allowed"},

		// DNS.
		{"dnsPolicy ClusterFirst with dnsConfig", "Pod", pod("dnsPolicy: ClusterFirst\ndnsConfig: {nameservers: [192.0.2.53], searches: [corp.example.com], options: [{name: ndots, value: \"2\"}, {name: edns0}]}\ncontainers: [{name: c, image: i}]\n"), ""},
		{"dnsPolicy None with nameservers", "Pod", pod("dnsPolicy: None\ndnsConfig: {nameservers: [\"fd00::53\"]}\ncontainers: [{name: c, image: i}]\n"), ""},
		{"dnsPolicy None needs nameservers", "Pod", pod("dnsPolicy: None\ncontainers: [{name: c, image: i}]\n"), "dnsConfig"},
		{"dnsPolicy value", "Pod", pod("dnsPolicy: ClusterOnly\ncontainers: [{name: c, image: i}]\n"), "dnsPolicy"},
		{"dnsConfig nameservers are addresses", "Pod", pod("dnsConfig: {nameservers: [dns.example.com]}\ncontainers: [{name: c, image: i}]\n"), "nameservers.0"},
		{"dnsConfig at most 3 nameservers", "Pod", pod("dnsConfig: {nameservers: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4]}\ncontainers: [{name: c, image: i}]\n"), "nameservers"},
		{"dnsConfig option needs a name", "Pod", pod("dnsConfig: {options: [{value: \"1\"}]}\ncontainers: [{name: c, image: i}]\n"), "name"},
	})
}

func TestWorkloads(t *testing.T) {
	runCases(t, []docCase{
		// Deployment, and the rules that depend on apiVersion.
		{"Deployment apps/v1", "Deployment", workload("apps/v1", "Deployment", "replicas: 3\n"+selector+"\nminReadySeconds: 5\nrevisionHistoryLimit: 2\nprogressDeadlineSeconds: 600\nstrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}\n"), ""},
		{"Deployment selector with expressions", "Deployment", workload("apps/v1", "Deployment", "selector:\n  matchLabels: {app: w}\n  matchExpressions: [{key: tier, operator: NotIn, values: [db]}, {key: app, operator: Exists}]\n"), ""},
		{"Deployment apps/v1 requires a selector", "Deployment", workload("apps/v1", "Deployment", "replicas: 1\n"), "spec.selector: field is required"},
		{"Deployment apps/v1beta2 requires a selector", "Deployment", workload("apps/v1beta2", "Deployment", "replicas: 1\n"), "spec.selector: field is required"},
		{"Deployment apps/v1beta1 defaults the selector", "Deployment", workload("apps/v1beta1", "Deployment", "replicas: 1\n"), ""},
		{"Deployment extensions/v1beta1 defaults the selector", "Deployment", workload("extensions/v1beta1", "Deployment", "replicas: 1\n"), ""},
		{"Deployment extensions/v1beta1 with a selector", "Deployment", workload("extensions/v1beta1", "Deployment", selector+"\n"), ""},
		{"Deployment apiVersion it never had", "Deployment", workload("batch/v1", "Deployment", selector+"\n"), "apiVersion"},
		{"Deployment template is required", "Deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec: {" + selector + "}\n", "spec.template: field is required"},
		{"Deployment spec is required", "Deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\n", "spec.template: field is required"},
		{"Deployment replicas negative", "Deployment", workload("apps/v1", "Deployment", "replicas: -1\n"+selector+"\n"), "replicas: invalid value -1"},
		{"Deployment replicas as a string", "Deployment", workload("apps/v1", "Deployment", "replicas: \"3\"\n"+selector+"\n"), "replicas"},
		{"Deployment replicas fractional", "Deployment", workload("apps/v1", "Deployment", "replicas: 1.5\n"+selector+"\n"), "replicas"},
		{"Deployment strategy type value", "Deployment", workload("apps/v1", "Deployment", selector+"\nstrategy: {type: BlueGreen}\n"), "strategy.type"},
		{"Deployment Recreate with rollingUpdate", "Deployment", workload("apps/v1", "Deployment", selector+"\nstrategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}\n"), "rollingUpdate may not be set when strategy.type is Recreate"},
		{"Deployment maxSurge and maxUnavailable both 0", "Deployment", workload("apps/v1", "Deployment", selector+"\nstrategy: {rollingUpdate: {maxSurge: 0%, maxUnavailable: 0}}\n"), "maxUnavailable and maxSurge may not both be 0"},
		{"Deployment maxSurge percent without %", "Deployment", workload("apps/v1", "Deployment", selector+"\nstrategy: {rollingUpdate: {maxSurge: \"25\"}}\n"), "maxSurge"},
		{"Deployment selector In without values", "Deployment", workload("apps/v1", "Deployment", "selector: {matchExpressions: [{key: app, operator: In}]}\n"), "values: field is required"},
		{"Deployment paused", "Deployment", workload("apps/v1", "Deployment", selector+"\npaused: true\n"), ""},
		{"DaemonSet rollingUpdate maxUnavailable", "DaemonSet", workload("apps/v1", "DaemonSet", selector+"\nupdateStrategy: {rollingUpdate: {maxUnavailable: \"25%\"}}\n"), ""},
		{"DaemonSet maxUnavailable 0", "DaemonSet", workload("apps/v1", "DaemonSet", selector+"\nupdateStrategy: {rollingUpdate: {maxUnavailable: 0}}\n"), "maxUnavailable may not be 0"},
		{"Deployment template name is left out", "Deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  " + selector + "\n  template:\n    metadata: {name: x, labels: {app: w}}\n    spec: {containers: [{name: c, image: i}]}\n", "template.metadata.name: field not allowed"},
		{"Deployment template pod spec is checked", "Deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  " + selector + "\n  template:\n    spec: {containers: [{name: c}]}\n", "template.spec.containers.0.image: field is required"},

		// ReplicaSet.
		{"ReplicaSet apps/v1", "ReplicaSet", workload("apps/v1", "ReplicaSet", "replicas: 2\n"+selector+"\n"), ""},
		{"ReplicaSet apps/v1 requires a selector", "ReplicaSet", workload("apps/v1", "ReplicaSet", "replicas: 2\n"), "spec.selector: field is required"},
		{"ReplicaSet extensions/v1beta1 defaults the selector", "ReplicaSet", workload("extensions/v1beta1", "ReplicaSet", "replicas: 2\n"), ""},
		{"ReplicaSet never was apps/v1beta1", "ReplicaSet", workload("apps/v1beta1", "ReplicaSet", selector+"\n"), "apiVersion"},
		{"ReplicaSet has no strategy", "ReplicaSet", workload("apps/v1", "ReplicaSet", selector+"\nstrategy: {type: Recreate}\n"), "spec.strategy: field not allowed"},

		// ReplicationController.
		{"ReplicationController with a plain selector", "ReplicationController", workload("v1", "ReplicationController", "replicas: 2\nselector: {app: w}\n"), ""},
		{"ReplicationController without a selector", "ReplicationController", workload("v1", "ReplicationController", "replicas: 2\n"), ""},
		{"ReplicationController selector is not a LabelSelector", "ReplicationController", workload("v1", "ReplicationController", selector+"\n"), "selector.matchLabels"},
		{"ReplicationController template is required", "ReplicationController", "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: w}\nspec: {replicas: 1}\n", "spec.template: field is required"},
		{"ReplicationController is v1 only", "ReplicationController", workload("apps/v1", "ReplicationController", "replicas: 1\n"), "apiVersion"},

		// DaemonSet.
		{"DaemonSet apps/v1", "DaemonSet", workload("apps/v1", "DaemonSet", selector+"\nupdateStrategy: {type: OnDelete}\nminReadySeconds: 1\n"), ""},
		{"DaemonSet apps/v1 requires a selector", "DaemonSet", workload("apps/v1", "DaemonSet", "minReadySeconds: 1\n"), "spec.selector: field is required"},
		{"DaemonSet extensions/v1beta1 defaults the selector", "DaemonSet", workload("extensions/v1beta1", "DaemonSet", "minReadySeconds: 1\n"), ""},
		{"DaemonSet never was apps/v1beta1", "DaemonSet", workload("apps/v1beta1", "DaemonSet", selector+"\n"), "apiVersion"},
		{"DaemonSet has no replicas", "DaemonSet", workload("apps/v1", "DaemonSet", selector+"\nreplicas: 3\n"), "spec.replicas: field not allowed"},
		{"DaemonSet updateStrategy type value", "DaemonSet", workload("apps/v1", "DaemonSet", selector+"\nupdateStrategy: {type: Recreate}\n"), "updateStrategy.type"},

		// StatefulSet.
		{"StatefulSet apps/v1", "StatefulSet", workload("apps/v1", "StatefulSet", "serviceName: db\nreplicas: 3\n"+selector+"\npodManagementPolicy: Parallel\nupdateStrategy: {type: RollingUpdate}\n"), ""},
		{"StatefulSet apps/v1 requires a selector", "StatefulSet", workload("apps/v1", "StatefulSet", "serviceName: db\n"), "spec.selector: field is required"},
		{"StatefulSet apps/v1beta1 defaults the selector", "StatefulSet", workload("apps/v1beta1", "StatefulSet", "serviceName: db\n"), ""},
		{"StatefulSet never was extensions/v1beta1", "StatefulSet", workload("extensions/v1beta1", "StatefulSet", selector+"\n"), "apiVersion"},
		{"StatefulSet podManagementPolicy value", "StatefulSet", workload("apps/v1", "StatefulSet", selector+"\npodManagementPolicy: AllAtOnce\n"), "podManagementPolicy"},
		{"StatefulSet volumeClaimTemplates", "StatefulSet", workload("apps/v1", "StatefulSet", selector+"\nvolumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}]\n"), ""},
		{"StatefulSet volumeClaimTemplates are local: no ReadWriteMany", "StatefulSet", workload("apps/v1", "StatefulSet", selector+"\nvolumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteMany]}}]\n"), "accessModes"},
		{"StatefulSet rollingUpdate partition", "StatefulSet", workload("apps/v1", "StatefulSet", selector+"\nupdateStrategy: {rollingUpdate: {partition: 2, maxUnavailable: 1}}\n"), ""},
		{"StatefulSet OnDelete has no rollingUpdate", "StatefulSet", workload("apps/v1", "StatefulSet", selector+"\nupdateStrategy: {type: OnDelete, rollingUpdate: {partition: 2}}\n"), "rollingUpdate may not be set"},

		// CronJob and PodDisruptionBudget.
		{"CronJob", "CronJob", "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: \"*/5 * * * *\"\n  timeZone: Europe/Paris\n  concurrencyPolicy: Forbid\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: c, image: busybox}]\n", ""},
		{"CronJob @hourly", "CronJob", "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: \"@hourly\"\n  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}}\n", ""},
		{"CronJob's Job needs its restartPolicy", "CronJob", "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: \"@daily\"\n  jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: i}]}}}}\n", "restartPolicy: field is required"},
		{"PodDisruptionBudget", "PodDisruptionBudget", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec:\n  minAvailable: \"50%\"\n  selector: {matchLabels: {app: web}}\n", ""},
		{"PodDisruptionBudget with both bounds", "PodDisruptionBudget", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec:\n  minAvailable: 1\n  maxUnavailable: 1\n", "minAvailable and maxUnavailable exclude each other"},
		// Job.
		{"Job", "Job", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  completions: 3\n  parallelism: 2\n  backoffLimit: 4\n  activeDeadlineSeconds: 100\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: pi, image: perl, command: [perl, -e, print 1]}]\n", ""},
		{"Job restartPolicy OnFailure", "Job", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  template:\n    spec:\n      restartPolicy: OnFailure\n      containers: [{name: pi, image: perl}]\n", ""},
		{"Job restartPolicy Always", "Job", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  template:\n    spec:\n      restartPolicy: Always\n      containers: [{name: pi, image: perl}]\n", "restartPolicy"},
		{"Job restartPolicy is required", "Job", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  template:\n    spec:\n      containers: [{name: pi, image: perl}]\n", "restartPolicy: field is required"},
		{"Job backoffLimit negative", "Job", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  backoffLimit: -1\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: pi, image: perl}]\n", "backoffLimit"},
		{"Job is batch/v1", "Job", "apiVersion: batch/v1beta1\nkind: Job\nmetadata: {name: pi}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: pi, image: perl}]\n", "apiVersion"},
		{"Job ttlSecondsAfterFinished and suspend", "Job", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  ttlSecondsAfterFinished: 10\n  suspend: false\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: pi, image: perl}]\n", ""},
		{"Job Indexed completion mode is left out", "Job", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  completionMode: Indexed\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: pi, image: perl}]\n", "completionMode"},

		// CronJob.
		{"CronJob", "CronJob", "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: hello}\nspec:\n  schedule: \"*/1 * * * *\"\n  timeZone: Europe/Berlin\n  concurrencyPolicy: Forbid\n  startingDeadlineSeconds: 30\n  suspend: false\n  successfulJobsHistoryLimit: 3\n  failedJobsHistoryLimit: 1\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: hello, image: busybox}]\n", ""},
		{"CronJob schedule is required", "CronJob", "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: hello}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: hello, image: busybox}]\n", "schedule: field is required"},
		{"CronJob concurrencyPolicy value", "CronJob", "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: hello}\nspec:\n  schedule: \"@hourly\"\n  concurrencyPolicy: Queue\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: hello, image: busybox}]\n", "concurrencyPolicy"},
		{"CronJob jobTemplate pods say restartPolicy", "CronJob", "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: hello}\nspec:\n  schedule: \"@hourly\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{name: hello, image: busybox}]\n", "restartPolicy: field is required"},
		{"CronJob is batch/v1", "CronJob", "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {name: hello}\nspec:\n  schedule: \"@hourly\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: hello, image: busybox}]\n", "apiVersion"},

		// PodDisruptionBudget.
		{"PodDisruptionBudget minAvailable", "PodDisruptionBudget", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  minAvailable: 2\n", ""},
		{"PodDisruptionBudget maxUnavailable percent", "PodDisruptionBudget", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  maxUnavailable: \"25%\"\n", ""},
		{"PodDisruptionBudget not both", "PodDisruptionBudget", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  minAvailable: 1\n  maxUnavailable: 1\n", "exclude each other"},
	})
}

// service is a Service with the given spec.
func service(spec string) string {
	return "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n" + indent(spec, "  ")
}

func TestService(t *testing.T) {
	runCases(t, []docCase{
		{"ClusterIP", "Service", service("selector: {app: web}\nports: [{port: 80, targetPort: 8080}]\n"), ""},
		{"named ports and target port names", "Service", service("type: ClusterIP\nselector: {app: web}\nports:\n- {name: http, port: 80, targetPort: http, protocol: TCP}\n- {name: dns, port: 53, targetPort: 5353, protocol: UDP}\n"), ""},
		{"NodePort with a nodePort", "Service", service("type: NodePort\nselector: {app: web}\nports: [{port: 80, nodePort: 30001}]\n"), ""},
		{"LoadBalancer is served as NodePort", "Service", service("type: LoadBalancer\nselector: {app: web}\nports: [{port: 80, nodePort: 32767}]\n"), ""},
		{"fixed clusterIP", "Service", service("clusterIP: 10.96.0.10\nports: [{port: 53}]\n"), ""},
		{"headless without ports", "Service", service("clusterIP: None\nselector: {app: db}\n"), ""},
		{"headless is ClusterIP only", "Service", service("type: NodePort\nclusterIP: None\nports: [{port: 80}]\n"), "clusterIP None (headless) may only be used with type ClusterIP"},
		{"without a selector", "Service", service("ports: [{port: 80}]\n"), ""},
		{"nodePort 0 means allocate", "Service", service("ports: [{port: 80, nodePort: 0}]\n"), ""},
		{"spec is required", "Service", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n", "spec: field is required"},
		{"ports are required unless headless", "Service", service("selector: {app: web}\n"), "spec.ports: field is required"},
		{"ports may not be empty", "Service", service("ports: []\n"), "spec.ports"},
		{"ExternalName", "Service", service("type: ExternalName\nexternalName: db.example.com\n"), ""},
		{"ExternalName with ports", "Service", service("type: ExternalName\nexternalName: db.example.com.\nports: [{port: 5432}]\n"), ""},
		{"ExternalName needs externalName", "Service", service("type: ExternalName\n"), "externalName"},
		{"ExternalName is a DNS name", "Service", service("type: ExternalName\nexternalName: \"db example\"\n"), "externalName"},
		{"ExternalName has no clusterIP", "Service", service("type: ExternalName\nexternalName: db.example.com\nclusterIP: 10.96.0.5\n"), "clusterIP may not be set"},
		{"externalName without the type", "Service", service("externalName: db.example.com\nports: [{port: 80}]\n"), "externalName may only be set"},
		{"name is a DNS-1035 label", "Service", "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec: {ports: [{port: 80}]}\n", "metadata.name"},
		{"name without dots", "Service", "apiVersion: v1\nkind: Service\nmetadata: {name: web.shop}\nspec: {ports: [{port: 80}]}\n", "metadata.name"},
		{"port 0", "Service", service("ports: [{port: 0}]\n"), "port: invalid value 0"},
		{"targetPort 0", "Service", service("ports: [{port: 80, targetPort: 0}]\n"), "targetPort"},
		{"targetPort name too long", "Service", service("ports: [{port: 80, targetPort: http-alternative-port}]\n"), "targetPort"},
		{"nodePort outside the range", "Service", service("type: NodePort\nports: [{port: 80, nodePort: 8080}]\n"), "nodePort"},
		{"nodePort on a ClusterIP Service", "Service", service("type: ClusterIP\nports: [{port: 80, nodePort: 30001}]\n"), "nodePort may only be set when type is NodePort or LoadBalancer"},
		{"nodePort with the default type", "Service", service("ports: [{port: 80, nodePort: 30001}]\n"), "nodePort may only be set when type is NodePort or LoadBalancer"},
		{"two ports need names", "Service", service("ports: [{name: http, port: 80}, {port: 443}]\n"), "ports[1] (port 443) needs a name"},
		{"port names are unique", "Service", service("ports: [{name: http, port: 80}, {name: http, port: 8080}]\n"), "ports[0] and ports[1] have the same name http"},
		{"port name is a DNS label", "Service", service("ports: [{name: HTTP, port: 80}]\n"), "ports.0.name"},
		{"protocol value", "Service", service("ports: [{port: 80, protocol: HTTP}]\n"), "protocol"},
		{"clusterIP must be an address", "Service", service("clusterIP: 10.0.0.300\nports: [{port: 80}]\n"), "clusterIP"},
		{"selector values are label values", "Service", service("selector: {app: web server}\nports: [{port: 80}]\n"), "selector.app"},
		{"sessionAffinity ClientIP with its timeout", "Service", service("sessionAffinity: ClientIP\nsessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\nports: [{port: 80}]\n"), ""},
		{"sessionAffinity None", "Service", service("sessionAffinity: None\nports: [{port: 80}]\n"), ""},
		{"sessionAffinity value", "Service", service("sessionAffinity: Cookie\nports: [{port: 80}]\n"), "sessionAffinity"},
		{"affinity timeout at most a day", "Service", service("sessionAffinity: ClientIP\nsessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}\nports: [{port: 80}]\n"), "timeoutSeconds"},
		{"affinity timeout positive", "Service", service("sessionAffinity: ClientIP\nsessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\nports: [{port: 80}]\n"), "timeoutSeconds"},
		{"sessionAffinityConfig needs ClientIP", "Service", service("sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\nports: [{port: 80}]\n"), "sessionAffinityConfig may only be set when sessionAffinity is ClientIP"},
		{"sessionAffinityConfig not with None", "Service", service("sessionAffinity: None\nsessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\nports: [{port: 80}]\n"), "sessionAffinityConfig may only be set when sessionAffinity is ClientIP"},
		{"externalTrafficPolicy Local on a NodePort", "Service", service("type: NodePort\nexternalTrafficPolicy: Local\nports: [{port: 80}]\n"), ""},
		{"externalTrafficPolicy Cluster on a LoadBalancer", "Service", service("type: LoadBalancer\nexternalTrafficPolicy: Cluster\nports: [{port: 80}]\n"), ""},
		{"externalTrafficPolicy value", "Service", service("type: NodePort\nexternalTrafficPolicy: Node\nports: [{port: 80}]\n"), "externalTrafficPolicy"},
		{"externalTrafficPolicy on a ClusterIP Service", "Service", service("type: ClusterIP\nexternalTrafficPolicy: Local\nports: [{port: 80}]\n"), "externalTrafficPolicy may only be set when type is NodePort or LoadBalancer"},
		{"externalTrafficPolicy with the default type", "Service", service("externalTrafficPolicy: Local\nports: [{port: 80}]\n"), "externalTrafficPolicy may only be set when type is NodePort or LoadBalancer"},
		{"externalIPs are left out", "Service", service("externalIPs: [192.0.2.1]\nports: [{port: 80}]\n"), "externalIPs: field not allowed"},
	})
}

func TestConfig(t *testing.T) {
	runCases(t, []docCase{
		{"ConfigMap", "ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\ndata:\n  level: info\n  nginx.conf: |\n    server { listen 80; }\n  EMPTY: \"\"\nbinaryData:\n  logo.png: iVBORw0KGgo=\n", ""},
		{"ConfigMap data values are strings", "ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {replicas: 3}\n", "data.replicas"},
		{"ConfigMap key with a slash", "ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {conf/a: x}\n", "invalid key conf/a"},
		{"ConfigMap binaryData is base64", "ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nbinaryData: {a: not base64!}\n", "binaryData.a"},
		{"ConfigMap without data", "ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", ""},
		{"ConfigMap immutable is left out", "ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nimmutable: true\n", "immutable: field not allowed"},
		{"ConfigMap data misspelt", "ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndate: {a: b}\n", "date: field not allowed"},
		{"Secret", "Secret", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\ndata: {password: cGFzc3dvcmQ=, user: YWRtaW4=}\nstringData: {token: plain text}\n", ""},
		{"Secret data on several lines", "Secret", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: |\n    LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t\n    LS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQ==\n  tls.key: \"\"\n", ""},
		{"Secret data is base64", "Secret", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: hunter 2!}\n", "data.password"},
		{"Secret data without padding", "Secret", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: cGFzc3dvcmQ}\n", "data.password"},
		{"Secret data padded in the middle", "Secret", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: YQ==YQ==}\n", "data.password"},
		{"Secret stringData values are strings", "Secret", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {port: 5432}\n", "stringData.port"},
		{"Secret type is a string", "Secret", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: 1\n", "type"},
		{"Namespace", "Namespace", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: web}}\n", ""},
		{"Namespace name is a DNS label", "Namespace", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop.example}\n", "metadata.name"},
		{"Namespace has no namespace", "Namespace", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, namespace: default}\n", "metadata.namespace: field not allowed"},
		{"Namespace spec is left out", "Namespace", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\nspec: {finalizers: [kubernetes]}\n", "spec: field not allowed"},
	})
}

// TestManifest checks that #Manifest, for the cue command, applies the
// definition of each document's kind.
func TestManifest(t *testing.T) {
	runCases(t, []docCase{
		{"Pod", "Manifest", podWith(""), ""},
		{"Deployment", "Manifest", workload("apps/v1", "Deployment", selector+"\n"), ""},
		{"Deployment rules apply", "Manifest", workload("apps/v1", "Deployment", "replicas: 1\n"), "spec.selector: field is required"},
		{"Service", "Manifest", service("ports: [{port: 80}]\n"), ""},
		{"Service rules apply", "Manifest", service("externalIPs: [192.0.2.1]\nports: [{port: 80}]\n"), "externalIPs: field not allowed"},
		{"Secret", "Manifest", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: b}\n", ""},
		{"Namespace", "Manifest", "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n", ""},
		{"Job", "Manifest", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {template: {spec: {containers: [{name: c, image: i}]}}}\n", "restartPolicy: field is required"},
		{"kind gitorch does not support", "Manifest", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n", "kind"},
		{"kind is required", "Manifest", "{}\n", "kind: field is required"},
	})
	for _, k := range kinds {
		t.Run("dispatches "+k, func(t *testing.T) {
			pkg := compile(t, cuecontext.New())
			doc := "kind: " + k + "\n"
			err := check(t, pkg, "Manifest", doc)
			if err == nil || !strings.Contains(errors.Details(err, nil), "apiVersion: field is required") {
				t.Errorf("#Manifest did not apply #%s: %v", k, errors.Details(err, nil))
			}
		})
	}
}
