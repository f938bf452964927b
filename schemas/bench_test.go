package schemas

import (
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/encoding/yaml"
)

// benchDocs are the shapes a repository is mostly made of.
var benchDocs = []struct{ kind, doc string }{
	{"Deployment", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  labels: {app: app, tier: backend}
spec:
  replicas: 3
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app, tier: backend}
    spec:
      containers:
      - name: main
        image: registry.example/app:1
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 8080
          name: http
        env:
        - name: MODE
          value: production
        - name: LEVEL
          valueFrom:
            configMapKeyRef: {name: app, key: level}
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {memory: 128Mi}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 5
`},
	{"Service", `apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector: {app: app}
  ports:
  - name: http
    port: 80
    targetPort: http
`},
	{"ConfigMap", `apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  level: info
`},
}

// BenchmarkValidate checks a Deployment, a Service and a ConfigMap per
// iteration: decode, unify with the definition, validate. "cue" is the
// whole package, as the cue command reads it; "gitorch" leaves out
// GuardsFile, as pkg/schema does (it applies those rules in Go).
func BenchmarkValidate(b *testing.B) {
	for _, c := range []struct{ name, skip string }{{"cue", ""}, {"gitorch", GuardsFile}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := cuecontext.New()
			pkg := compileWithout(b, ctx, c.skip)
			defs := map[string]cue.Value{}
			for _, d := range benchDocs {
				defs[d.kind] = pkg.LookupPath(cue.ParsePath("#" + d.kind))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, d := range benchDocs {
					f, err := yaml.Extract(d.kind+".yaml", []byte(d.doc))
					if err != nil {
						b.Fatal(err)
					}
					if err := defs[d.kind].Unify(ctx.BuildFile(f)).Validate(cue.Concrete(true)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(len(benchDocs)*b.N)/b.Elapsed().Seconds(), "objects/s")
		})
	}
}
