package plan

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"
)

// stsPods makes pods db-<i> from a compact form: per ordinal, "" absent,
// "r" ready with the new template, "u" new and unready, "R" old and ready,
// "U" old and unready.
func stsPods(states ...string) []RolloutPod {
	var out []RolloutPod
	for i, s := range states {
		if s == "" {
			continue
		}
		p := RolloutPod{Name: fmt.Sprintf("db-%d", i), Node: "n1", TemplateHash: "new", Ready: s == "r" || s == "R", Phase: PhaseRunning}
		if s == "R" || s == "U" {
			p.TemplateHash = "old"
		}
		out = append(out, p)
	}
	return out
}

func TestDecideStatefulSet(t *testing.T) {
	ordered := StatefulSetPolicy{MaxUnavailable: 1}
	parallel := StatefulSetPolicy{Parallel: true, MaxUnavailable: 1}
	cases := []struct {
		name                 string
		replicas             int
		policy               StatefulSetPolicy
		deleted              bool
		waiting              string
		pods                 []RolloutPod
		start, replace, stop []string
		health               Health
	}{
		{name: "ordered: only ordinal 0 starts in an empty set", replicas: 3, policy: ordered,
			start: []string{"db-0"}, health: HealthProgressing},
		{name: "ordered: 1 waits while 0 is not ready", replicas: 3, policy: ordered, pods: stsPods("u"),
			start: []string{"db-0"}, health: HealthProgressing},
		{name: "ordered: 1 starts once 0 is ready", replicas: 3, policy: ordered, pods: stsPods("r"),
			start: []string{"db-0", "db-1"}, health: HealthProgressing},
		{name: "ordered: a gap waits for its predecessors", replicas: 3, policy: ordered, pods: stsPods("u", "", "r"),
			start: []string{"db-0", "db-2"}, health: HealthProgressing},
		{name: "parallel: all start at once", replicas: 3, policy: parallel,
			start: []string{"db-0", "db-1", "db-2"}, health: HealthProgressing},
		{name: "all ready is healthy", replicas: 3, policy: ordered, pods: stsPods("r", "r", "r"),
			start: []string{"db-0", "db-1", "db-2"}, health: HealthHealthy},
		{name: "ordered scale-down stops the highest only", replicas: 1, policy: ordered, pods: stsPods("r", "r", "r"),
			start: []string{"db-0"}, stop: []string{"db-2"}, health: HealthProgressing},
		{name: "ordered scale-down waits for an unready predecessor", replicas: 1, policy: ordered, pods: stsPods("r", "u", "r"),
			start: []string{"db-0"}, health: HealthProgressing},
		{name: "ordered scale-down goes on once the highest is gone", replicas: 1, policy: ordered, pods: stsPods("r", "r"),
			start: []string{"db-0"}, stop: []string{"db-1"}, health: HealthProgressing},
		{name: "parallel scale-down stops all at once", replicas: 1, policy: parallel, pods: stsPods("r", "u", "r"),
			start: []string{"db-0"}, stop: []string{"db-1", "db-2"}, health: HealthProgressing},
		{name: "deletion stops the highest, ready or not", replicas: 3, deleted: true, policy: parallel, pods: stsPods("u", "u"),
			stop: []string{"db-1"}, health: HealthProgressing},
		{name: "rolling update replaces the highest first", replicas: 3, policy: ordered, pods: stsPods("R", "R", "R"),
			replace: []string{"db-2"}, start: []string{"db-2"}, health: HealthProgressing},
		{name: "rolling update waits for the replaced pod to be ready", replicas: 3, policy: ordered, pods: stsPods("R", "R", "u"),
			start: []string{"db-2"}, health: HealthProgressing},
		{name: "rolling update waits for the replaced pod to come back", replicas: 3, policy: ordered, pods: stsPods("R", "R", ""),
			start: []string{"db-2"}, health: HealthProgressing},
		{name: "rolling update goes on once it is ready", replicas: 3, policy: ordered, pods: stsPods("R", "R", "r"),
			replace: []string{"db-1"}, start: []string{"db-1", "db-2"}, health: HealthProgressing},
		{name: "partition keeps the lower ordinals", replicas: 3, policy: StatefulSetPolicy{Partition: 2, MaxUnavailable: 1}, pods: stsPods("R", "R", "r"),
			start: []string{"db-2"}, health: HealthHealthy},
		{name: "partition above the replicas replaces nothing", replicas: 3, policy: StatefulSetPolicy{Partition: 5, MaxUnavailable: 1}, pods: stsPods("R", "R", "R"),
			health: HealthHealthy},
		{name: "maxUnavailable 2 replaces two at a time", replicas: 4, policy: StatefulSetPolicy{Parallel: true, MaxUnavailable: 2}, pods: stsPods("R", "R", "R", "R"),
			replace: []string{"db-2", "db-3"}, start: []string{"db-2", "db-3"}, health: HealthProgressing},
		{name: "an old pod that is not ready is replaced at no cost", replicas: 3, policy: ordered, pods: stsPods("R", "R", "U"),
			replace: []string{"db-2"}, start: []string{"db-2"}, health: HealthProgressing},
		{name: "ordered rolls nothing while a lower pod is unready", replicas: 3, policy: ordered, pods: stsPods("u", "R", "R"),
			start: []string{"db-0"}, health: HealthProgressing},
		{name: "parallel rolls above an unready lower pod outside the partition", replicas: 3, policy: StatefulSetPolicy{Parallel: true, Partition: 1, MaxUnavailable: 1}, pods: stsPods("u", "R", "R"),
			replace: []string{"db-2"}, start: []string{"db-0", "db-2"}, health: HealthProgressing},
		{name: "OnDelete replaces nothing and is healthy", replicas: 2, policy: StatefulSetPolicy{OnDelete: true, MaxUnavailable: 1}, pods: stsPods("R", "R"),
			health: HealthHealthy},
		{name: "OnDelete: a pod that is gone comes back with the new template", replicas: 2, policy: StatefulSetPolicy{OnDelete: true, MaxUnavailable: 1}, pods: stsPods("R"),
			start: []string{"db-1"}, health: HealthProgressing},
		{name: "a pod far beyond the replicas stops first", replicas: 1, policy: ordered,
			pods:  append(stsPods("r", "r"), RolloutPod{Name: "db-50000", TemplateHash: "new", Ready: true, Phase: PhaseRunning}),
			start: []string{"db-0"}, stop: []string{"db-50000"}, health: HealthProgressing},
		{name: "names that are no ordinal of db are not its pods", replicas: 1, policy: ordered,
			pods:  append(stsPods("r"), RolloutPod{Name: "db-01", Ready: true}, RolloutPod{Name: "db-x-1", Ready: true}, RolloutPod{Name: "db-+1", Ready: true}),
			start: []string{"db-0"}, health: HealthHealthy},
		{name: "waiting starts, stops and replaces nothing", replicas: 2, policy: ordered, waiting: "no news", pods: stsPods("R", "", "r"),
			health: HealthProgressing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := DecideStatefulSet(&StatefulSetInput{Name: "db", Hash: "new", Replicas: c.replicas, Policy: c.policy, Deleted: c.deleted, Pods: c.pods, Waiting: c.waiting})
			if got := setNames(d.Start); !slices.Equal(got, c.start) {
				t.Errorf("start = %v, want %v", got, c.start)
			}
			if got := setNames(d.Replace); !slices.Equal(got, c.replace) {
				t.Errorf("replace = %v, want %v", got, c.replace)
			}
			if got := setNames(d.Stop); !slices.Equal(got, c.stop) {
				t.Errorf("stop = %v, want %v", got, c.stop)
			}
			if d.Status.Health != c.health {
				t.Errorf("health = %s (%s), want %s", d.Status.Health, d.Status.Message, c.health)
			}
		})
	}
}

// A rolling update over nodes whose views of the others lag behind (each
// pod on its own node, each node's news of a peer moving forward by random
// amounts): with maxUnavailable 1, never more than one of the pods is
// unavailable, and the update still completes, highest ordinal first.
func TestDecideStatefulSetUnderGossipSkew(t *testing.T) {
	const n = 5
	type state struct {
		hash          string
		exists, ready bool
	}
	for seed := int64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewSource(seed))
		hist := [][n]state{{}}
		for i := range n {
			hist[0][i] = state{hash: "old", exists: true, ready: true}
		}
		seen := [n][n]int{} // seen[a][b]: the step of b's state that a knows
		var order []int
		for step := 0; step < 2000; step++ {
			cur := hist[len(hist)-1]
			done := true
			for _, s := range cur {
				done = done && s.hash == "new" && s.ready
			}
			if done {
				break
			}
			a := rng.Intn(n)
			for b := range n {
				if b == a {
					seen[a][b] = len(hist) - 1
				} else if rng.Intn(3) == 0 {
					seen[a][b] += rng.Intn(len(hist) - seen[a][b])
				}
			}
			var pods []RolloutPod
			for b := range n {
				s := hist[seen[a][b]][b]
				if s.exists {
					pods = append(pods, RolloutPod{Name: fmt.Sprintf("db-%d", b), TemplateHash: s.hash, Ready: s.ready, Phase: PhaseRunning})
				}
			}
			d := DecideStatefulSet(&StatefulSetInput{Name: "db", Hash: "new", Replicas: n, Policy: StatefulSetPolicy{MaxUnavailable: 1}, Pods: pods})
			me := fmt.Sprintf("db-%d", a)
			next := cur
			s := &next[a]
			switch {
			case s.exists && s.hash == "old" && d.Replace[me]:
				*s = state{}
				order = append(order, a)
			case !s.exists && d.Start[me]:
				*s = state{hash: "new", exists: true}
			case s.exists && !s.ready:
				s.ready = true // probes pass
			}
			hist = append(hist, next)
			unavailable := 0
			for _, s := range next {
				if !s.exists || !s.ready {
					unavailable++
				}
			}
			if unavailable > 1 {
				t.Fatalf("seed %d step %d: %d pods unavailable: %+v", seed, step, unavailable, next)
			}
		}
		if !slices.Equal(order, []int{4, 3, 2, 1, 0}) {
			t.Fatalf("seed %d: replaced %v, want 4 3 2 1 0 (and all of them)", seed, order)
		}
	}
}

// With minReadySeconds, a pod counts as Running and Ready once it has been
// ready that long: the next ordinal waits, and the decision says when to
// look again.
func TestDecideStatefulSetMinReady(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pods := stsPods("r")
	pods[0].ReadySince = now.Add(-5 * time.Second)
	in := StatefulSetInput{Name: "db", Hash: "new", Replicas: 2, Policy: StatefulSetPolicy{MaxUnavailable: 1, MinReady: 10 * time.Second}, Pods: pods, Now: now}
	d := DecideStatefulSet(&in)
	if d.Start["db-1"] || !d.Wake.Equal(now.Add(5*time.Second)) {
		t.Fatalf("start %v, wake %v; want db-1 waiting until %v", d.Start, d.Wake, now.Add(5*time.Second))
	}
	in.Now = d.Wake
	if d := DecideStatefulSet(&in); !d.Start["db-1"] || !d.Wake.IsZero() {
		t.Fatalf("at the wake: start %v, wake %v; want db-1 started", d.Start, d.Wake)
	}
}

// The decision for one StatefulSet of 10,000 pods mid-update.
func BenchmarkDecideStatefulSet10000(b *testing.B) {
	states := make([]string, 10000)
	for i := range states {
		states[i] = "R"
		if i > 5000 {
			states[i] = "r"
		}
	}
	in := StatefulSetInput{Name: "db", Hash: "new", Replicas: 10000, Policy: StatefulSetPolicy{MaxUnavailable: 1}, Pods: stsPods(states...)}
	b.ReportAllocs()
	for b.Loop() {
		DecideStatefulSet(&in)
	}
}
