package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/backoff"
	"github.com/gitorch/gitorch/pkg/clock"
	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/schema"
	"github.com/gitorch/gitorch/pkg/source"
	"github.com/gitorch/gitorch/pkg/status"
)

// Source is the Git repository the agent follows; *source.Repo
// implements it.
type Source interface {
	Fetch(ctx context.Context) error
	// Resolve names the commit of rev ("" for the configured ref).
	Resolve(rev string) (string, error)
	Snapshot(ctx context.Context, rev string) (*source.Snapshot, error)
	// URL is the remote without credentials.
	URL() string
}

// Config configures an Agent.
type Config struct {
	// Node is this node as placement sees it (name, labels, allocatable).
	Node    plan.Node
	Source  Source
	Ref     string
	Path    string
	Runtime apply.Runtime
	// DataDir holds the agent's state (the revision it runs).
	DataDir string
	// Identities decrypt the repository's encrypted Secrets (SOPS with
	// age recipients). A revision with a Secret none of them opens is
	// refused; decrypted values stay in memory.
	Identities []age.Identity
	// PollInterval is how often the repository is fetched (default 1m).
	PollInterval time.Duration
	// FetchBackoff spaces out fetches after failures (default 1 s doubling
	// to 5 min).
	FetchBackoff backoff.Backoff
	// FetchTimeout bounds one fetch (default 2 min), so that a remote
	// that hangs cannot stop the agent from trying again.
	FetchTimeout time.Duration
	// Resync is how often every pod is looked at even without an event
	// (default 10 s).
	Resync time.Duration
	// Backoff for restarting crashed containers and retrying failed image
	// pulls (default plan.CrashBackoff).
	Backoff backoff.Backoff
	// ServiceCIDR is where Services' ClusterIPs come from, for the
	// service environment variables (default plan.DefaultServiceCIDR).
	ServiceCIDR netip.Prefix
	// LogMaxBytes and LogKeep rotate container logs (defaults 10 MiB, 5),
	// checked every LogCheck (default 1 min), when the runtime can.
	LogMaxBytes int64
	LogKeep     int
	LogCheck    time.Duration
	// ImageGC removes unused images when the image filesystem fills up,
	// checked every ImageGCInterval (default 5 min), when the runtime can.
	ImageGC         apply.ImageGCPolicy
	ImageGCInterval time.Duration
	// Cluster is the gossip membership (nil: a cluster of one), named
	// ClusterName; Meta is what the node gossips about itself (the
	// revision it runs is added).
	Cluster     Cluster
	ClusterName string
	Meta        gossip.Meta
	// PodNet, when set, is given the routes to the peers' pod CIDRs
	// (Meta.PodCIDR is this node's) and the egress masquerade whenever
	// the membership changes.
	PodNet PodNetwork
	// Membership says how placement follows membership (defaults
	// DefaultNodeDeadGrace, DefaultRejoinSettle); Handoff how StatefulSet
	// pods change nodes (default DefaultFence).
	Membership plan.MembershipPolicy
	Handoff    plan.HandoffPolicy
	// Proxy, when set, gets the Service rules of every change of the
	// Services, members or pod statuses (services.go); NodePortRange is
	// where nodePorts come from (default plan.DefaultNodePortRange).
	Proxy         Proxy
	NodePortRange plan.PortRange
	// Events is how many events the node keeps (default
	// events.DefaultSize); Notifier, when set, is told of revisions and
	// workload health.
	Events   int
	Notifier Notifier
	// DNS, when set, is the node's cluster DNS server: the agent gives it
	// the records of ClusterDomain (default plan.DefaultClusterDomain)
	// whenever the revision, the members or a pod's status changes, and
	// pods' resolv.conf point at the cluster DNS address of ServiceCIDR.
	// HostResolv is the node's own resolver configuration, for pods with
	// dnsPolicy Default.
	DNS           DNSRecords
	ClusterDomain string
	HostResolv    plan.ResolvConf
	// Clock is the time source of the agent, its pod workers, prober and
	// API (default the real clock).
	Clock  clock.Clock
	Logger *slog.Logger
}

// logRotator is implemented by runtimes that can rotate container logs.
type logRotator interface {
	RotateLogs(maxBytes int64, keep int) error
}

// imageCollector is implemented by runtimes that can remove unused images.
type imageCollector interface {
	CollectImages(ctx context.Context, p apply.ImageGCPolicy) (apply.GCReport, error)
}

// watcher is implemented by runtimes that signal container events.
type watcher interface {
	Watch(ctx context.Context) <-chan struct{}
}

// Agent runs the pods a Git repository asks of this node.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	clock  clock.Clock
	prober *Prober
	obs    *observer // events, metrics, notifications
	// validation keeps what validating each file of the revisions found,
	// so that a new revision validates only the files it changed.
	validation *schema.Cache

	// poke asks the reconcile loop for a pass; fetch asks the source loop
	// to fetch now.
	poke  chan struct{}
	fetch chan struct{}

	mu       sync.Mutex
	desired  *plan.NodeShare  // nil until a revision is loaded
	objects  []runtime.Object // of the running revision
	running  *status.Revision
	refused  *status.Revision
	srcState status.Source
	pods     map[plan.Key]plan.PodStatus
	workers  map[plan.Key]*podWorker

	// Rollouts: the last desired pod of every pod the node runs (so that
	// an old pod keeps running while a rollout replaces it), when the node
	// learnt each pod of the cluster was ready, and the workloads' health.
	retained  map[plan.Key]*plan.DesiredPod
	readySeen map[plan.Key]time.Time
	workloads []plan.WorkloadStatus
	// retainedRevs are the earlier revisions whose pods still run here
	// (kept on disk, so that a restarted agent keeps them too).
	retainedRevs []string

	// The cluster: when the agent started, what it remembers of the
	// members (kept on disk), the last membership decision, whether it
	// has quorum, the revisions peers were heard to run, and when each
	// member was first seen.
	started    time.Time
	hist       plan.MemberHistory
	histDirty  bool
	membership plan.Membership
	quorum     bool
	// quorumLost is set while the node has no quorum; quorumRegained is
	// when it last got it back.
	quorumLost     bool
	quorumRegained time.Time
	placeTimer     clock.Timer
	heard          map[string]bool
	firstSeen      map[string]time.Time
	leaving        atomic.Bool
	// leavingSince is when Leave began; budgetHeld are the pods that
	// PodDisruptionBudgets keep running on the leaving node (a.mu).
	leavingSince time.Time
	budgetHeld   []plan.BudgetHold
	// podsChanged is signalled when a pod's status changes; metaDirty when
	// the node's metadata is to be announced again.
	podsChanged chan struct{}
	metaDirty   chan struct{}
	// netDirty asks podNetLoop to look at the membership again.
	netDirty chan struct{}
	// dnsDirty asks for the DNS records to be computed again (dns.go).
	dnsDirty chan struct{}
	// proxyDirty asks proxyLoop to recompute the Service rules; proxy is
	// how their last sync went.
	proxyDirty chan struct{}
	proxy      status.Proxy
	// revChanged is closed, and replaced, when the revision running or
	// refused changes.
	revChanged chan struct{}
	// syncs follows the fetches asked from outside (sync.go).
	syncs syncState
	// jobs are the records of Jobs' pods (jobs.go).
	jobs *jobBook
	// adopting holds, from the first pass until each has a status (and
	// its readiness probes a result), the pods the runtime ran when the
	// agent started; the agent publishes
	// nothing until adopted is set: a restarted agent that gossiped before
	// it had adopted its pods would show its peers fewer pods than run
	// (a rollout would count them missing, Services drop their
	// endpoints).
	adopting map[plan.Key]bool
	adopted  bool
	// publishMu serialises publish (cluster.go).
	publishMu sync.Mutex
}

// adoptDeadline bounds how long a started agent keeps quiet while it
// adopts the pods it finds: a pod whose status cannot be had (no revision
// to compare it with: the one that ran is not in the cache, the repository
// is unreachable) does not keep the node's state from peers for longer.
const adoptDeadline = 30 * time.Second

// New returns an agent for cfg; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Source == nil || cfg.Runtime == nil {
		return nil, errors.New("agent: a source and a runtime are needed")
	}
	if cfg.Node.Name == "" {
		return nil, errors.New("agent: no node name")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("agent: no data dir")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Minute
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 2 * time.Minute
	}
	if cfg.Backoff.Initial == 0 {
		cfg.Backoff = plan.CrashBackoff
	}
	if !cfg.ServiceCIDR.IsValid() {
		cfg.ServiceCIDR = plan.DefaultServiceCIDR
	}
	if cfg.LogMaxBytes <= 0 {
		cfg.LogMaxBytes = 10 << 20
	}
	if cfg.LogKeep <= 0 {
		cfg.LogKeep = 5
	}
	if cfg.LogCheck <= 0 {
		cfg.LogCheck = time.Minute
	}
	if cfg.NodePortRange == (plan.PortRange{}) {
		cfg.NodePortRange = plan.DefaultNodePortRange
	}
	if cfg.ImageGCInterval <= 0 {
		cfg.ImageGCInterval = 5 * time.Minute
	}
	cfg.Clock = clock.OrReal(cfg.Clock)
	if cfg.Membership == (plan.MembershipPolicy{}) {
		cfg.Membership = plan.MembershipPolicy{DeadGrace: DefaultNodeDeadGrace, RejoinSettle: DefaultRejoinSettle}
	}
	if cfg.Handoff.Fence == 0 {
		cfg.Handoff.Fence = DefaultFence
	}
	if cfg.Handoff.Settle == 0 {
		cfg.Handoff.Settle = cfg.Membership.RejoinSettle
	}
	cfg.Handoff.DeadGrace = cfg.Membership.DeadGrace
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = plan.DefaultClusterDomain
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "agent"), 0o700); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:         cfg,
		log:         cfg.Logger,
		clock:       cfg.Clock,
		validation:  schema.NewCache(0),
		poke:        make(chan struct{}, 1),
		fetch:       make(chan struct{}, 1),
		pods:        map[plan.Key]plan.PodStatus{},
		workers:     map[plan.Key]*podWorker{},
		retained:    map[plan.Key]*plan.DesiredPod{},
		readySeen:   map[plan.Key]time.Time{},
		started:     cfg.Clock.Now(),
		hist:        plan.MemberHistory{},
		quorum:      true,
		heard:       map[string]bool{},
		firstSeen:   map[string]time.Time{},
		podsChanged: make(chan struct{}, 1),
		metaDirty:   make(chan struct{}, 1),
		netDirty:    make(chan struct{}, 1),
		dnsDirty:    make(chan struct{}, 1),
		proxyDirty:  make(chan struct{}, 1),
		revChanged:  make(chan struct{}),
		jobs:        newJobBook(cfg.DataDir),
	}
	a.obs = newObserver(a)
	a.prober = NewProber(cfg.Runtime, cfg.Logger, cfg.Clock, a.probeChanged, a.probeKill)
	return a, nil
}

// Sync asks the agent to fetch the repository now (a webhook, a test).
func (a *Agent) Sync() {
	select {
	case a.fetch <- struct{}{}:
	default:
	}
}

func (a *Agent) nudge() {
	select {
	case a.poke <- struct{}{}:
	default:
	}
}

// Run runs the agent until ctx ends. It leaves the pods running: a new
// agent adopts them.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.restore(ctx); err != nil {
		a.log.Warn("the revision that ran before could not be loaded; waiting for a fetch", "err", err)
	}
	adoptTimer := a.clock.AfterFunc(adoptDeadline, a.adoptionTimedOut)
	defer adoptTimer.Stop()
	var wg sync.WaitGroup
	wg.Go(func() { a.sourceLoop(ctx) })
	wg.Go(func() { a.housekeeping(ctx) })
	wg.Go(func() { a.metaLoop(ctx) })
	wg.Go(func() { a.podNetLoop(ctx) })
	wg.Go(func() { a.dnsLoop(ctx) })
	wg.Go(func() { a.proxyLoop(ctx) })
	a.reconcileLoop(ctx)
	wg.Wait()
	a.mu.Lock()
	workers := a.workers
	a.mu.Unlock()
	for _, w := range workers {
		<-w.done
	}
	a.prober.Stop()
	return nil
}

// --- probes ---

// netnser is implemented by runtimes that give pods a network namespace.
type netnser interface {
	NetNSPath(namespace, pod string) string
}

// probeChanged pokes the worker of a pod whose readiness changed.
func (a *Agent) probeChanged(podKey plan.Key) {
	a.mu.Lock()
	w := a.workers[podKey]
	a.mu.Unlock()
	if w != nil {
		w.nudge()
	}
}

// probeKill hands a failed liveness or startup probe to the pod's worker.
func (a *Agent) probeKill(podKey plan.Key, k killRequest) {
	a.mu.Lock()
	w := a.workers[podKey]
	a.mu.Unlock()
	if w == nil {
		return
	}
	select {
	case w.kills <- k:
	default:
		// The worker has kills queued; the probe asks again if it
		// keeps failing.
	}
}

// syncProbes runs the probes of the pod's running containers and stops
// those of instances that no longer run.
func (a *Agent) syncProbes(ctx context.Context, d *plan.DesiredPod, obs *apply.PodStatus) {
	running := map[string]string{}
	for _, cs := range obs.Containers {
		if cs.State == apply.StateRunning {
			running[cs.Name] = plan.InstanceID(cs)
		}
	}
	key := d.Key()
	a.prober.Forget(key, func(container, instance string) bool { return running[container] == instance })
	for i := range d.Pod.Spec.Containers {
		c := &d.Pod.Spec.Containers[i]
		inst, ok := running[c.Name]
		if !ok {
			continue
		}
		a.prober.Sync(ctx, a.probeTarget(obs, c, inst), c)
	}
}

func (a *Agent) probeTarget(obs *apply.PodStatus, c *corev1.Container, instance string) ProbeTarget {
	t := ProbeTarget{Namespace: obs.Namespace, Pod: obs.Name, Container: c.Name, Instance: instance, PodIP: obs.IP, Ports: c.Ports}
	if cs, ok := obs.Container(c.Name); ok {
		t.StartedAt = cs.CreatedAt
	}
	if n, ok := a.cfg.Runtime.(netnser); ok {
		t.NetNS = n.NetNSPath(obs.Namespace, obs.Name)
	}
	return t
}

// hookHTTP runs an httpGet lifecycle handler against the pod.
func (a *Agent) hookHTTP(ctx context.Context, obs *apply.PodStatus, c *corev1.Container, h *corev1.HTTPGetAction, timeout time.Duration) error {
	t := a.probeTarget(obs, c, "")
	return httpProbe(ctx, h, t, timeout, "preStop hook")
}

// --- the source: fetch, load, refuse or accept ---

type agentState struct {
	Running string `json:"running"`
	// Members is what the node remembers of the cluster's members, so
	// that a restarted node still counts the members it knew for quorum.
	Members plan.MemberHistory `json:"members,omitempty"`
	// Retained are the earlier revisions whose pods a rollout keeps
	// running here for now.
	Retained []string `json:"retained,omitempty"`
}

func (a *Agent) statePath() string { return filepath.Join(a.cfg.DataDir, "agent", "state.json") }

// restore loads the revision the agent ran before it stopped, from the
// cache, so that a restarted agent keeps its pods while it fetches.
func (a *Agent) restore(ctx context.Context) error {
	if err := a.jobs.load(); err != nil {
		return err
	}
	b, err := os.ReadFile(a.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st agentState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", a.statePath(), err)
	}
	if st.Members != nil {
		// Exclusions restart from zero (a restarted node does not know
		// how long a member was down meanwhile); the names count for
		// quorum.
		for name, rec := range st.Members {
			a.hist[name] = plan.MemberRecord{Left: rec.Left}
		}
	}
	if st.Running == "" {
		return nil
	}
	if err := a.restoreRetained(ctx, st.Retained); err != nil {
		a.log.Warn("the pods of earlier revisions a rollout kept could not be loaded; they stop", "err", err)
	}
	return a.load(ctx, st.Running, true)
}

// restoreRetained gives the pods of earlier revisions that run here, which
// a rollout was keeping when the agent stopped, their desired pods again,
// so that a restart does not stop them at once.
func (a *Agent) restoreRetained(ctx context.Context, revs []string) error {
	if len(revs) == 0 {
		return nil
	}
	observed, err := a.cfg.Runtime.ListPods(ctx)
	if err != nil {
		return err
	}
	running := map[plan.Key]bool{}
	for _, p := range observed {
		running[p.Key()] = true
	}
	// Every pod of the revision on this node alone, with room for all:
	// only the names and templates of those running here matter.
	self := a.cfg.Node
	self.Allocatable = plan.Resources{MilliCPU: 1 << 40, Memory: 1 << 60, Pods: 1 << 30}
	self.Unschedulable = false
	var errs []error
	for _, rev := range revs {
		snap, err := a.cfg.Source.Snapshot(ctx, rev)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res, err := schema.Load(snap.FS, schema.Options{})
		snap.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		share := plan.NodePods(res.RuntimeObjects(), []plan.Node{self}, self.Name, rev, a.cfg.ServiceCIDR, nil)
		a.mu.Lock()
		for k, d := range share.Pods {
			if running[k] && a.retained[k] == nil {
				a.retained[k] = d
			}
		}
		a.retainedRevs = append(a.retainedRevs, rev)
		a.mu.Unlock()
	}
	return errors.Join(errs...)
}

// saveState writes what the agent keeps across restarts (a.mu held).
func (a *Agent) saveState() error {
	st := agentState{Members: a.hist, Retained: a.retainedRevs}
	if a.running != nil {
		st.Running = a.running.Commit
	}
	b, _ := json.Marshal(st)
	tmp := a.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.statePath())
}

func (a *Agent) sourceLoop(ctx context.Context) {
	failures := 0
	for {
		fctx, cancel := context.WithTimeout(ctx, a.cfg.FetchTimeout)
		fetchStart := a.clock.Now()
		a.fetchStarted()
		err := a.cfg.Source.Fetch(fctx)
		cancel()
		a.obs.fetched(a.clock.Now().Sub(fetchStart), err)
		if ctx.Err() != nil {
			return
		}
		now := a.clock.Now()
		wait := a.cfg.PollInterval
		a.mu.Lock()
		if err != nil {
			failures++
			wait = a.cfg.FetchBackoff.Delay(failures)
			a.srcState.Failures = failures
			a.srcState.LastError = err.Error()
			a.srcState.NextRetry = now.Add(wait)
		} else {
			failures = 0
			a.srcState = status.Source{LastFetch: now}
		}
		a.mu.Unlock()
		if err != nil {
			a.log.Warn("fetch failed", "repo", a.cfg.Source.URL(), "failures", failures, "retry in", wait, "err", err)
		} else if err := a.update(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("revision", "err", err)
		}
		a.fetchDone(err)
		t := a.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.fetch:
			t.Stop()
		case <-t.C():
		}
	}
}

// update loads the ref's commit if it is new.
func (a *Agent) update(ctx context.Context) error {
	commit, err := a.cfg.Source.Resolve("")
	if err != nil {
		return err
	}
	a.mu.Lock()
	same := a.running != nil && a.running.Commit == commit || a.refused != nil && a.refused.Commit == commit
	a.mu.Unlock()
	if same {
		a.obs.unchanged(commit)
		return nil
	}
	return a.load(ctx, commit, false)
}

// load reads, validates and places the revision commit. An invalid
// revision is refused: the one running keeps running. restored says the
// revision ran before the agent restarted (no news to notify).
func (a *Agent) load(ctx context.Context, commit string, restored bool) error {
	snap, err := a.cfg.Source.Snapshot(ctx, commit)
	if err != nil {
		a.refuse(&status.Revision{Commit: commit, LoadedAt: a.clock.Now(), Errors: []string{err.Error()}})
		return err
	}
	defer snap.Close()
	rev := &status.Revision{Commit: snap.Revision, Subject: snap.Subject, Time: snap.Time, LoadedAt: a.clock.Now()}
	validateStart := a.clock.Now()
	res, err := schema.Load(snap.FS, schema.Options{Cache: a.validation})
	if err != nil {
		a.obs.validated(a.clock.Now().Sub(validateStart), 0, 0)
		rev.Errors = []string{err.Error()}
		a.refuse(rev)
		return err
	}
	a.obs.validated(a.clock.Now().Sub(validateStart), res.Files, res.CachedFiles)
	for _, f := range res.Findings {
		if f.Severity == schema.SeverityError {
			rev.Errors = append(rev.Errors, f.String())
		} else {
			rev.Warnings = append(rev.Warnings, f.String())
		}
	}
	if len(rev.Errors) == 0 {
		for _, f := range schema.Decrypt(res, a.cfg.Identities) {
			rev.Errors = append(rev.Errors, f.String())
		}
	}
	if len(rev.Errors) > 0 {
		a.refuse(rev)
		return fmt.Errorf("revision %s refused: %d errors, the first: %s", gitrev.Short(commit), len(rev.Errors), rev.Errors[0])
	}
	objs := res.RuntimeObjects()
	a.mu.Lock()
	a.objects, a.running, a.refused = objs, rev, nil
	a.revisionChanged()
	a.servicesChanged()
	a.place(a.runningKeys())
	pods, unplaceable := 0, 0
	if a.desired != nil {
		pods, unplaceable = len(a.desired.Pods), len(a.desired.Unplaceable)
	}
	err = a.saveState()
	a.mu.Unlock()
	if err != nil {
		a.log.Warn("saving state", "err", err)
	}
	a.log.Info("running revision", "commit", gitrev.Short(snap.Revision), "subject", snap.Subject, "pods", pods, "unplaceable", unplaceable)
	a.obs.applied(rev, restored)
	a.dnsChanged()
	a.publishMeta()
	a.publish()
	a.nudge()
	return nil
}

func (a *Agent) refuse(rev *status.Revision) {
	a.mu.Lock()
	a.refused = rev
	a.revisionChanged()
	a.mu.Unlock()
	a.publish()
	a.log.Error("revision refused; the last good one keeps running", "commit", gitrev.Short(rev.Commit), "errors", len(rev.Errors))
	for _, e := range rev.Errors {
		a.log.Error("  " + e)
	}
	a.obs.refused(rev)
}

// runningKeys are the pods the agent knows of on the node (a.mu held).
func (a *Agent) runningKeys() map[plan.Key]bool {
	out := map[plan.Key]bool{}
	for k := range a.pods {
		out[k] = true
	}
	return out
}

// desiredPod is what the agent wants of the pod with key: known is false
// while no revision is loaded; the pod is nil when it should not run.
func (a *Agent) desiredPod(key plan.Key) (pod *plan.DesiredPod, known bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.desired == nil {
		return nil, false
	}
	return a.desired.Pods[key], true
}

// --- the reconcile loop ---

// reconcileLoop makes sure every pod that should run or does run has a
// worker, and pokes them all on every signal: a new revision, a container
// event, a probe result, or the resync period.
func (a *Agent) reconcileLoop(ctx context.Context) {
	var events <-chan struct{}
	w, canWatch := a.cfg.Runtime.(watcher)
	if canWatch {
		events = w.Watch(ctx)
	}
	// When containerd's event stream ends (containerd restarting), the
	// loop watches again after a pause rather than at once, and relies on
	// the resync tick meanwhile.
	var rewatch <-chan time.Time
	resync := a.clock.NewTicker(a.cfg.Resync)
	defer resync.Stop()
	for {
		a.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-a.poke:
		case <-resync.C():
		case <-rewatch:
			rewatch = nil
			events = w.Watch(ctx)
		case _, ok := <-events:
			if !ok {
				events = nil
				rewatch = clock.After(a.clock, time.Second)
				continue
			}
		}
	}
}

func (a *Agent) pass(ctx context.Context) {
	observed, err := a.cfg.Runtime.ListPods(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("list pods", "err", err)
		}
		return
	}
	running := map[plan.Key]bool{}
	for _, p := range observed {
		running[p.Key()] = true
	}
	adoptedNow := false
	defer func() {
		if adoptedNow {
			a.publish()
		}
	}()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.adopting == nil && !a.adopted {
		a.adopting = map[plan.Key]bool{}
		for k := range running {
			if _, ok := a.pods[k]; !ok {
				a.adopting[k] = true
			}
		}
		adoptedNow = a.adoptedOne(plan.Key{})
	}
	a.place(running)
	a.retain(running)
	if a.histDirty {
		a.histDirty = false
		if err := a.saveState(); err != nil {
			a.log.Warn("saving state", "err", err)
		}
	}
	keys := map[plan.Key]bool{}
	if a.desired != nil {
		for k := range a.desired.Pods {
			keys[k] = true
		}
	}
	for _, p := range observed {
		keys[p.Key()] = true
	}
	// A pod the node reports syncs too, so that its report ends with it:
	// one held and never started (nothing of it in the runtime) that
	// placement moves away would otherwise stay reported, and its new
	// node would wait for it to stop (a StatefulSet pod runs once).
	for k := range a.pods {
		keys[k] = true
	}
	for k, w := range a.workers {
		select {
		case <-w.done:
			delete(a.workers, k)
		default:
		}
	}
	for k := range keys {
		w := a.workers[k]
		if w == nil {
			w = &podWorker{a: a, key: k, poke: make(chan struct{}, 1),
				kills: make(chan killRequest, 4), done: make(chan struct{})}
			a.workers[k] = w
			go w.run(ctx)
		}
		w.nudge()
	}
}

func (a *Agent) setPodStatus(key plan.Key, st *plan.PodStatus) {
	a.obs.pod(key, st)
	defer func() {
		a.dnsChanged() // once a.pods holds st
		select {
		case a.podsChanged <- struct{}{}:
		default:
		}
	}()
	defer a.publish()
	defer a.servicesChanged()
	known := st == nil || a.prober.ReadinessKnown(key)
	a.mu.Lock()
	defer a.mu.Unlock()
	if known {
		// A pod whose readiness probe has not run yet is not adopted:
		// it would show peers as unready a pod that may serve.
		a.adoptedOne(key)
	}
	if st == nil {
		delete(a.pods, key)
		if a.jobs.own[key] {
			// A finished Job pod now counts from its record (its Job's
			// health): look again, whether or not the runtime sends an
			// event.
			a.nudge()
		}
		return
	}
	a.pods[key] = *st
	if a.jobs.observe(st, a.clock.Now()) {
		if err := a.jobs.save(); err != nil {
			a.log.Warn("saving job records", "err", err)
		}
		a.nudge()
	}
}

// adoptedOne notes that the pod key has a status (the zero key: none
// more), and reports whether that ended the adoption (a.mu held).
func (a *Agent) adoptedOne(key plan.Key) bool {
	if a.adopted || a.adopting == nil {
		return false
	}
	delete(a.adopting, key)
	if len(a.adopting) > 0 {
		return false
	}
	a.adopted = true
	a.log.Debug("adopted the pods found running; publishing the node's state")
	return true
}

// adoptionTimedOut publishes the node's state even though some pod found
// running has no status yet (adoptDeadline).
func (a *Agent) adoptionTimedOut() {
	a.mu.Lock()
	late := !a.adopted
	waiting := len(a.adopting)
	a.adopted = true
	a.mu.Unlock()
	if late {
		a.log.Warn("publishing the node's state before every running pod was adopted", "waiting", waiting, "after", adoptDeadline)
		a.publish()
	}
}

// housekeeping rotates container logs and collects unused images.
func (a *Agent) housekeeping(ctx context.Context) {
	rot, canRotate := a.cfg.Runtime.(logRotator)
	gc, canCollect := a.cfg.Runtime.(imageCollector)
	logs := a.clock.NewTicker(a.cfg.LogCheck)
	defer logs.Stop()
	imgs := a.clock.NewTicker(a.cfg.ImageGCInterval)
	defer imgs.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-logs.C():
			if canRotate {
				if err := rot.RotateLogs(a.cfg.LogMaxBytes, a.cfg.LogKeep); err != nil {
					a.log.Warn("rotate logs", "err", err)
				}
			}
		case <-imgs.C():
			if canCollect {
				rep, err := gc.CollectImages(ctx, a.cfg.ImageGC)
				if err != nil && ctx.Err() == nil {
					a.log.Warn("image garbage collection", "err", err)
				} else if len(rep.Removed) > 0 {
					a.log.Info("removed unused images", "images", rep.Removed, "usage% before", rep.UsedBefore, "after", rep.UsedAfter)
				}
			}
		}
	}
}

// Status is the node's status (for the API and gitorch status).
func (a *Agent) Status() status.Node {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := status.Node{
		Node:   a.cfg.Node.Name,
		Repo:   a.cfg.Source.URL(),
		Ref:    a.cfg.Ref,
		Path:   a.cfg.Path,
		Source: a.srcState,
		Pods:   make([]plan.PodStatus, 0, len(a.pods)),
	}
	if a.running != nil {
		r := *a.running
		st.Running = &r
	}
	if a.refused != nil {
		r := *a.refused
		st.Refused = &r
	}
	if a.desired != nil {
		st.Unplaceable = slices.Clone(a.desired.Unplaceable)
		st.Jobs, st.CronJobs = a.desired.Jobs, a.desired.CronJobs
	}
	st.Workloads = slices.Clone(a.workloads)
	st.Proxy = a.proxyStatus()
	if a.leaving.Load() {
		st.Leaving = &status.Leaving{Since: a.leavingSince, Pods: len(a.pods), Held: slices.Clone(a.budgetHeld)}
	}
	for _, p := range a.pods {
		st.Pods = append(st.Pods, p)
	}
	slices.SortFunc(st.Pods, func(x, y plan.PodStatus) int { return x.Key().Compare(y.Key()) })
	return st
}

// WaitRevision blocks until the agent runs commit or refused it, or ctx
// ends; for tests and tools.
func (a *Agent) WaitRevision(ctx context.Context, commit string) (*status.Revision, error) {
	for {
		a.mu.Lock()
		run, ref, changed := a.running, a.refused, a.revChanged
		a.mu.Unlock()
		if run != nil && run.Commit == commit {
			return run, nil
		}
		if ref != nil && ref.Commit == commit {
			return ref, fmt.Errorf("revision %s refused", gitrev.Short(commit))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

// revisionChanged wakes WaitRevision (a.mu held).
func (a *Agent) revisionChanged() {
	close(a.revChanged)
	a.revChanged = make(chan struct{})
}

// Pod returns the status of one pod of the node.
func (a *Agent) Pod(namespace, name string) (plan.PodStatus, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pods[plan.Key{Namespace: namespace, Name: name}]
	return p, ok
}
