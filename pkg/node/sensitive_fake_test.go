package node_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/schema"
	"k8s.io/apimachinery/pkg/runtime"
)

// secretApp is a Secret and a Deployment that takes its values every way a
// pod can: one key as an env variable, all keys through envFrom, one
// variable expanded into another, and a secret volume.
const secretApp = `apiVersion: v1
kind: Secret
metadata: {name: db}
data:
  password: %s
  %s: %s
stringData:
  token: %s
  b64: %s
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - name: app
        image: busybox:1.36
        env:
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
        - name: DB_URL
          value: postgres://app:$(DB_PASSWORD)@db/app
        envFrom:
        - {prefix: S_, secretRef: {name: db}}
        volumeMounts:
        - {name: creds, mountPath: /creds}
      volumes:
      - name: creds
        secret: {secretName: db}
`

func secretRevision(password, otherKey, other, token, b64 string) map[string]string {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	return map[string]string{"app.yaml": fmt.Sprintf(secretApp, enc(password), otherKey, enc(other), token, b64)}
}

// lockedBuffer is a log destination shared by the agent's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) contains(s string) bool { return strings.Contains(b.String(), s) }

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type noLogs struct{}

func (noLogs) LogFile(namespace, pod, container string, _ bool) (string, error) {
	return "", fmt.Errorf("%s/%s/%s: %w", namespace, pod, container, apply.ErrNotFound)
}

// TestFakeAgentNeverShowsSecretValues runs an agent through a Secret that
// changes, gains and loses keys, and then a revision whose Secret is
// wrong, and looks for every value — plain, base64 and base64-decoded — in
// everything the node shows: its status and cluster view, every API
// endpoint, its events, its log, its data directory, the plan of the
// change and the findings of the refused revision. The values do reach the
// runtime, so they are in memory where the test looks.
func TestFakeAgentNeverShowsSecretValues(t *testing.T) {
	// b64 values are base64 themselves: the decoded form is sought too.
	values := []string{
		"hunter2-plain-7Q4Z", "correct-horse-9XK2", "removed-value-31J8", "added-value-55PW",
		"tok-ABC-123-stringdata", "tok-DEF-456-stringdata",
		base64.StdEncoding.EncodeToString([]byte("inside-b64-one-Z81")), base64.StdEncoding.EncodeToString([]byte("inside-b64-two-Q07")),
		"987650123", "leaky-list-value-R2D2",
	}
	n := newFakeNode(t)
	logs := &lockedBuffer{}
	rev1 := secretRevision(values[0], "old", values[2], values[4], values[6])
	rev2 := secretRevision(values[1], "new", values[3], values[5], values[7])
	n.src.commit(rev1)
	ag, _ := n.start(t, func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	waitFor(t, "the pod running", func() bool { return countPhase(ag, plan.PhaseRunning) == 1 })
	second := n.src.commit(rev2)
	ag.Sync()
	waitFor(t, "the second revision", func() bool { r := ag.Status().Running; return r != nil && r.Commit == second })
	var pod plan.PodStatus
	for _, p := range podsOf(ag) {
		pod = p
	}
	waitFor(t, "the new volume files", func() bool { return n.rt.VolumesRevision("default", pod.Name) == second })

	// The values are where they belong: the container's environment and
	// its volume files.
	spec, ok := n.rt.Spec("default", pod.Name)
	if !ok {
		t.Fatalf("the runtime has no pod %s: %v", pod.Name, n.rt.Ops())
	}
	inRuntime := fmt.Sprint(spec.Containers[0].Env)
	for _, v := range spec.Volumes {
		for _, f := range v.Files {
			inRuntime += " " + f.Path + "=" + string(f.Data)
		}
	}
	for _, want := range []string{"DB_PASSWORD=" + values[1], "DB_URL=postgres://app:" + values[1] + "@db/app", "S_token=" + values[5], "password=" + values[1], "token=" + values[5]} {
		if !strings.Contains(inRuntime, want) {
			t.Errorf("the runtime lacks %q: %s", want, inRuntime)
		}
	}

	bad := map[string]string{"app.yaml": strings.Replace(
		strings.Replace(rev2["app.yaml"], "  token: "+values[5], "  token: ["+values[9]+"]", 1),
		"  password: "+base64.StdEncoding.EncodeToString([]byte(values[1])), "  password: "+values[8], 1)}
	refused := n.src.commit(bad)
	ag.Sync()
	waitFor(t, "the refusal", func() bool { r := ag.Status().Refused; return r != nil && r.Commit == refused })
	errs := strings.Join(ag.Status().Refused.Errors, "\n")
	for _, want := range []string{"app.yaml:5:13: Secret/default/db: data.password: mismatched types", "stringData.token: mismatched types list and string"} {
		if !strings.Contains(errs, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, errs)
		}
	}

	outputs := map[string]string{"log": logs.String(), "refused": errs}
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	outputs["Status"], outputs["Cluster"] = js(ag.Status()), js(ag.Cluster())
	evs, _ := ag.Events(0)
	outputs["Events"] = js(evs)

	var served []byte
	api := httptest.NewServer(node.NewAPI(ag, noLogs{}, node.APIOptions{RevisionFiles: ag.RevisionFiles, Events: ag, Metrics: ag.Metrics(), Ready: ag.Ready}))
	defer api.Close()
	for _, p := range []string{"/v1/status", "/v1/cluster", "/v1/events", "/v1/revision/files", "/metrics", "/readyz",
		"/v1/pods/default/" + pod.Name + "/logs", "/v1/pods/default/" + pod.Name + "/logs?container=app&previous=true"} {
		resp, err := http.Get(api.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		outputs["GET "+p] = fmt.Sprint(resp.Header) + "\n" + string(b)
		if p == "/v1/revision/files" {
			served = b
		}
	}

	err := filepath.WalkDir(n.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		outputs["file "+p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The plan of the change, as 'gitorch plan --against' writes it.
	// The running revision's files, as 'gitorch plan' reads them from the
	// node: the same Secret as the second revision, a changed one against
	// the first.
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(served))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("revision files: %v", err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	load := func(files map[string]string) []runtime.Object {
		fsys := fstest.MapFS{}
		for name, data := range files {
			fsys[name] = &fstest.MapFile{Data: []byte(data)}
		}
		res, err := schema.Load(fsys, schema.Options{})
		if err != nil || res.Errors() > 0 {
			t.Fatalf("load: %v %v", err, res.Findings)
		}
		return res.RuntimeObjects()
	}
	p := plan.Build(load(rev1), load(rev2), nil, nil, plan.Options{})
	var text, pj bytes.Buffer
	if err := p.WriteText(&text, false); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteJSON(&pj); err != nil {
		t.Fatal(err)
	}
	outputs["plan"], outputs["plan -o json"] = text.String(), pj.String()
	for _, line := range []string{"data.new: (sensitive, added)", "data.old: (sensitive, removed)", "data.password: (sensitive, changed)", "data.token: (sensitive, changed)", "data.b64: (sensitive, changed)"} {
		if !strings.Contains(text.String(), line) {
			t.Errorf("the plan does not say %q:\n%s", line, text.String())
		}
	}

	live := load(files)
	if d := plan.Diff(live, load(rev2)); len(d) != 0 {
		t.Errorf("the served revision differs from the one it runs: %+v", d)
	}
	want := []plan.FieldChange{
		{Path: "data.b64", Sensitive: plan.SensitiveChanged}, {Path: "data.new", Sensitive: plan.SensitiveAdded},
		{Path: "data.old", Sensitive: plan.SensitiveRemoved}, {Path: "data.password", Sensitive: plan.SensitiveChanged},
		{Path: "data.token", Sensitive: plan.SensitiveChanged},
	}
	if d := plan.Diff(load(rev1), live); len(d) != 1 || !reflect.DeepEqual(d[0].Fields, want) {
		t.Errorf("the served revision against the first: %+v", d)
	}

	if len(outputs) < 15 {
		t.Fatalf("only %d outputs looked at", len(outputs))
	}
	for _, v := range values {
		forms := []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v))}
		if b, err := base64.StdEncoding.DecodeString(v); err == nil {
			forms = append(forms, string(b))
		}
		for name, out := range outputs {
			for _, form := range forms {
				if strings.Contains(out, form) {
					t.Errorf("%s shows %q (of %q)", name, form, v)
				}
			}
		}
	}
}

// TestRevisionFilesServeACUESecretAsItsObjects: CUE source cannot be
// rewritten value by value, so a directory whose CUE defines a Secret is
// served as its objects; they load into what runs, and hold no value.
func TestRevisionFilesServeACUESecretAsItsObjects(t *testing.T) {
	n := newFakeNode(t)
	rev := map[string]string{
		"app/app.cue": `package app
secret: {apiVersion: "v1", kind: "Secret", metadata: name: "db", stringData: password: "cue-hunter2-K9"}
deploy: {
	apiVersion: "apps/v1", kind: "Deployment", metadata: name: "api"
	spec: {replicas: 1, selector: matchLabels: app: "api", template: {metadata: labels: app: "api", spec: containers: [{name: "a", image: "busybox:1.36", env: [{name: "P", valueFrom: secretKeyRef: {name: "db", key: "password"}}]}]}}
}
`,
		"app/more.cue": "package app\nsvc: {apiVersion: \"v1\", kind: \"Service\", metadata: name: \"api\", spec: {selector: app: \"api\", ports: [{port: 80}]}}\n",
		"web.yaml":     fmt.Sprintf(webDeployment, 1, "busybox:1.36"),
	}
	n.src.commit(rev)
	ag, _ := n.start(t)
	waitFor(t, "2 pods running", func() bool { return countPhase(ag, plan.PhaseRunning) == 2 })
	var buf bytes.Buffer
	if _, err := ag.RevisionFiles(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	served := fstest.MapFS{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		served[h.Name] = &fstest.MapFile{Data: b}
	}
	var names []string
	for name := range served {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"app/" + schema.CUEObjectsFile, "web.yaml"}; !slices.Equal(names, want) {
		t.Fatalf("served %v, want %v", names, want)
	}
	for _, form := range []string{"cue-hunter2-K9", base64.StdEncoding.EncodeToString([]byte("cue-hunter2-K9"))} {
		if strings.Contains(string(served["app/"+schema.CUEObjectsFile].Data), form) {
			t.Errorf("the served objects hold %q", form)
		}
	}
	local := fstest.MapFS{}
	for name, data := range rev {
		local[name] = &fstest.MapFile{Data: []byte(data)}
	}
	a, err := schema.Load(local, schema.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := schema.Load(served, schema.Options{})
	if err != nil || b.Errors() > 0 || len(b.Objects) != 4 {
		t.Fatalf("the served files load with %v, %v", err, b.Findings)
	}
	if d := plan.Diff(a.RuntimeObjects(), b.RuntimeObjects()); len(d) != 0 {
		t.Errorf("the served files differ from what runs: %+v", d)
	}
}
