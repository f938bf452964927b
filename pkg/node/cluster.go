package node

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gitorch/gitorch/internal/gitrev"
	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/schema"
	"github.com/gitorch/gitorch/pkg/status"
)

// Cluster is the gossip layer as the agent needs it; *gossip.Gossip
// implements it. Without one the agent is a cluster of one.
type Cluster interface {
	Members() []gossip.Member
	SetMeta(gossip.Meta) error
	SetLocalState(gossip.NodeState)
	States() map[string]gossip.NodeState
}

// Default membership and hand-off timing (see docs/cluster.md).
const (
	// DefaultNodeDeadGrace is how long a dead node keeps its pods: with
	// memberlist's LAN profile a node is declared dead about 5 s after it
	// stopped answering, so its pods start elsewhere about 7.5 s after
	// (measured), and an agent restarted within about 7 s moves nothing.
	DefaultNodeDeadGrace = 2 * time.Second
	// DefaultRejoinSettle is how long a node that lost its pods must stay
	// up before it gets pods again.
	DefaultRejoinSettle = 30 * time.Second
	// DefaultFence is how long after a node's death and its dead grace its
	// StatefulSet pods wait (besides their grace period) before they start
	// elsewhere: the margin between the two sides of a partition
	// declaring each other dead.
	DefaultFence = 15 * time.Second
)

// leaveSettle is how long a leaving node disrupts none of the pods that
// PodDisruptionBudgets select: the leaves other nodes began about when it
// did reach it by gossip, and what they stopped too (a pod status missed
// by a broadcast arrives with the next full exchange, every 10 s), so
// that every node orders the same pods to disrupt (plan.Rollouts).
const leaveSettle = 10 * time.Second

// Pods a node offers when its metadata does not say (kubelet's default).
const defaultMaxPods = 110

// ClusterChanged tells the agent that membership or a peer's state
// changed (gossip's OnChange).
func (a *Agent) ClusterChanged() {
	if a.cfg.Cluster != nil {
		a.obs.membersChanged(a.cfg.Cluster.Members)
	}
	a.nudge()
	a.podNetChanged()
	a.dnsChanged()
	a.servicesChanged()
	a.heardRevisions()
	a.heardSyncRequests()
}

// members is the membership as placement sees it: this node from its
// configuration, the others from their gossiped metadata.
func (a *Agent) members() ([]plan.Member, []gossip.Member) {
	now := a.clock.Now()
	self := plan.Member{Node: a.cfg.Node, State: plan.MemberAlive, Since: a.started}
	if a.leaving.Load() {
		self.Unschedulable = true
	}
	if a.cfg.Cluster == nil {
		return []plan.Member{self}, nil
	}
	gm := a.cfg.Cluster.Members()
	out := make([]plan.Member, 0, len(gm)+1)
	seenSelf := false
	for _, m := range gm {
		if m.Name == a.cfg.Node.Name {
			seenSelf = true
			out = append(out, self)
			continue
		}
		since := m.Since
		if since.IsZero() || since.After(now) {
			since = now
		}
		out = append(out, plan.Member{
			Node: plan.Node{
				Name:          m.Name,
				Address:       m.Addr.Addr().String(),
				Labels:        m.Meta.Labels,
				Allocatable:   plan.Resources{MilliCPU: m.Meta.CPUMilli, Memory: m.Meta.MemoryBytes, Pods: defaultMaxPods},
				Unschedulable: m.Meta.Unschedulable,
			},
			State: plan.MemberState(m.State),
			Since: since,
		})
	}
	if !seenSelf {
		out = append(out, self)
	}
	return out, gm
}

// peers are the other members with the pods they report.
func (a *Agent) peers(members []plan.Member) []plan.Peer {
	if a.cfg.Cluster == nil {
		return nil
	}
	states := a.cfg.Cluster.States()
	var out []plan.Peer
	for _, m := range members {
		if m.Name == a.cfg.Node.Name {
			continue
		}
		p := plan.Peer{Member: m, Pods: map[plan.Key]plan.PeerPod{}}
		for _, pod := range states[m.Name].Pods {
			p.Pods[plan.Key{Namespace: pod.Namespace, Name: pod.Name}] = plan.PeerPod{Ready: pod.Ready, TemplateHash: pod.TemplateHash,
				Held: pod.Reason == plan.ReasonHeld}
		}
		out = append(out, p)
	}
	return out
}

// place computes the node's share of the running revision over the live
// membership, with the pods it hands over (a.mu held). running are the
// pods the node runs now.
func (a *Agent) place(running map[plan.Key]bool) {
	if a.objects == nil {
		return
	}
	now := a.clock.Now()
	members, _ := a.members()
	if until := a.rejoining(members, now); !until.IsZero() {
		// Restarted, and the members it knew are not back in its view
		// yet: it may be alone only because it has not rejoined. It
		// touches no pod (adopted ones keep running) until they are, or
		// the grace after its start ends.
		a.desired, a.budgetHeld = nil, nil
		a.wakePlacement(until)
		return
	}
	m := plan.Eligible(members, a.cfg.Node.Name, a.hist, a.cfg.Membership, now)
	if !historyEqual(a.hist, m.History) {
		a.hist = m.History
		a.histDirty = true
	}
	share := plan.NodePodsBatch(a.objects, m.Nodes, a.cfg.Node.Name, a.running.Commit, a.cfg.ServiceCIDR, running,
		a.batch(now))
	quorum := plan.Quorum(members, a.hist, a.cfg.Membership.DeadGrace, a.started, now)
	switch {
	case !quorum:
		a.quorumLost = true
	case a.quorumLost:
		a.quorumLost, a.quorumRegained = false, now
	}
	h := plan.HandOff(share, a.peers(members), quorum, a.quorumRegained, a.cfg.Handoff, now)
	if !sameNodeNames(a.membership.Nodes, m.Nodes) {
		a.dnsChanged() // whose pods count for DNS
	}
	h.Share.Jobs, h.Share.CronJobs = share.Jobs, share.CronJobs
	view := a.rolloutView(members, running, now)
	if a.leaving.Load() {
		view.DrainStarts = a.leavingSince.Add(leaveSettle)
	}
	// Cut off from the majority, the node stops its StatefulSet pods so
	// that the others may start them once fenced (HandOff): no budget may
	// keep one running here.
	view.Fenced = !quorum
	r := plan.Rollouts(a.objects, h.Share, a.retained, a.cfg.Node.Name, view, now)
	a.desired, a.membership, a.quorum, a.workloads = &r.Share, m, quorum, r.Workloads
	a.budgetHeld = r.Held
	wake := m.Wake
	for _, t := range []time.Time{h.Wake, r.Wake, nextCronRun(share.CronJobs)} {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	a.wakePlacement(wake)
}

// retain remembers the desired pod of every pod the node is to run, and
// forgets those of pods that neither run nor are wanted (a.mu held): a
// pod's template may leave the manifests while a rollout still keeps the
// pod running. running are the pods the runtime has.
func (a *Agent) retain(running map[plan.Key]bool) {
	if a.desired == nil {
		return
	}
	for k := range a.retained {
		if _, wanted := a.desired.Pods[k]; !wanted && !running[k] {
			delete(a.retained, k)
		}
	}
	for k, d := range a.desired.Pods {
		a.retained[k] = d
	}
	var revs []string
	for _, d := range a.retained {
		if d.Revision != a.running.Commit && !slices.Contains(revs, d.Revision) {
			revs = append(revs, d.Revision)
		}
	}
	slices.Sort(revs)
	if !slices.Equal(revs, a.retainedRevs) {
		a.retainedRevs = revs
		a.histDirty = true // saved with the member history
	}
}

// rolloutView is what the node knows of the cluster's pods for Rollouts
// (a.mu held): its own pods, the pods its peers report, and why it may not
// count them yet (a peer it has no news of, or one that runs another
// revision). A pod on a suspect node, or on a dead one whose grace has
// not ended, counts as existing and not ready; a lost node's pods do not
// count once placement gave them to others. The members that are alive or
// suspect and unschedulable (leaving) are draining.
func (a *Agent) rolloutView(members []plan.Member, running map[plan.Key]bool, now time.Time) plan.RolloutView {
	v := plan.RolloutView{Started: a.running.LoadedAt}
	for _, m := range members {
		if m.Unschedulable && (m.State == plan.MemberAlive || m.State == plan.MemberSuspect) {
			v.Draining = append(v.Draining, m.Name)
		}
	}
	seen := map[plan.Key]bool{}
	add := func(node, ns, name, workload, hash, phase, reason string, ready, unknown bool) {
		if reason == plan.ReasonHeld {
			// Held: reported, but nothing of it exists.
			return
		}
		k := plan.Key{Namespace: ns, Name: name}
		ready = ready && !unknown && phase != plan.PhaseTerminating
		since, ok := a.readySeen[k]
		switch {
		case ready && !ok:
			since = now
			a.readySeen[k] = now
		case !ready:
			// Ready again later, it starts its minReadySeconds again.
			delete(a.readySeen, k)
		}
		seen[k] = true
		v.Pods = append(v.Pods, plan.ClusterPod{Namespace: ns, Workload: workload, RolloutPod: plan.RolloutPod{
			Name: name, Node: node, TemplateHash: hash, Ready: ready, ReadySince: since, Unknown: unknown, Phase: phase}})
	}
	for _, p := range a.pods {
		add(a.cfg.Node.Name, p.Namespace, p.Name, p.Workload, p.TemplateHash, p.Phase, p.Reason, p.Ready, false)
	}
	// The Jobs' pods it ran, recorded finished and removed: it gossips
	// them to its peers, and its own view counts them too, or its Jobs'
	// health would miss the successes it ran.
	for _, p := range a.jobs.ownPods(a.pods) {
		add(a.cfg.Node.Name, p.Namespace, p.Name, p.Workload, p.TemplateHash, p.Phase, "", false, false)
	}
	// Pods the runtime has that no worker reported yet (just after a
	// restart) exist, readiness unknown.
	for k := range running {
		if _, ok := a.pods[k]; ok {
			continue
		}
		if d := a.retained[k]; d != nil {
			add(a.cfg.Node.Name, k.Namespace, k.Name, d.Workload, d.TemplateHash, plan.PhasePending, "", false, false)
		}
	}
	if a.cfg.Cluster != nil {
		states := a.cfg.Cluster.States()
		for _, m := range members {
			if m.Name == a.cfg.Node.Name {
				continue
			}
			unknown := false
			st, ok := states[m.Name]
			switch m.State {
			case plan.MemberAlive, plan.MemberSuspect:
				unknown = m.State == plan.MemberSuspect
				switch {
				case !ok:
					v.Waiting = "no news yet of the pods of " + m.Name
				case st.Revision != a.running.Commit && v.Waiting == "":
					v.Waiting = m.Name + " runs revision " + gitrev.Short(st.Revision)
				}
			case plan.MemberDead:
				if !now.Before(m.Since.Add(a.cfg.Membership.DeadGrace)) {
					continue
				}
				unknown = true
			default:
				continue
			}
			for _, p := range st.Pods {
				add(m.Name, p.Namespace, p.Name, p.Workload, p.TemplateHash, p.Phase, p.Reason, p.Ready, unknown)
			}
		}
	}
	for k := range a.readySeen {
		if !seen[k] {
			delete(a.readySeen, k)
		}
	}
	return v
}

// rejoining is plan.Rejoining for this agent: zero without gossip.
func (a *Agent) rejoining(members []plan.Member, now time.Time) time.Time {
	if a.cfg.Cluster == nil {
		return time.Time{}
	}
	return plan.Rejoining(members, a.cfg.Node.Name, a.hist, a.started, a.cfg.Membership.DeadGrace, now)
}

// wakePlacement arranges a pass at t, when a grace, settle or fence time
// ends.
func (a *Agent) wakePlacement(t time.Time) {
	if a.placeTimer != nil {
		a.placeTimer.Stop()
		a.placeTimer = nil
	}
	if t.IsZero() {
		return
	}
	a.placeTimer = a.clock.AfterFunc(max(t.Sub(a.clock.Now()), 0)+10*time.Millisecond, a.nudge)
}

func historyEqual(a, b plan.MemberHistory) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !v.UpSince.Equal(w.UpSince) || v.Excluded != w.Excluded || v.Left != w.Left {
			return false
		}
	}
	return true
}

// publish gossips the node's state: its revisions and its pods.
func (a *Agent) publish() {
	if a.cfg.Cluster == nil {
		return
	}
	// Pod workers publish concurrently: without this, a state read
	// before another could be set after it, and peers would see the
	// older one until the next change.
	a.publishMu.Lock()
	defer a.publishMu.Unlock()
	a.mu.Lock()
	if !a.adopted {
		// Until the pods found running are adopted (agent.go), peers
		// keep what the node's previous run told them.
		a.mu.Unlock()
		return
	}
	st := gossip.NodeState{Node: a.cfg.Node.Name}
	st.Revision, st.Refused, st.RefusedError = revisions(a.running, a.refused)
	st.SyncRequested = a.syncs.requestedCount()
	for _, p := range a.pods {
		st.Pods = append(st.Pods, gossipPod(p))
	}
	st.Pods = append(st.Pods, a.jobs.ownPods(a.pods)...)
	a.mu.Unlock()
	slices.SortFunc(st.Pods, func(x, y gossip.PodStatus) int {
		return plan.Key{Namespace: x.Namespace, Name: x.Name}.Compare(plan.Key{Namespace: y.Namespace, Name: y.Name})
	})
	a.cfg.Cluster.SetLocalState(st)
}

// revisions are the commits of the revision running and the one refused,
// and the refusal's first error, as a node reports them.
func revisions(running, refused *status.Revision) (run, ref, refErr string) {
	if running != nil {
		run = running.Commit
	}
	if refused != nil {
		ref = refused.Commit
		if len(refused.Errors) > 0 {
			refErr = refused.Errors[0]
		}
	}
	return run, ref, refErr
}

func gossipPod(p plan.PodStatus) gossip.PodStatus {
	ready, total := p.ReadyCount()
	g := gossip.PodStatus{
		Namespace: p.Namespace, Name: p.Name, Phase: p.Phase, Ready: p.Ready, IP: p.IP,
		Restarts: p.Restarts(), Revision: p.Revision, TemplateHash: p.TemplateHash, Reason: p.Reason,
		ReadyContainers: ready, Containers: total, StartedAt: p.StartedAt, Workload: p.Workload,
	}
	if p.Message != "" && p.Reason != "" {
		g.LastError = p.Message
	}
	return g
}

// publishMeta asks metaLoop to announce the node's metadata (the revision
// it runs among it).
func (a *Agent) publishMeta() {
	select {
	case a.metaDirty <- struct{}{}:
	default:
	}
}

// metaLoop announces the node's metadata whenever it changed. memberlist
// waits for an announcement to go out, so it runs on a goroutine of its
// own, one announcement at a time, always of the latest metadata.
func (a *Agent) metaLoop(ctx context.Context) {
	if a.cfg.Cluster == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.metaDirty:
		}
		a.mu.Lock()
		meta := a.cfg.Meta
		if a.running != nil {
			meta.Revision = a.running.Commit
		}
		meta.Unschedulable = a.leaving.Load()
		a.mu.Unlock()
		if err := a.cfg.Cluster.SetMeta(meta); err != nil {
			a.log.Warn("gossip metadata", "err", err)
		}
	}
}

// heardRevisions fetches at once when a peer runs or refused a revision
// this node has not loaded: a push reached that peer first (its webhook or
// poll), and the branch has likely moved. Each revision is asked for once.
func (a *Agent) heardRevisions() {
	if a.cfg.Cluster == nil {
		return
	}
	states := a.cfg.Cluster.States()
	a.mu.Lock()
	fetch := false
	for name, st := range states {
		if name == a.cfg.Node.Name {
			continue
		}
		// A revision a peer runs, or one it refused: this node fetches
		// it too, to run it or to refuse it itself.
		for _, r := range []string{st.Revision, st.Refused} {
			if r == "" || a.heard[r] || a.running != nil && a.running.Commit == r || a.refused != nil && a.refused.Commit == r {
				continue
			}
			a.heard[r] = true
			fetch = true
		}
	}
	a.mu.Unlock()
	if fetch {
		a.Sync()
	}
}

// Cluster is the cluster as this node sees it (GET /v1/cluster).
func (a *Agent) Cluster() status.Cluster {
	local := a.Status()
	c := status.Cluster{
		Node: local.Node, ClusterName: a.cfg.ClusterName, Repo: local.Repo, Ref: local.Ref, Path: local.Path,
		Running: local.Running, Refused: local.Refused, Source: local.Source, Unplaceable: local.Unplaceable,
		Jobs: local.Jobs, CronJobs: local.CronJobs,
		Pods: local.Pods, Workloads: local.Workloads, Leaving: local.Leaving,
	}
	members, gm := a.members()
	states := map[string]gossip.NodeState{}
	if a.cfg.Cluster != nil {
		states = a.cfg.Cluster.States()
	}
	a.mu.Lock()
	c.Quorum = a.quorum || a.cfg.Cluster == nil
	waiting := a.membership.Waiting
	excluded := a.hist
	finished := a.jobs.ownPods(a.pods)
	a.mu.Unlock()
	// The Jobs' pods this node ran and recorded finished, which it no
	// longer runs: listed as its peers list them from its gossip.
	ownPods := len(local.Pods)
	for _, p := range finished {
		if !slices.ContainsFunc(local.Pods, func(q plan.PodStatus) bool { return q.Namespace == p.Namespace && q.Name == p.Name }) {
			c.Pods = append(c.Pods, peerPodStatus(local.Node, p))
			ownPods++
		}
	}
	var lost []plan.PodStatus
	byName := map[string]gossip.Member{}
	for _, m := range gm {
		byName[m.Name] = m
	}
	for _, m := range members {
		sm := status.Member{
			Name: m.Name, Status: string(m.State), Since: m.Since, Labels: m.Labels, Capacity: m.Allocatable,
			Self: m.Name == local.Node, Schedulable: !excluded[m.Name].Excluded,
		}
		if t, ok := waiting[m.Name]; ok {
			sm.Schedulable, sm.SettledAt = false, t
		}
		if g, ok := byName[m.Name]; ok {
			sm.Address = g.Addr.String()
			sm.APIAddress = g.Meta.APIAddr
			if g.Meta.PodCIDR.IsValid() {
				sm.PodCIDR = g.Meta.PodCIDR.String()
			}
			sm.Revision = g.Meta.Revision
		}
		if sm.Self {
			sm.Joined = a.started
			sm.APIAddress = a.cfg.Meta.APIAddr
			sm.Revision, sm.Refused, sm.RefusedError = revisions(local.Running, local.Refused)
			sm.Pods = ownPods
		} else {
			sm.Joined = a.joined(m.Name, m.Since)
			st := states[m.Name]
			if st.Revision != "" {
				sm.Revision = st.Revision
			}
			sm.Refused, sm.RefusedError, sm.Pods = st.Refused, st.RefusedError, len(st.Pods)
			for _, p := range st.Pods {
				pod := peerPodStatus(m.Name, p)
				if m.State == plan.MemberDead || m.State == plan.MemberLeft {
					// What a lost node last said of its pods is not what
					// runs: kubectl shows such pods Unknown.
					pod.Phase, pod.Ready, pod.Reason = plan.PhaseUnknown, false, plan.ReasonNodeLost
					pod.Message = "node " + m.Name + " is " + string(m.State)
					lost = append(lost, pod)
					continue
				}
				c.Pods = append(c.Pods, pod)
			}
		}
		if sm.Self && sm.PodCIDR == "" && a.cfg.Meta.PodCIDR.IsValid() {
			sm.PodCIDR = a.cfg.Meta.PodCIDR.String()
		}
		c.Members = append(c.Members, sm)
	}
	// A lost node's pods that run elsewhere now are listed there only.
	listed := map[plan.Key]bool{}
	for _, p := range c.Pods {
		listed[p.Key()] = true
	}
	for _, p := range lost {
		if !listed[p.Key()] {
			c.Pods = append(c.Pods, p)
		}
	}
	slices.SortFunc(c.Members, func(x, y status.Member) int { return strings.Compare(x.Name, y.Name) })
	slices.SortFunc(c.Pods, func(x, y plan.PodStatus) int { return x.Key().Compare(y.Key()) })
	return c
}

// joined is when this node first saw member name (for AGE).
func (a *Agent) joined(name string, since time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.firstSeen[name]
	if !ok {
		t = since
		a.firstSeen[name] = t
	}
	return t
}

// peerPodStatus is a pod another node reports, as status shows it.
func peerPodStatus(node string, p gossip.PodStatus) plan.PodStatus {
	return plan.PodStatus{
		Namespace: p.Namespace, Name: p.Name, Node: node, Phase: p.Phase, Reason: p.Reason, Message: p.LastError,
		Ready: p.Ready, IP: p.IP, Revision: p.Revision, TemplateHash: p.TemplateHash,
		Workload: p.Workload, StartedAt: p.StartedAt,
		Summary: &plan.PodSummary{ReadyContainers: p.ReadyContainers, Containers: p.Containers, Restarts: p.Restarts},
	}
}

// MetaFor is the metadata a node gossips about itself, from its
// configuration.
func MetaFor(n plan.Node, apiAddr string, podCIDR netip.Prefix) gossip.Meta {
	return gossip.Meta{APIAddr: apiAddr, PodCIDR: podCIDR, Labels: n.Labels, CPUMilli: n.Allocatable.MilliCPU, MemoryBytes: n.Allocatable.Memory}
}

// Leave moves the node's pods to the others and waits until it runs none:
// the node becomes unschedulable (gossiped), every other node places its
// pods elsewhere, and each pod stops here once its new copy is ready there.
// A StatefulSet pod stops first, then starts elsewhere, and a pod that fits
// nowhere else stops: those wait while a PodDisruptionBudget selecting
// them allows no disruption (as kubectl drain waits on evictions). The
// caller then leaves the gossip cluster and stops the agent. It gives up
// when ctx ends, leaving the node unschedulable, with an error that names
// the pods still here and the budgets that hold them.
func (a *Agent) Leave(ctx context.Context) error {
	a.mu.Lock()
	if !a.leaving.Load() {
		a.leavingSince = a.clock.Now()
	}
	a.leaving.Store(true)
	a.mu.Unlock()
	a.log.Info("leaving the cluster: moving this node's pods to the others")
	a.publishMeta()
	a.nudge()
	var logged []plan.BudgetHold
	for {
		a.mu.Lock()
		left := len(a.pods)
		held := slices.Clone(a.budgetHeld)
		a.mu.Unlock()
		if left == 0 {
			a.log.Info("this node runs no pods any more")
			return nil
		}
		if !slices.Equal(held, logged) {
			if len(held) > 0 {
				a.log.Info("leave waits for PodDisruptionBudgets", "held", heldText(held))
			}
			logged = held
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("leave: %d pods still run here", left)
			if left == 1 {
				msg = "leave: 1 pod still runs here"
			}
			if len(held) > 0 {
				msg += "; held by PodDisruptionBudgets that allow no disruption now: " + heldText(held) +
					" (they allow one once another pod they select is ready, or once the budget is relaxed in Git)"
			}
			msg += "; the node stays unschedulable: run leave again, or restart the agent to make it schedulable again"
			return fmt.Errorf("%s: %w", msg, ctx.Err())
		case <-a.podsChanged:
		}
	}
}

// heldText lists pods with the budgets that hold them: "default/db-1
// (budget db), ...".
func heldText(held []plan.BudgetHold) string {
	parts := make([]string, len(held))
	for i, h := range held {
		parts[i] = h.Namespace + "/" + h.Name + " (budget " + h.Budget + ")"
	}
	return strings.Join(parts, ", ")
}

// RevisionFiles writes the files of the running revision, as the node
// validated them, to w as a tar archive (WriteRevisionFiles), and returns
// the commit (for 'gitorch plan' against the live cluster).
func (a *Agent) RevisionFiles(ctx context.Context, w io.Writer) (string, error) {
	a.mu.Lock()
	var commit string
	if a.running != nil {
		commit = a.running.Commit
	}
	a.mu.Unlock()
	if commit == "" {
		return "", errors.New("no revision runs yet")
	}
	snap, err := a.cfg.Source.Snapshot(ctx, commit)
	if err != nil {
		return "", err
	}
	defer snap.Close()
	return commit, WriteRevisionFiles(w, snap.FS, snap.Time)
}

// WriteRevisionFiles writes the files of fsys to w as a tar archive, as a
// node serves its revision's. A Secret's values never leave the node:
// each is replaced by its fingerprint (schema.RedactSecrets), so that a
// plan still tells which changed, and a directory whose CUE files may
// define a Secret is served as its objects (schema.RedactObjects, in
// schema.CUEObjectsFile) in place of those files.
func WriteRevisionFiles(w io.Writer, fsys fs.FS, modTime time.Time) error {
	type file struct {
		name string
		data []byte
	}
	var files []file
	cueDirs := map[string][]runtime.Object{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		b, _, err = schema.RedactSecrets(p, b)
		switch {
		case errors.Is(err, schema.ErrSecretInCUE):
			cueDirs[path.Dir(p)] = nil
		case err != nil:
			return err
		}
		files = append(files, file{p, b})
		return nil
	})
	if err != nil {
		return err
	}
	if len(cueDirs) > 0 {
		res, err := schema.Load(fsys, schema.Options{})
		if err != nil {
			return err
		}
		for _, o := range res.Objects {
			dir := path.Dir(o.Pos.File)
			if objs, ok := cueDirs[dir]; ok && path.Ext(o.Pos.File) == ".cue" {
				cueDirs[dir] = append(objs, o.Obj)
			}
		}
		for _, dir := range slices.Sorted(maps.Keys(cueDirs)) {
			b, err := schema.RedactObjects(cueDirs[dir])
			if err != nil {
				return err
			}
			files = append(files, file{path.Join(dir, schema.CUEObjectsFile), b})
		}
	}
	tw := tar.NewWriter(w)
	for _, f := range files {
		if _, ok := cueDirs[path.Dir(f.name)]; ok && path.Ext(f.name) == ".cue" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: modTime, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}
