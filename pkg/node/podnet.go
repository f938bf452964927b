package node

import (
	"context"
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
)

// PodNetwork programs the routes to the peers' pod CIDRs and the egress
// masquerade of this node; *apply.PodNet implements it.
type PodNetwork interface {
	Sync(ctx context.Context, want plan.PodNetwork) error
}

// netMembers are the members as the pod network sees them: their gossip
// address and gossiped pod CIDR.
func (a *Agent) netMembers() []plan.NetMember {
	if a.cfg.Cluster == nil {
		return nil
	}
	now := a.clock.Now()
	var out []plan.NetMember
	for _, m := range a.cfg.Cluster.Members() {
		since := m.Since
		if since.IsZero() || since.After(now) {
			since = now
		}
		out = append(out, plan.NetMember{
			Name:    m.Name,
			Address: m.Addr.Addr().Unmap(),
			PodCIDR: m.Meta.PodCIDR,
			State:   plan.MemberState(m.State),
			Since:   since,
		})
	}
	return out
}

// podNetChanged asks podNetLoop to look at the membership again.
func (a *Agent) podNetChanged() {
	select {
	case a.netDirty <- struct{}{}:
	default:
	}
}

// podNetLoop keeps the node's routes and masquerade in step with the
// membership: on every membership change, when a dead member's grace ends,
// and every Resync (a route removed by hand comes back). It writes only
// when what PodRoutes decides changed, or on the resync.
func (a *Agent) podNetLoop(ctx context.Context) {
	if a.cfg.PodNet == nil {
		return
	}
	resync := a.clock.NewTicker(a.cfg.Resync)
	defer resync.Stop()
	var (
		last   plan.PodNetwork
		synced bool
		wake   <-chan time.Time
		timer  interface{ Stop() bool }
	)
	force := true
	for {
		want := plan.PodRoutes(a.netMembers(), a.cfg.Node.Name, a.cfg.Meta.PodCIDR, a.cfg.ServiceCIDR, a.cfg.Membership.DeadGrace, a.clock.Now())
		if force || !synced || !want.Equal(last) {
			err := a.cfg.PodNet.Sync(ctx, want)
			switch {
			case err != nil && ctx.Err() == nil:
				a.log.Warn("pod network", "err", err)
				synced = false
			case err == nil:
				if !synced || !want.Equal(last) {
					a.log.Info("pod network", "routes", len(want.Routes), "peers", routeNames(want.Routes))
				}
				synced = true
			}
			last = want
		}
		force = false
		if timer != nil {
			timer.Stop()
			timer, wake = nil, nil
		}
		if !want.Wake.IsZero() {
			t := a.clock.NewTimer(max(want.Wake.Sub(a.clock.Now()), 0) + 10*time.Millisecond)
			timer, wake = t, t.C()
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-a.netDirty:
		case <-wake:
		case <-resync.C():
			force = true
		}
	}
}

func routeNames(rs []plan.Route) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Node + "=" + r.Dst.String() + "@" + r.Via.String()
	}
	return out
}
