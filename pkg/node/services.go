package node

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gitorch/gitorch/pkg/clock"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/status"
)

// Proxy is the Service proxy as the agent needs it: *proxy.Proxy (the
// nftables table) implements it, applytest.FakeProxy records what it is
// given.
type Proxy interface {
	Sync(plan.Ruleset) error
}

// ProxyRetry is how long after a failed sync the proxy tries again.
const ProxyRetry = time.Second

// servicesChanged asks proxyLoop to look at the Services again: the
// objects, the members or a pod's status changed.
func (a *Agent) servicesChanged() {
	select {
	case a.proxyDirty <- struct{}{}:
	default:
	}
}

// proxyLoop keeps the proxy's rules in step with the Services of the
// running revision and their endpoints, cluster-wide: on every change it
// computes the whole ruleset (level-triggered) and writes it when it
// differs from the last one written.
func (a *Agent) proxyLoop(ctx context.Context) {
	if a.cfg.Proxy == nil {
		return
	}
	var last *plan.Ruleset // written
	var rc rulesetCache
	lastErr := "" // logged once until it changes or a sync succeeds
	var retry <-chan time.Time
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.proxyDirty:
		case <-retry:
		}
		retry = nil
		r, services, ok := a.ruleset(&rc)
		if !ok || last != nil && last.Equal(&r) {
			continue
		}
		start := a.clock.Now()
		err := a.cfg.Proxy.Sync(r)
		took := a.clock.Now().Sub(start)
		a.mu.Lock()
		a.proxy.LastSync, a.proxy.Services, a.proxy.Chains = start, services, r.ChainCount()
		a.proxy.LastError = ""
		if err != nil {
			a.proxy.LastError = err.Error()
			a.proxy.Failures++
		}
		a.mu.Unlock()
		a.obs.proxySynced(took, err)
		if err != nil {
			if msg := err.Error(); msg != lastErr {
				a.log.Warn("service proxy sync failed; retrying", "err", err, "every", ProxyRetry)
				lastErr = msg
			}
			last = nil
			timer = a.clock.NewTimer(ProxyRetry)
			retry = timer.C()
			continue
		}
		if lastErr != "" {
			a.log.Info("service proxy synced again after failures")
			lastErr = ""
		}
		a.log.Debug("service proxy synced", "services", services, "chains", r.ChainCount(), "took", took)
		last = &r
	}
}

// rulesetCache is what ruleset keeps from one computation to the next:
// the Services of the revision with their addresses and the workloads
// they select (computed again only when the revision changes), and the
// last ruleset, whose rules are reused for the Services that did not
// change.
type rulesetCache struct {
	objects  []runtime.Object
	services *plan.ProxyServices
	index    *plan.EndpointIndex
	eps      *plan.EndpointSet
	count    int
	last     *plan.Ruleset
}

// ruleset is this node's Service ruleset now, and the number of Services;
// ok is false before a revision is loaded.
func (a *Agent) ruleset(c *rulesetCache) (plan.Ruleset, int, bool) {
	a.mu.Lock()
	objects := a.objects
	a.mu.Unlock()
	if objects == nil {
		return plan.Ruleset{}, 0, false
	}
	if !sameObjects(objects, c.objects) {
		var services []*corev1.Service
		for _, o := range objects {
			if s, ok := o.(*corev1.Service); ok {
				services = append(services, s)
			}
		}
		services = plan.AllocateNodePorts(services, a.cfg.NodePortRange)
		c.services = plan.NewProxyServices(services, plan.AllocateClusterIPs(services, a.cfg.ServiceCIDR))
		c.index = plan.NewEndpointIndex(objects)
		c.objects, c.count = objects, len(services)
	}
	c.eps = c.index.EndpointsFrom(c.eps, a.clusterPods())
	r := c.services.Rules(c.last, c.eps.Services, plan.ProxyOptions{Node: a.cfg.Node.Name, NodePortRange: a.cfg.NodePortRange})
	c.last = &r
	return r, c.count, true
}

// sameObjects reports whether a and b are one revision's objects: the
// agent replaces its objects whole, and never changes a revision's slice.
func sameObjects(a, b []runtime.Object) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// clusterPods are the pods of every node that is alive or suspect: this
// node's as it knows them, the others' as gossip reports them. A dead or
// departed node's pods serve nobody.
func (a *Agent) clusterPods() []plan.PodStatus {
	a.mu.Lock()
	pods := make([]plan.PodStatus, 0, len(a.pods))
	for _, p := range a.pods {
		p.Node = a.cfg.Node.Name
		pods = append(pods, p)
	}
	a.mu.Unlock()
	if a.cfg.Cluster == nil {
		return pods
	}
	states := a.cfg.Cluster.States()
	for _, m := range a.cfg.Cluster.Members() {
		if m.Name == a.cfg.Node.Name {
			continue
		}
		if s := plan.MemberState(m.State); s == plan.MemberDead || s == plan.MemberLeft {
			continue
		}
		for _, p := range states[m.Name].Pods {
			pods = append(pods, peerPodStatus(m.Name, p))
		}
	}
	return pods
}

// ProxyStatus is how the Service proxy does (GET /v1/status).
func (a *Agent) proxyStatus() *status.Proxy {
	if a.cfg.Proxy == nil {
		return nil
	}
	p := a.proxy
	return &p
}
