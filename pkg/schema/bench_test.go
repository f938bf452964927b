package schema

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"go.yaml.in/yaml/v3"
)

// generatedTree makes n objects in n/3 files: a Deployment, its Service and
// a ConfigMap per file, the shapes the examples use.
func generatedTree(n int) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := 0; i*3 < n; i++ {
		var b bytes.Buffer
		fmt.Fprintf(&b, `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%[1]d
  labels: {app: app-%[1]d, tier: backend}
spec:
  replicas: 3
  selector:
    matchLabels: {app: app-%[1]d}
  template:
    metadata:
      labels: {app: app-%[1]d, tier: backend}
    spec:
      containers:
      - name: main
        image: registry.example/app:%[1]d
        imagePullPolicy: IfNotPresent
        ports:
        - containerPort: 8080
          name: http
        env:
        - name: MODE
          value: production
        - name: LEVEL
          valueFrom:
            configMapKeyRef: {name: app-%[1]d, key: level}
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {memory: 128Mi}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 5
---
apiVersion: v1
kind: Service
metadata:
  name: app-%[1]d
spec:
  selector: {app: app-%[1]d}
  ports:
  - name: http
    port: 80
    targetPort: http
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-%[1]d
data:
  level: info
`, i)
		fsys[fmt.Sprintf("apps/app-%05d.yaml", i)] = &fstest.MapFile{Data: b.Bytes()}
	}
	return fsys
}

// BenchmarkLoad validates 10,000 objects; objects/s is the figure to read,
// cpu-s the CPU time of one load (all cores), peak-MB the process's peak
// RSS (run it alone: go test -bench 'Load$').
func BenchmarkLoad(b *testing.B) {
	fsys := generatedTree(10000)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	var objs int
	for i := 0; i < b.N; i++ {
		res, err := Load(fsys, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors() > 0 {
			b.Fatalf("generated tree invalid: %v", res.Findings[0])
		}
		objs = len(res.Objects)
	}
	b.ReportMetric(float64(objs*b.N)/b.Elapsed().Seconds(), "objects/s")
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s")
	b.ReportMetric(peakRSS(), "peak-MB")
}

// BenchmarkYAMLDecode is the floor Load is compared with: a plain YAML
// decode of the same files into generic maps, on as many cores. Run it
// alone for its peak-MB.
func BenchmarkYAMLDecode(b *testing.B) {
	fsys := generatedTree(10000)
	var files [][]byte
	for _, f := range fsys {
		files = append(files, f.Data)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	var objs int
	for i := 0; i < b.N; i++ {
		objs = 0
		results := make(chan int, len(files))
		sem := make(chan struct{}, 2)
		for _, data := range files {
			sem <- struct{}{}
			go func(data []byte) {
				defer func() { <-sem }()
				n := 0
				dec := yaml.NewDecoder(bytes.NewReader(data))
				for {
					var m map[string]any
					if err := dec.Decode(&m); err == io.EOF {
						break
					} else if err != nil {
						panic(err)
					}
					n++
				}
				results <- n
			}(data)
		}
		for range files {
			objs += <-results
		}
	}
	b.ReportMetric(float64(objs*b.N)/b.Elapsed().Seconds(), "objects/s")
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s")
	b.ReportMetric(peakRSS(), "peak-MB")
}

// BenchmarkCueVet runs the cue command on the same tree with the same
// schemas (cue vet -c -d '#Manifest'), a second anchor for Load. It needs
// the cue binary of the CUE version in go.mod, from $CUE or the PATH:
//
//	go install cuelang.org/go/cmd/cue@v0.17.1
func BenchmarkCueVet(b *testing.B) {
	bin := os.Getenv("CUE")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("cue"); err != nil {
			b.Skip("no cue binary: go install cuelang.org/go/cmd/cue@v0.17.1, or set CUE")
		}
	}
	dir := b.TempDir()
	fsys := generatedTree(10000)
	args := []string{"vet", "-c", "-d", "#Manifest", "../../schemas"}
	objs := 0
	for name, f := range fsys {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			b.Fatal(err)
		}
		args = append(args, p)
		objs += 3
	}
	b.ResetTimer()
	var cpu time.Duration
	var peak float64
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(bin, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("cue vet: %v\n%.2000s", err, out)
		}
		c, p := childUsage(cmd.ProcessState)
		cpu += c
		peak = max(peak, p)
	}
	b.ReportMetric(float64(objs*b.N)/b.Elapsed().Seconds(), "objects/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s")
	b.ReportMetric(peak, "peak-MB")
}
