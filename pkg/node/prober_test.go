package node

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/clock/clocktest"
	"github.com/gitorch/gitorch/pkg/plan"
)

// fakeExec answers exec probes with the exit code in code.
type fakeExec struct {
	code  atomic.Int32
	calls atomic.Int32
}

func (f *fakeExec) Exec(_ context.Context, _, _, _ string, cmd []string, _ time.Duration) (apply.ExecResult, error) {
	f.calls.Add(1)
	return apply.ExecResult{ExitCode: uint32(f.code.Load()), Output: []byte("out of " + strings.Join(cmd, " "))}, nil
}

// server starts an HTTP server on 127.0.0.1 and returns a target for it.
func server(t *testing.T, h http.HandlerFunc) ProbeTarget {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	u, _ := url.Parse(s.URL)
	port, _ := strconv.Atoi(u.Port())
	return ProbeTarget{Namespace: "default", Pod: "p", Container: "c", PodIP: netip.MustParseAddr("127.0.0.1"),
		Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(port)}}}
}

func httpGetProbe(port intstr.IntOrString, path string) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: port}}, TimeoutSeconds: 1}
}

func TestHTTPProbe(t *testing.T) {
	var gotHeader atomic.Value
	tgt := server(t, func(w http.ResponseWriter, r *http.Request) {
		gotHeader.Store(r.Header.Get("X-Check"))
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(204)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/away":
			http.Redirect(w, r, "http://192.0.2.1:9/elsewhere", http.StatusFound)
		case "/slow":
			time.Sleep(1500 * time.Millisecond)
		default:
			http.Error(w, "broken\nsecond line", 503)
		}
	})
	named := intstr.FromString("web")
	cases := []struct {
		name, path string
		port       intstr.IntOrString
		wantErr    string
	}{
		{"a 2xx status passes", "/ok", named, ""},
		{"a redirect to the same host is followed", "/moved", named, ""},
		{"a redirect to another host passes without being followed", "/away", named, ""},
		{"a 5xx status fails with the status and the body's first line", "/bad", named, "HTTP probe failed with statuscode: 503: broken"},
		{"a port by number", "/ok", intstr.FromInt32(tgt.Ports[0].ContainerPort), ""},
		{"an unknown port name fails", "/ok", intstr.FromString("nope"), `no container port named "nope"`},
		{"a response slower than the timeout fails", "/slow", named, "Client.Timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := httpGetProbe(c.port, c.path)
			p.TimeoutSeconds = 1
			p.HTTPGet.HTTPHeaders = []corev1.HTTPHeader{{Name: "X-Check", Value: "yes"}}
			err := probeOnce(context.Background(), nil, p, tgt)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("failed: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
	if gotHeader.Load() != "yes" {
		t.Errorf("header X-Check not sent: %v", gotHeader.Load())
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	tgt := ProbeTarget{PodIP: netip.MustParseAddr("127.0.0.1")}
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(port)}}, TimeoutSeconds: 1}
	if err := probeOnce(context.Background(), nil, p, tgt); err != nil {
		t.Fatalf("open port: %v", err)
	}
	ln.Close()
	if err := probeOnce(context.Background(), nil, p, tgt); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("closed port: %v, want connection refused", err)
	}
}

func TestExecProbe(t *testing.T) {
	ex := &fakeExec{}
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"check"}}}, TimeoutSeconds: 1}
	if err := probeOnce(context.Background(), ex, p, ProbeTarget{}); err != nil {
		t.Fatal(err)
	}
	ex.code.Store(2)
	err := probeOnce(context.Background(), ex, p, ProbeTarget{})
	if err == nil || err.Error() != `command ["check"] exited with 2: out of check` {
		t.Fatalf("error %v", err)
	}
}

// fakeClock fires the waits of the prober when the test says so, and
// records how long each was.
type fakeClock struct {
	*clocktest.Fake
	mu    sync.Mutex
	waits []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{Fake: clocktest.New(time.Unix(0, 0))} }

// waitFor waits until n probe goroutines wait.
func (c *fakeClock) waitFor(t *testing.T, n int) { c.BlockUntil(t, n) }

// tick waits until n probe goroutines wait, then fires all their waits.
func (c *fakeClock) tick(t *testing.T, n int) {
	t.Helper()
	c.BlockUntil(t, n)
	p := c.Pending()
	c.mu.Lock()
	c.waits = append(c.waits, p...)
	c.mu.Unlock()
	c.Advance(p[len(p)-1])
}

type recorder struct {
	mu      sync.Mutex
	changed int
	kills   []killRequest
}

func (r *recorder) change(plan.Key) { r.mu.Lock(); r.changed++; r.mu.Unlock() }
func (r *recorder) kill(_ plan.Key, k killRequest) {
	r.mu.Lock()
	r.kills = append(r.kills, k)
	r.mu.Unlock()
}
func (r *recorder) killCount() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.kills) }

func execProbe(failures, successes int32) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"check"}}}, TimeoutSeconds: 1,
		PeriodSeconds: 5, FailureThreshold: failures, SuccessThreshold: successes, InitialDelaySeconds: 7}
}

// waitState polls the prober until the instance's state is as wanted.
func waitState(t *testing.T, p *Prober, tgt ProbeTarget, started, ready bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, r, _ := p.State(tgt.podKey(), tgt.Container, tgt.Instance)
		if s == started && r == ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state started=%v ready=%v, want %v %v", s, r, started, ready)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReadinessFollowsItsThresholds(t *testing.T) {
	ex, clk, rec := &fakeExec{}, newFakeClock(), &recorder{}
	p := NewProber(ex, nil, clk, rec.change, rec.kill)
	defer p.Stop()
	tgt := ProbeTarget{Namespace: "default", Pod: "p", Container: "c", Instance: "i1"}
	p.Sync(context.Background(), tgt, &corev1.Container{Name: "c", ReadinessProbe: execProbe(2, 2)})
	waitState(t, p, tgt, true, false)
	clk.tick(t, 1) // the initial delay, then one success
	clk.waitFor(t, 1)
	waitState(t, p, tgt, true, false)
	clk.tick(t, 1) // two successes
	waitState(t, p, tgt, true, true)
	ex.code.Store(1)
	clk.tick(t, 1) // one failure: still ready
	clk.waitFor(t, 1)
	waitState(t, p, tgt, true, true)
	clk.tick(t, 1) // two: not ready
	waitState(t, p, tgt, true, false)
	if rec.killCount() != 0 {
		t.Fatal("a readiness failure killed the container")
	}
	clk.mu.Lock()
	waits := clk.waits
	clk.mu.Unlock()
	if waits[0] != 7*time.Second || waits[1] != 5*time.Second {
		t.Fatalf("waits %v, want the initial delay 7s then the period 5s", waits)
	}
}

func TestLivenessFailureAsksForAKill(t *testing.T) {
	ex, clk, rec := &fakeExec{}, newFakeClock(), &recorder{}
	ex.code.Store(1)
	p := NewProber(ex, nil, clk, rec.change, rec.kill)
	defer p.Stop()
	tgt := ProbeTarget{Namespace: "default", Pod: "p", Container: "c", Instance: "i1"}
	p.Sync(context.Background(), tgt, &corev1.Container{Name: "c", LivenessProbe: execProbe(3, 1)})
	clk.tick(t, 1)
	for range 3 {
		clk.tick(t, 1)
	}
	deadline := time.Now().Add(5 * time.Second)
	for rec.killCount() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if rec.killCount() != 1 || rec.kills[0].instance != "i1" || !strings.HasPrefix(rec.kills[0].reason, "Liveness probe failed: ") {
		t.Fatalf("kills %+v, want one of instance i1", rec.kills)
	}
}

func TestStartupProbeHoldsBackTheOthers(t *testing.T) {
	ex, clk, rec := &fakeExec{}, newFakeClock(), &recorder{}
	ex.code.Store(1)
	p := NewProber(ex, nil, clk, rec.change, rec.kill)
	defer p.Stop()
	tgt := ProbeTarget{Namespace: "default", Pod: "p", Container: "c", Instance: "i1"}
	p.Sync(context.Background(), tgt, &corev1.Container{Name: "c", StartupProbe: execProbe(10, 1), LivenessProbe: execProbe(1, 1), ReadinessProbe: execProbe(1, 1)})
	waitState(t, p, tgt, false, false)
	for range 3 {
		clk.tick(t, 3)
	}
	// Once all three wait again, the third probe has run.
	clk.waitFor(t, 3)
	// Only the startup probe ran (three failures after the initial delay):
	// the liveness probe, failing at its first try, would have asked for a
	// kill.
	if rec.killCount() != 0 || ex.calls.Load() != 3 {
		t.Fatalf("kills %d, exec calls %d; want 0 and 3 (startup only)", rec.killCount(), ex.calls.Load())
	}
	ex.code.Store(0)
	clk.tick(t, 3)
	// The startup probe passed; readiness runs from now on (from this
	// very tick if its goroutine saw the start).
	clk.tick(t, 2)
	waitState(t, p, tgt, true, true)
}

func TestForgetStopsTheProbesOfGoneInstances(t *testing.T) {
	ex, clk := &fakeExec{}, newFakeClock()
	p := NewProber(ex, nil, clk, nil, nil)
	old := ProbeTarget{Namespace: "default", Pod: "p", Container: "c", Instance: "i1"}
	cur := old
	cur.Instance = "i2"
	c := &corev1.Container{Name: "c", ReadinessProbe: execProbe(1, 1)}
	p.Sync(context.Background(), old, c)
	p.Sync(context.Background(), cur, c)
	clk.tick(t, 2)
	p.Forget(plan.Key{Namespace: "default", Name: "p"}, func(_, instance string) bool { return instance == "i2" })
	if _, _, known := p.State(plan.Key{Namespace: "default", Name: "p"}, "c", "i1"); known {
		t.Fatal("a forgotten instance keeps its state")
	}
	if _, _, known := p.State(plan.Key{Namespace: "default", Name: "p"}, "c", "i2"); !known {
		t.Fatal("the kept instance lost its state")
	}
	done := make(chan struct{})
	go func() { p.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return: a probe goroutine is left")
	}
}

// An adopted container (it started before the prober knew it) is probed
// at once when its initial delay has passed, and its readiness is known
// after the first result, a failure included.
func TestAdoptedInstanceIsProbedAtOnce(t *testing.T) {
	ex, clk, rec := &fakeExec{}, newFakeClock(), &recorder{}
	ex.code.Store(1)
	p := NewProber(ex, nil, clk, rec.change, rec.kill)
	defer p.Stop()
	started := clk.Now().Add(-time.Minute)
	tgt := ProbeTarget{Namespace: "default", Pod: "p", Container: "c", Instance: "i1", StartedAt: started}
	p.Sync(context.Background(), tgt, &corev1.Container{Name: "c", ReadinessProbe: execProbe(1, 1)})
	if p.ReadinessKnown(tgt.podKey()) {
		t.Fatal("readiness known before any probe ran")
	}
	// The initial delay of 7 s passed a minute ago: the first wait is
	// none, then the probe runs and waits its period.
	clk.tick(t, 1)
	clk.waitFor(t, 1)
	clk.mu.Lock()
	first := clk.waits[0]
	clk.mu.Unlock()
	if first != 0 {
		t.Fatalf("first wait %v, want none", first)
	}
	if got := ex.calls.Load(); got != 1 {
		t.Fatalf("%d probes ran before any time passed, want 1", got)
	}
	if p := clk.Pending(); len(p) != 1 || p[0] != 5*time.Second {
		t.Fatalf("pending waits %v, want the period 5s", p)
	}
	if !p.ReadinessKnown(tgt.podKey()) {
		t.Fatal("readiness unknown after a probe failed")
	}
	rec.mu.Lock()
	changed := rec.changed
	rec.mu.Unlock()
	if changed == 0 {
		t.Fatal("the first result, a failure, was not signalled")
	}
	// A pod without probes has nothing to wait for.
	if !p.ReadinessKnown(plan.Key{Namespace: "default", Name: "other"}) {
		t.Fatal("readiness of a pod without probes is not known")
	}
}
