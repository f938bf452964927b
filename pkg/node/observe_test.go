package node_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gitorch/gitorch/pkg/events"
	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/notify"
	"github.com/gitorch/gitorch/pkg/plan"
)

// notes records notifications.
type notes struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (n *notes) Notify(m notify.Message) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, m)
}

func (n *notes) kinds() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, m := range n.msgs {
		out = append(out, m.Kind)
	}
	return out
}

// startObserved runs an agent of n that tells nt.
func (n *fakeNode) startObserved(t *testing.T, nt *notes) *node.Agent {
	t.Helper()
	ag, _ := n.start(t, func(c *node.Config) { c.Notifier = nt })
	return ag
}

func hasEvent(ag *node.Agent, typ, reason, object string) bool {
	evs, _ := ag.Events(0)
	for _, e := range evs {
		if e.Type == typ && e.Reason == reason && e.Object == object && e.Node == "n1" && !e.Time.IsZero() {
			return true
		}
	}
	return false
}

// scrape GETs /metrics through the API (with its token) and parses it as
// Prometheus does.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mf
}

// value is the value of the family's metric whose labels include want.
func value(mf map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := mf[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestFakeAgentCrashIsAnEventAMetricAndANotification(t *testing.T) {
	n := newFakeNode(t)
	good := n.src.commit(web(1, "busybox:1.36"))
	nt := &notes{}
	ag := n.startObserved(t, nt)
	api := node.NewAPI(ag, nil, node.APIOptions{Token: "s3cret", Events: ag, Metrics: ag.Metrics(), Ready: ag.Ready})
	waitFor(t, "the pod ready", func() bool { p := ag.Status().Pods; return len(p) == 1 && p[0].Ready })
	pod := ag.Status().Pods[0]
	obj := events.Pod("default", pod.Name)
	if !hasEvent(ag, events.Normal, events.ReasonApplied, events.Revision(good)) || !hasEvent(ag, events.Normal, events.ReasonStarted, obj) {
		evs, _ := ag.Events(0)
		t.Fatalf("events %+v: want the revision applied and the container started", evs)
	}
	mf := scrape(t, api)
	if v, ok := value(mf, "gitorch_revision_info", map[string]string{"commit": good, "state": "running"}); !ok || v != 1 {
		t.Fatalf("gitorch_revision_info{commit=%s} = %v, %v", good, v, ok)
	}
	if v, _ := value(mf, "gitorch_pods", map[string]string{"phase": "Running"}); v != 1 {
		t.Fatalf("gitorch_pods{phase=Running} = %v, want 1", v)
	}
	if v, _ := value(mf, "gitorch_members", map[string]string{"state": "alive"}); v != 1 {
		t.Fatalf("gitorch_members{state=alive} = %v, want 1", v)
	}
	if v, _ := value(mf, "gitorch_validation_duration_seconds", nil); v != 1 {
		t.Fatalf("gitorch_validation_duration_seconds has %v samples, want 1", v)
	}
	if v, _ := value(mf, "gitorch_validation_files_total", map[string]string{"from": "validated"}); v != 1 {
		t.Fatalf("gitorch_validation_files_total{from=validated} = %v, want 1", v)
	}
	if v, _ := value(mf, "gitorch_container_restarts_total", nil); v != 0 {
		t.Fatalf("restarts %v before any crash", v)
	}

	if err := n.rt.Exit("default", pod.Name, "app", 1, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a BackOff warning", func() bool { return hasEvent(ag, events.Warning, events.ReasonBackOff, obj) })
	if !hasEvent(ag, events.Warning, events.ReasonFailed, obj) {
		evs, _ := ag.Events(0)
		t.Fatalf("events %+v: want the exit as a Failed warning", evs)
	}
	waitFor(t, "the workload unhealthy notification", func() bool {
		return strings.Contains(strings.Join(nt.kinds(), " "), notify.WorkloadUnhealthy)
	})
	c := podsOf(ag)[pod.Name].Containers[0]
	n.clk.Advance(c.NextStart.Sub(n.clk.Now()) + time.Second)
	waitFor(t, "the restart", func() bool { p := podsOf(ag)[pod.Name]; return p.Ready && p.Restarts() == 1 })
	waitFor(t, "the workload healthy again", func() bool {
		return strings.HasSuffix(strings.Join(nt.kinds(), " "), notify.WorkloadHealthy)
	})
	mf = scrape(t, api)
	if v, _ := value(mf, "gitorch_container_restarts_total", map[string]string{"namespace": "default"}); v != 1 {
		t.Fatalf("gitorch_container_restarts_total = %v after one crash, want 1", v)
	}
	if v, _ := value(mf, "gitorch_events_total", map[string]string{"type": "Warning", "reason": "BackOff"}); v != 1 {
		t.Fatalf("gitorch_events_total{Warning,BackOff} = %v, want 1", v)
	}

	// A refused revision: an event, a notification, the sync's result.
	bad := n.src.commit(map[string]string{"web.yaml": strings.Replace(web(1, "busybox:1.36")["web.yaml"], "containers:", "contianers:", 1)})
	ag.Sync()
	waitFor(t, "the refusal", func() bool { return hasEvent(ag, events.Warning, events.ReasonRefused, events.Revision(bad)) })
	waitFor(t, "the refusal notified", func() bool { return strings.HasSuffix(strings.Join(nt.kinds(), " "), notify.RevisionRefused) })
	mf = scrape(t, api)
	if v, _ := value(mf, "gitorch_last_sync_success", nil); v != 0 {
		t.Fatalf("gitorch_last_sync_success = %v after a refusal, want 0", v)
	}
	if v, _ := value(mf, "gitorch_syncs_total", map[string]string{"result": "refused"}); v != 1 {
		t.Fatalf("gitorch_syncs_total{result=refused} = %v, want 1", v)
	}
	if kinds := nt.kinds(); kinds[0] != notify.RevisionApplied {
		t.Fatalf("notifications %v: want the revision applied first", kinds)
	}
}

func TestAPIMetricsNeedTheToken(t *testing.T) {
	n := newFakeNode(t)
	ag := n.startObserved(t, &notes{})
	api := node.NewAPI(ag, nil, node.APIOptions{Token: "s3cret", Metrics: ag.Metrics(), Ready: ag.Ready})
	for _, tc := range []struct {
		path, auth string
		code       int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusServiceUnavailable}, // no revision yet
	} {
		req := httptest.NewRequest("GET", tc.path, nil)
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("GET %s: %d %s, want %d", tc.path, rec.Code, rec.Body, tc.code)
		}
	}
	n.src.commit(web(1, "busybox:1.36"))
	ag.Sync()
	waitFor(t, "ready", func() bool {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code == http.StatusOK && string(b) == "ok\n"
	})
}

func TestFakeClusterMembershipChangesAreEvents(t *testing.T) {
	c := newFakeCluster(t, "n1", "n2", "n3")
	c.src.commit(web(1, "busybox:1.36"))
	var ag *node.Agent
	for _, name := range []string{"n1", "n2", "n3"} {
		n := c.start(name)
		if name == "n1" {
			ag = n.ag
		}
	}
	waitFor(t, "the pod running", func() bool { return c.total() == 1 })
	for _, step := range []struct {
		state  gossip.MemberState
		typ    string
		reason string
	}{
		{gossip.StateSuspect, events.Warning, events.ReasonSuspect},
		{gossip.StateDead, events.Warning, events.ReasonDead},
		{gossip.StateAlive, events.Normal, events.ReasonAlive},
	} {
		c.bus.setState("n3", step.state)
		waitFor(t, "a "+step.reason+" event", func() bool { return hasEvent(ag, step.typ, step.reason, events.Node("n3")) })
	}
}

// An agent restarted on the revision it ran notifies nothing: nothing
// changed for the people told.
func TestFakeAgentRestartNotifiesNothing(t *testing.T) {
	n := newFakeNode(t)
	n.src.commit(web(1, "busybox:1.36"))
	first := &notes{}
	ag := n.startObserved(t, first)
	waitFor(t, "the revision applied", func() bool { return len(first.kinds()) > 0 })
	_ = ag
	// A second agent on the same data directory, as after a restart.
	again := &notes{}
	ag2 := n.startObserved(t, again)
	waitFor(t, "the pod adopted", func() bool { return countPhase(ag2, plan.PhaseRunning) == 1 })
	for _, k := range again.kinds() {
		if k == notify.RevisionApplied {
			t.Fatalf("the restart notified %v", again.kinds())
		}
	}
}

// TestFakeAgentValidatesOnlyTheChangedFiles loads a revision that changes
// one of two files: the other comes from the validation cache, and the
// change runs.
func TestFakeAgentValidatesOnlyTheChangedFiles(t *testing.T) {
	n := newFakeNode(t)
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {level: info}\n"
	files := web(1, "busybox:1.36")
	files["settings.yaml"] = cm
	n.src.commit(files)
	ag := n.startObserved(t, &notes{})
	api := node.NewAPI(ag, nil, node.APIOptions{Token: "s3cret", Metrics: ag.Metrics()})
	waitFor(t, "1 pod running", func() bool { return countPhase(ag, plan.PhaseRunning) == 1 })
	files = web(2, "busybox:1.36")
	files["settings.yaml"] = cm
	second := n.src.commit(files)
	ag.Sync()
	waitFor(t, "the second revision", func() bool { r := ag.Status().Running; return r != nil && r.Commit == second })
	waitFor(t, "2 pods running", func() bool { return countPhase(ag, plan.PhaseRunning) == 2 })
	mf := scrape(t, api)
	if v, _ := value(mf, "gitorch_validation_files_total", map[string]string{"from": "cache"}); v != 1 {
		t.Errorf("gitorch_validation_files_total{from=cache} = %v, want 1 (settings.yaml, unchanged)", v)
	}
	if v, _ := value(mf, "gitorch_validation_files_total", map[string]string{"from": "validated"}); v != 3 {
		t.Errorf("gitorch_validation_files_total{from=validated} = %v, want 3 (two files, then web.yaml)", v)
	}
}
