package plan

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestResolveBounds(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(n int) *intstr.IntOrString { v := intstr.FromInt32(int32(n)); return &v }
	for _, c := range []struct {
		name                string
		surge, unavail      *intstr.IntOrString
		replicas            int
		wantSurge, wantUnav int
	}{
		{"defaults of 25% on 4", nil, nil, 4, 1, 1},
		{"surge rounds up, unavailable down", pct("25%"), pct("25%"), 10, 3, 2},
		{"25% of 1: one extra, none unavailable", nil, nil, 1, 1, 0},
		{"counts as given", num(2), num(0), 6, 2, 0},
		{"both 0 after rounding: one unavailable", pct("0%"), pct("10%"), 3, 0, 1},
		{"100% unavailable", num(0), pct("100%"), 5, 0, 5},
		{"no replicas", nil, nil, 0, 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, u := ResolveBounds(c.surge, c.unavail, c.replicas)
			if s != c.wantSurge || u != c.wantUnav {
				t.Errorf("ResolveBounds = surge %d, unavailable %d; want %d, %d", s, u, c.wantSurge, c.wantUnav)
			}
		})
	}
}

var rt0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func targets(prefix string, n int) []RolloutTarget {
	out := make([]RolloutTarget, n)
	for i := range out {
		out[i] = RolloutTarget{Name: prefix + "-" + strconv.Itoa(i)}
	}
	return out
}

func pods(prefix, hash string, ready bool, ords ...int) []RolloutPod {
	var out []RolloutPod
	for _, i := range ords {
		out = append(out, RolloutPod{Name: prefix + "-" + strconv.Itoa(i), TemplateHash: hash, Ready: ready, ReadySince: rt0})
	}
	return out
}

func setNames(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestDecideRollout(t *testing.T) {
	base := func(s Strategy, ps ...[]RolloutPod) *RolloutInput {
		in := &RolloutInput{Kind: "Deployment", Namespace: "default", Name: "web", Hash: "new",
			Targets: targets("web-new", 3), Strategy: s, Started: rt0}
		for _, p := range ps {
			in.Pods = append(in.Pods, p...)
		}
		return in
	}
	for _, c := range []struct {
		name              string
		in                *RolloutInput
		now               time.Time
		wantStart, wantSt []string
		health            Health
	}{
		{
			name:      "surge 1, unavailable 0: one new pod, no old stops",
			in:        base(Strategy{MaxSurge: 1}, pods("web-old", "old", true, 0, 1, 2)),
			wantStart: []string{"web-new-0"}, health: HealthProgressing,
		},
		{
			name:   "surge 0, unavailable 1: the highest old ordinal stops first, no new pod yet",
			in:     base(Strategy{MaxUnavailable: 1}, pods("web-old", "old", true, 0, 1, 2)),
			wantSt: []string{"web-old-2"}, health: HealthProgressing,
		},
		{
			name:      "surge 0, unavailable 1, one old gone: its new pod may start, the others stay",
			in:        base(Strategy{MaxUnavailable: 1}, pods("web-old", "old", true, 0, 1)),
			wantStart: []string{"web-new-0"}, health: HealthProgressing,
		},
		{
			name: "a ready new pod lets one more old pod stop",
			in: base(Strategy{MaxSurge: 1}, pods("web-old", "old", true, 0, 1, 2),
				pods("web-new", "new", true, 0)),
			wantStart: []string{"web-new-0"}, wantSt: []string{"web-old-2"}, health: HealthProgressing,
		},
		{
			name: "minReadySeconds: a new pod ready for less does not count",
			in: base(Strategy{MaxSurge: 1, MinReady: 10 * time.Second}, pods("web-old", "old", true, 0, 1, 2),
				pods("web-new", "new", true, 0)),
			now:       rt0.Add(5 * time.Second),
			wantStart: []string{"web-new-0"}, health: HealthProgressing,
		},
		{
			name:   "recreate: every old pod stops, no new one starts",
			in:     base(Strategy{Recreate: true}, pods("web-old", "old", true, 0, 1, 2)),
			wantSt: []string{"web-old-0", "web-old-1", "web-old-2"}, health: HealthProgressing,
		},
		{
			name:      "recreate: once the old pods are gone, the new ones start",
			in:        base(Strategy{Recreate: true}),
			wantStart: []string{"web-new-0", "web-new-1", "web-new-2"}, health: HealthProgressing,
		},
		{
			name:   "paused: nothing is replaced",
			in:     base(Strategy{MaxSurge: 1, Paused: true}, pods("web-old", "old", true, 0, 1, 2)),
			health: HealthSuspended,
		},
		{
			name: "past the deadline: Degraded, the old pods keep serving",
			in: base(Strategy{MaxSurge: 1, ProgressDeadline: time.Minute}, pods("web-old", "old", true, 0, 1, 2),
				pods("web-new", "new", false, 0)),
			now:       rt0.Add(2 * time.Minute),
			wantStart: []string{"web-new-0"}, health: HealthDegraded,
		},
		{
			name: "a view it cannot trust: hold",
			in: func() *RolloutInput {
				in := base(Strategy{MaxUnavailable: 1}, pods("web-old", "old", true, 0, 1, 2))
				in.Waiting = "no news of node-b"
				return in
			}(),
			health: HealthProgressing,
		},
		{
			name: "an old pod on a suspect node counts, not as ready",
			in: func() *RolloutInput {
				in := base(Strategy{MaxSurge: 1}, pods("web-old", "old", true, 0, 1, 2), pods("web-new", "new", true, 0, 1))
				in.Pods[0].Unknown = true
				return in
			}(),
			wantStart: []string{"web-new-0", "web-new-1"}, wantSt: []string{"web-old-1", "web-old-2"}, health: HealthProgressing,
		},
		{
			name:      "complete: Healthy",
			in:        base(Strategy{MaxSurge: 1}, pods("web-new", "new", true, 0, 1, 2)),
			wantStart: []string{"web-new-0", "web-new-1", "web-new-2"}, health: HealthHealthy,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := c.now
			if now.IsZero() {
				now = rt0.Add(time.Second)
			}
			d := DecideRollout(c.in, now)
			if got := setNames(d.Start); !slices.Equal(got, c.wantStart) {
				t.Errorf("start %v, want %v", got, c.wantStart)
			}
			if got := setNames(d.Stop); !slices.Equal(got, c.wantSt) {
				t.Errorf("stop %v, want %v", got, c.wantSt)
			}
			if d.Status.Health != c.health {
				t.Errorf("health %s (%s), want %s", d.Status.Health, d.Status.Message, c.health)
			}
		})
	}
}

func TestDecideRolloutDaemonSet(t *testing.T) {
	in := &RolloutInput{Kind: "DaemonSet", Namespace: "default", Name: "agent", Hash: "new", Daemon: true,
		Strategy: Strategy{MaxUnavailable: 1}, Started: rt0}
	for _, n := range []string{"c", "a", "b"} {
		in.Targets = append(in.Targets, RolloutTarget{Name: "agent-new-" + n, Node: n})
		in.Pods = append(in.Pods, RolloutPod{Name: "agent-old-" + n, Node: n, TemplateHash: "old", Ready: true})
	}
	d := DecideRollout(in, rt0)
	if got := setNames(d.Stop); !slices.Equal(got, []string{"agent-old-a"}) {
		t.Errorf("stop %v, want the first node's old pod", got)
	}
	if len(d.Start) != 0 {
		t.Errorf("start %v, want none while every node has its old pod", setNames(d.Start))
	}
	// Node a's old pod is gone and its new pod is ready: b's turn.
	in.Pods = slices.DeleteFunc(in.Pods, func(p RolloutPod) bool { return p.Node == "a" })
	in.Pods = append(in.Pods, RolloutPod{Name: "agent-new-a", Node: "a", TemplateHash: "new", Ready: true})
	d = DecideRollout(in, rt0)
	if got := setNames(d.Stop); !slices.Equal(got, []string{"agent-old-b"}) {
		t.Errorf("stop %v, want b's old pod", got)
	}
}

// The skew simulation: several nodes, each acting on its own pods from a
// view in which every peer's pods are as that peer reported them some
// time ago (a different lag per peer and per step). Sampled after every
// step, the cluster never has fewer than replicas − maxUnavailable ready
// pods nor more than replicas + maxSurge pods, and the rollout completes.
func TestRolloutSkewSimulation(t *testing.T) {
	for seed := range 300 {
		t.Run(strconv.Itoa(seed), func(t *testing.T) { simulateRollout(t, uint64(seed)) })
	}
}

type simPod struct {
	RolloutPod
	readyAt   int // step at which it becomes ready
	goneAt    int // step at which a stopping pod is gone; -1 while running
	startedAt int
}

func simulateRollout(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	nNodes := 2 + rng.IntN(4)
	daemon := rng.IntN(4) == 0
	nodes := make([]string, nNodes)
	for i := range nodes {
		nodes[i] = "node-" + strconv.Itoa(i)
	}
	r := 1 + rng.IntN(10)
	if daemon {
		r = nNodes
	}
	s := Strategy{MaxSurge: rng.IntN(3), MaxUnavailable: rng.IntN(3)}
	if daemon {
		s.MaxSurge = 0
	}
	if s.MaxSurge == 0 && s.MaxUnavailable == 0 {
		s.MaxUnavailable = 1
	}
	if rng.IntN(3) == 0 {
		s.MinReady = time.Duration(1+rng.IntN(3)) * 100 * time.Millisecond
	}
	const step = 100 * time.Millisecond
	maxLag := 1 + rng.IntN(8) // steps of gossip delay
	in := RolloutInput{Kind: "Deployment", Namespace: "default", Name: "web", Hash: "new", Daemon: daemon,
		Strategy: s, Started: rt0}
	owner := map[string]string{}
	var pods []*simPod
	for i := range r {
		tg := RolloutTarget{Name: "web-new-" + strconv.Itoa(i), Node: nodes[rng.IntN(nNodes)]}
		old := RolloutPod{Name: "web-old-" + strconv.Itoa(i), Node: nodes[rng.IntN(nNodes)], TemplateHash: "old", Ready: true}
		if daemon {
			tg = RolloutTarget{Name: "web-new-" + nodes[i], Node: nodes[i]}
			old = RolloutPod{Name: "web-old-" + nodes[i], Node: nodes[i], TemplateHash: "old", Ready: true}
		}
		in.Targets = append(in.Targets, tg)
		owner[tg.Name] = tg.Node
		pods = append(pods, &simPod{RolloutPod: old, goneAt: -1})
	}
	slices.SortFunc(in.Targets, func(a, b RolloutTarget) int { return cmpOrdinal(a.Name, b.Name) })
	// history[step][node] is what node reported at the end of step.
	var history []map[string][]RolloutPod
	report := func(at int) map[string][]RolloutPod {
		out := map[string][]RolloutPod{}
		for _, p := range pods {
			if p.goneAt >= 0 && p.goneAt <= at {
				continue
			}
			rp := p.RolloutPod
			rp.Ready = p.goneAt < 0 && p.readyAt <= at
			out[p.Node] = append(out[p.Node], rp)
		}
		return out
	}
	// readySeen[viewer][pod]: when the viewer first saw the pod ready.
	readySeen := map[string]map[string]time.Time{}
	for _, n := range nodes {
		readySeen[n] = map[string]time.Time{}
	}
	const maxSteps = 2000
	for at := 0; at < maxSteps; at++ {
		history = append(history, report(at))
		now := rt0.Add(time.Duration(at) * step)
		for _, self := range rng.Perm(nNodes) {
			me := nodes[self]
			view := in
			view.Pods = nil
			for _, n := range nodes {
				seen := at
				if n != me {
					seen = max(0, at-rng.IntN(maxLag+1))
				}
				for _, p := range history[seen][n] {
					if p.Ready {
						if _, ok := readySeen[me][p.Name]; !ok {
							readySeen[me][p.Name] = now
						}
						p.ReadySince = readySeen[me][p.Name]
					}
					view.Pods = append(view.Pods, p)
				}
			}
			d := DecideRollout(&view, now)
			for name := range d.Start {
				if owner[name] != me || slices.ContainsFunc(pods, func(p *simPod) bool { return p.Name == name }) {
					continue
				}
				pods = append(pods, &simPod{RolloutPod: RolloutPod{Name: name, Node: me, TemplateHash: "new"},
					readyAt: at + 1 + rng.IntN(6), goneAt: -1, startedAt: at})
			}
			for _, p := range pods {
				if p.Node == me && d.Stop[p.Name] && p.goneAt < 0 {
					if p.TemplateHash == "new" {
						t.Fatalf("seed %d step %d: %s stopped a new pod %s", seed, at, me, p.Name)
					}
					p.goneAt = at + 1 + rng.IntN(4)
				}
			}
		}
		// Sample the truth at the end of the step.
		ready, exist, newReady, oldLeft := 0, 0, 0, 0
		for _, p := range pods {
			if p.goneAt >= 0 && p.goneAt <= at {
				continue
			}
			exist++
			if p.goneAt < 0 && p.readyAt <= at {
				ready++
				if p.TemplateHash == "new" {
					newReady++
				}
			}
			if p.TemplateHash == "old" {
				oldLeft++
			}
		}
		if min := r - s.MaxUnavailable; ready < min {
			t.Fatalf("seed %d step %d (replicas %d, surge %d, unavailable %d, lag %d, daemon %v): %d ready, below %d",
				seed, at, r, s.MaxSurge, s.MaxUnavailable, maxLag, daemon, ready, min)
		}
		if most := r + s.MaxSurge; exist > most {
			t.Fatalf("seed %d step %d (replicas %d, surge %d, unavailable %d, lag %d, daemon %v): %d pods, above %d",
				seed, at, r, s.MaxSurge, s.MaxUnavailable, maxLag, daemon, exist, most)
		}
		if oldLeft == 0 && newReady == r {
			return
		}
	}
	t.Fatalf("seed %d: the rollout did not complete in %d steps", seed, maxSteps)
}

func cmpOrdinal(a, b string) int { return ordinalOf(a) - ordinalOf(b) }

// BenchmarkDecideRollout decides one step of a rollout of 10,000 pods: 5,000
// old, 5,000 new of which half are ready.
func BenchmarkDecideRollout(b *testing.B) {
	const n = 10_000
	in := &RolloutInput{Kind: "Deployment", Namespace: "default", Name: "web", Hash: "new",
		Targets: targets("web-new", n/2), Strategy: Strategy{MaxSurge: 250, MaxUnavailable: 250}, Started: rt0}
	for i := range n / 2 {
		in.Pods = append(in.Pods, RolloutPod{Name: fmt.Sprintf("web-old-%d", i), Node: "node", TemplateHash: "old", Ready: true})
		in.Pods = append(in.Pods, RolloutPod{Name: fmt.Sprintf("web-new-%d", i), Node: "node", TemplateHash: "new", Ready: i%2 == 0, ReadySince: rt0})
	}
	now := rt0.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		d := DecideRollout(in, now)
		if len(d.Stop) == 0 {
			b.Fatal("nothing stops")
		}
	}
}
