package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/events"
	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/notify"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/status"
)

// Notifier is told of revisions and workload health; *notify.Notifier is
// one. Notify must not block.
type Notifier interface {
	Notify(notify.Message)
}

// observer records what happens on the node: events, metrics and
// notifications. The agent calls it where things happen; it decides
// nothing the agent acts on.
type observer struct {
	a       *Agent
	ring    *events.Ring
	reg     *prometheus.Registry
	handler http.Handler

	syncs          *prometheus.CounterVec
	lastSync       prometheus.Gauge
	lastSyncOK     prometheus.Gauge
	fetchDur       prometheus.Histogram
	validateDur    prometheus.Histogram
	validatedFiles *prometheus.CounterVec
	restarts       *prometheus.CounterVec
	probeFails     *prometheus.CounterVec
	webhooks       *prometheus.CounterVec
	eventsTotal    *prometheus.CounterVec
	proxySyncs     *prometheus.CounterVec
	proxyDur       prometheus.Histogram

	mu        sync.Mutex
	pods      map[plan.Key]plan.PodStatus // as last observed
	healthy   map[string]bool             // workload → all its pods here ready
	members   map[string]gossip.MemberState
	seenNodes bool
}

func newObserver(a *Agent) *observer {
	o := &observer{
		a:       a,
		ring:    events.NewRing(a.cfg.Events),
		reg:     prometheus.NewRegistry(),
		pods:    map[plan.Key]plan.PodStatus{},
		healthy: map[string]bool{},
		members: map[string]gossip.MemberState{},
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitorch_syncs_total", Help: "Syncs with the repository, by result: ok (fetched; the revision runs or was already known), fetch_failed, refused.",
		}, []string{"result"}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gitorch_last_sync_timestamp_seconds", Help: "When the repository was last synced (fetched and, if new, validated), in seconds since the epoch.",
		}),
		lastSyncOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gitorch_last_sync_success", Help: "1 when the last sync fetched and the revision it found runs, 0 when it failed or the revision was refused.",
		}),
		fetchDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gitorch_fetch_duration_seconds", Help: "Time taken by fetches of the repository, failed ones included.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
		validateDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gitorch_validation_duration_seconds", Help: "Time taken to load and validate a revision.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		validatedFiles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitorch_validation_files_total", Help: "Manifest files of the revisions loaded, by where their result came from: cache (unchanged since a revision validated before) or validated.",
		}, []string{"from"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitorch_container_restarts_total", Help: "Container restarts seen on this node, by namespace.",
		}, []string{"namespace"}),
		probeFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitorch_probe_failures_total", Help: "Probe failures that changed a container's state: readiness lost, or a liveness or startup probe that had it killed.",
		}, []string{"probe"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitorch_webhook_requests_total", Help: "Webhook requests received, by provider and result.",
		}, []string{"provider", "result"}),
		eventsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitorch_events_total", Help: "Events recorded by this node, by type and reason.",
		}, []string{"type", "reason"}),
		proxySyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gitorch_proxy_syncs_total", Help: "Writes of the Service rules (nftables), by result: ok, failed.",
		}, []string{"result"}),
		proxyDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gitorch_proxy_sync_duration_seconds", Help: "Time taken to write the Service rules, one transaction each.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	o.reg.MustRegister(o.syncs, o.lastSync, o.lastSyncOK, o.fetchDur, o.validateDur, o.validatedFiles, o.restarts, o.probeFails, o.webhooks, o.eventsTotal, o.proxySyncs, o.proxyDur,
		stateCollector{o}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if d, ok := a.cfg.Notifier.(interface{ Dropped() uint64 }); ok {
		o.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gitorch_notifications_dropped_total", Help: "Notifications dropped because a receiver's queue was full.",
		}, func() float64 { return float64(d.Dropped()) }))
	}
	o.handler = promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{Registry: o.reg})
	return o
}

// record stamps e with the time and the node, keeps it and counts it.
func (o *observer) record(e events.Event) {
	e.Time = o.a.clock.Now()
	e.Node = o.a.cfg.Node.Name
	o.ring.Add(e)
	o.eventsTotal.WithLabelValues(e.Type, e.Reason).Inc()
}

func (o *observer) notify(m notify.Message) {
	if o.a.cfg.Notifier == nil {
		return
	}
	m.Time = o.a.clock.Now()
	m.Node = o.a.cfg.Node.Name
	o.a.cfg.Notifier.Notify(m)
}

// Event records an event of this node (for the webhook receivers, say:
// events.ReasonWebhook about events.Webhook(provider)). Time and node are
// filled in.
func (a *Agent) Event(typ, reason, object, message string) {
	a.obs.record(events.Event{Type: typ, Reason: reason, Object: object, Message: message})
}

// Events returns this node's events numbered above after, oldest first,
// and a channel closed when the next one is recorded.
func (a *Agent) Events(after uint64) ([]events.Event, <-chan struct{}) {
	return a.obs.ring.Events(after)
}

// WebhookRequest counts a webhook request in
// gitorch_webhook_requests_total{provider, result}; result is a short
// word such as accepted, ignored, unauthorized, too_large, replayed,
// rate_limited.
func (a *Agent) WebhookRequest(provider, result string) {
	a.obs.webhooks.WithLabelValues(provider, result).Inc()
}

// Metrics serves the node's metrics in Prometheus' text format.
func (a *Agent) Metrics() http.Handler { return a.obs.handler }

// Ready says why the node is not ready to serve (nil when it is): a
// revision must be loaded and the container runtime must answer.
func (a *Agent) Ready(ctx context.Context) error {
	a.mu.Lock()
	loaded := a.running != nil
	a.mu.Unlock()
	if !loaded {
		return errors.New("no revision loaded yet")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := a.cfg.Runtime.ListPods(ctx); err != nil {
		a.log.Warn("readiness: the container runtime does not answer", "err", err)
		return errors.New("the container runtime does not answer")
	}
	return nil
}

// --- hooks, called by the agent where things happen ---

// fetched records one fetch of the repository.
func (o *observer) fetched(took time.Duration, err error) {
	o.fetchDur.Observe(took.Seconds())
	if err != nil {
		o.syncEnded("fetch_failed")
	}
}

// syncEnded records the end of a sync.
func (o *observer) syncEnded(result string) {
	o.syncs.WithLabelValues(result).Inc()
	o.lastSync.Set(float64(o.a.clock.Now().UnixNano()) / 1e9)
	if result == "ok" {
		o.lastSyncOK.Set(1)
	} else {
		o.lastSyncOK.Set(0)
	}
}

// proxySynced records one write of the Service rules.
func (o *observer) proxySynced(took time.Duration, err error) {
	o.proxyDur.Observe(took.Seconds())
	if err != nil {
		o.proxySyncs.WithLabelValues("failed").Inc()
	} else {
		o.proxySyncs.WithLabelValues("ok").Inc()
	}
}

// validated records how long loading a revision took, and how many of its
// files came from the validation cache.
func (o *observer) validated(took time.Duration, files, cached int) {
	o.validateDur.Observe(took.Seconds())
	o.validatedFiles.WithLabelValues("cache").Add(float64(cached))
	o.validatedFiles.WithLabelValues("validated").Add(float64(files - cached))
}

// applied records a revision that now runs.
func (o *observer) applied(rev *status.Revision, restored bool) {
	if restored {
		// The revision ran before the agent restarted: an event, but no
		// sync and nothing to notify.
		msg := fmt.Sprintf("Revision %s (%s) runs again after the agent restarted", gitrev.Short(rev.Commit), rev.Subject)
		o.record(events.Event{Type: events.Normal, Reason: events.ReasonApplied, Object: events.Revision(rev.Commit), Message: msg})
		return
	}
	o.syncEnded("ok")
	msg := fmt.Sprintf("Revision %s (%s) runs", gitrev.Short(rev.Commit), rev.Subject)
	o.record(events.Event{Type: events.Normal, Reason: events.ReasonApplied, Object: events.Revision(rev.Commit), Message: msg})
	o.notify(notify.Message{Kind: notify.RevisionApplied, Revision: rev.Commit, Text: msg})
}

// refused records a revision that was refused.
func (o *observer) refused(rev *status.Revision) {
	o.syncEnded("refused")
	msg := fmt.Sprintf("Revision %s refused (%d errors); the last good revision keeps running", gitrev.Short(rev.Commit), len(rev.Errors))
	if len(rev.Errors) > 0 {
		msg += ": " + rev.Errors[0]
	}
	o.record(events.Event{Type: events.Warning, Reason: events.ReasonRefused, Object: events.Revision(rev.Commit), Message: msg})
	o.notify(notify.Message{Kind: notify.RevisionRefused, Revision: rev.Commit, Text: msg, Errors: rev.Errors})
}

// podAction records an action on a pod: a container killed, a pod stopped.
func (o *observer) podAction(key plan.Key, act plan.PodAction) {
	obj := events.Pod(key.Namespace, key.Name)
	switch act.Kind {
	case plan.ActKill:
		msg := fmt.Sprintf("Container %s failed: %s, will be restarted", act.Container, act.Reason)
		o.record(events.Event{Type: events.Normal, Reason: events.ReasonKilling, Object: obj, Message: msg})
		for _, probe := range []string{"liveness", "startup"} {
			if strings.HasPrefix(act.Reason, probe+" ") {
				o.probeFails.WithLabelValues(probe).Inc()
				o.record(events.Event{Type: events.Warning, Reason: events.ReasonUnhealthy, Object: obj, Message: fmt.Sprintf("Container %s: %s", act.Container, act.Reason)})
			}
		}
	case plan.ActStopPod:
		o.record(events.Event{Type: events.Normal, Reason: events.ReasonKilling, Object: obj, Message: "Stopping pod: " + act.Reason})
	}
}

// pod records a pod's new status (nil: gone): its events, its restarts,
// and its workload's health.
func (o *observer) pod(key plan.Key, st *plan.PodStatus) {
	o.mu.Lock()
	old, had := o.pods[key]
	var oldp *plan.PodStatus
	if had {
		oldp = &old
	}
	if st == nil {
		delete(o.pods, key)
	} else {
		o.pods[key] = *st
	}
	var workload string
	switch {
	case st != nil:
		workload = st.Workload
	case had:
		workload = old.Workload
	}
	change := o.workloadHealth(workload)
	o.mu.Unlock()
	for _, e := range events.ForPod(oldp, st) {
		if e.Reason == events.ReasonUnhealthy {
			o.probeFails.WithLabelValues("readiness").Inc()
		}
		o.record(e)
	}
	if st != nil && had {
		if d := st.Restarts() - old.Restarts(); d > 0 {
			o.restarts.WithLabelValues(key.Namespace).Add(float64(d))
		}
	}
	if change != nil {
		o.notify(*change)
	}
}

// workloadHealth returns the notification of a workload whose pods on
// this node went from all ready to not, or back (o.mu held). A workload
// seen for the first time is not news; one with no pods left here is
// forgotten.
func (o *observer) workloadHealth(workload string) *notify.Message {
	if workload == "" {
		return nil
	}
	ready, total := 0, 0
	for _, p := range o.pods {
		if p.Workload != workload || p.Phase == "Succeeded" {
			continue
		}
		total++
		if p.Ready {
			ready++
		}
	}
	was, known := o.healthy[workload]
	if total == 0 {
		delete(o.healthy, workload)
		return nil
	}
	now := ready == total
	o.healthy[workload] = now
	if !known || was == now {
		return nil
	}
	m := &notify.Message{Kind: notify.WorkloadHealthy, Workload: workload, Ready: ready, Total: total,
		Text: fmt.Sprintf("%s is healthy again: %d/%d pods ready", workload, ready, total)}
	if !now {
		m.Kind = notify.WorkloadUnhealthy
		m.Text = fmt.Sprintf("%s is unhealthy: %d/%d pods ready", workload, ready, total)
	}
	for _, p := range o.pods {
		if p.Workload == workload {
			m.Revision = p.Revision
			break
		}
	}
	return m
}

// membersChanged records the members whose state changed since the last
// look (the first look only sets the baseline). The members are read
// under o.mu, so that two looks at once are compared in the order they
// were taken.
func (o *observer) membersChanged(members func() []gossip.Member) {
	o.mu.Lock()
	ms := members()
	first := !o.seenNodes
	o.seenNodes = true
	var out []events.Event
	now := map[string]gossip.MemberState{}
	for _, m := range ms {
		now[m.Name] = m.State
		if m.Name == o.a.cfg.Node.Name {
			continue
		}
		was, known := o.members[m.Name]
		if first || known && was == m.State {
			continue
		}
		if e, ok := memberEvent(m.Name, was, known, m.State); ok {
			out = append(out, e)
		}
	}
	o.members = now
	o.mu.Unlock()
	for _, e := range out {
		o.record(e)
	}
}

func memberEvent(name string, was gossip.MemberState, known bool, st gossip.MemberState) (events.Event, bool) {
	e := events.Event{Object: events.Node(name)}
	switch st {
	case gossip.StateAlive:
		e.Type, e.Reason, e.Message = events.Normal, events.ReasonJoined, fmt.Sprintf("Node %s joined the cluster", name)
		if known {
			e.Reason, e.Message = events.ReasonAlive, fmt.Sprintf("Node %s is alive again (was %s)", name, was)
		}
	case gossip.StateSuspect:
		e.Type, e.Reason, e.Message = events.Warning, events.ReasonSuspect, fmt.Sprintf("Node %s does not answer probes: suspect", name)
	case gossip.StateDead:
		e.Type, e.Reason, e.Message = events.Warning, events.ReasonDead, fmt.Sprintf("Node %s is dead", name)
	case gossip.StateLeft:
		e.Type, e.Reason, e.Message = events.Normal, events.ReasonLeft, fmt.Sprintf("Node %s left the cluster", name)
	default:
		return e, false
	}
	return e, true
}

// stateCollector reads the gauges that describe the node as it is now at
// each scrape: the revision, pods by phase, members by state.
type stateCollector struct{ o *observer }

var (
	revisionDesc = prometheus.NewDesc("gitorch_revision_info", "The revision this node runs (state=running) and the last it refused (state=refused); always 1.", []string{"commit", "state"}, nil)
	podsDesc     = prometheus.NewDesc("gitorch_pods", "Pods on this node, by phase.", []string{"phase"}, nil)
	membersDesc  = prometheus.NewDesc("gitorch_members", "Members of the cluster as this node sees them, by state.", []string{"state"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- revisionDesc
	ch <- podsDesc
	ch <- membersDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.o.a
	a.mu.Lock()
	running, refused := a.running, a.refused
	phases := map[string]int{"Pending": 0, "Running": 0, "Succeeded": 0, "Failed": 0}
	for _, p := range a.pods {
		phases[p.Phase]++
	}
	a.mu.Unlock()
	if running != nil {
		ch <- prometheus.MustNewConstMetric(revisionDesc, prometheus.GaugeValue, 1, running.Commit, "running")
	}
	if refused != nil {
		ch <- prometheus.MustNewConstMetric(revisionDesc, prometheus.GaugeValue, 1, refused.Commit, "refused")
	}
	for phase, n := range phases {
		ch <- prometheus.MustNewConstMetric(podsDesc, prometheus.GaugeValue, float64(n), phase)
	}
	states := map[plan.MemberState]int{plan.MemberAlive: 0, plan.MemberSuspect: 0, plan.MemberDead: 0, plan.MemberLeft: 0}
	members, _ := a.members()
	for _, m := range members {
		states[m.State]++
	}
	for st, n := range states {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(n), string(st))
	}
}

// unchanged records a sync that found the commit already known: running,
// or refused before.
func (o *observer) unchanged(commit string) {
	o.a.mu.Lock()
	ok := o.a.running != nil && o.a.running.Commit == commit
	o.a.mu.Unlock()
	if ok {
		o.syncEnded("ok")
	} else {
		o.syncEnded("refused")
	}
}
