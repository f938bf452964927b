package plan

import (
	"math/bits"
	"testing"
)

// TestSpreadAndStabilityConflict proves, by exhaustive search, the limit
// docs/placement.md explains: no placement function — however clever —
// both spreads replicas (at most ceil(r/N) per node) and never moves a pod
// on a surviving node when a node leaves. With 5 candidate nodes and a
// workload of 3 replicas, consider every cluster of 3, 4 or 5 of those
// nodes (one replica per node in each): the search tries every assignment
// for every cluster and finds no family in which each single departure
// leaves the pods on the other nodes where they were.
//
// So Schedule keeps spread exact, keeps survivors and joins exact for
// workloads that spreading does not constrain, and bounds, in the property
// tests, how often spreading moves a replica.
func TestSpreadAndStabilityConflict(t *testing.T) {
	if found := stableSpreadFamilyExists(5, 3, 3); found {
		t.Fatal("found a placement family for 3 replicas on 3..5 of 5 nodes that is both spread and stable")
	}
	// The search is not vacuous: with 4 candidate nodes such a family
	// exists.
	if !stableSpreadFamilyExists(4, 3, 3) {
		t.Fatal("found no family for 3 replicas on 3..4 of 4 nodes, where one exists")
	}
}

// stableSpreadFamilyExists reports whether r pods can be assigned to every
// cluster S of at least minSize of u nodes so that no node holds more than
// ceil(r/|S|) pods, and for every S and node x in S, the assignment for
// S\{x} keeps every pod that was not on x where it was.
func stableSpreadFamilyExists(u, r, minSize int) bool {
	// Clusters as bit sets, largest first, so that every superset of a
	// cluster is assigned before it.
	var sets []uint
	for size := u; size >= minSize; size-- {
		for s := uint(0); s < 1<<uint(u); s++ {
			if bits.OnesCount(s) == size {
				sets = append(sets, s)
			}
		}
	}
	assign := map[uint][]int{}
	var solve func(k int) bool
	solve = func(k int) bool {
		if k == len(sets) {
			return true
		}
		s := sets[k]
		limit := (r + bits.OnesCount(s) - 1) / bits.OnesCount(s)
		// Pods forced by supersets: in S∪{y}, a pod not on y stays put.
		fixed := make([]int, r)
		for i := range fixed {
			fixed[i] = -1
		}
		for y := 0; y < u; y++ {
			sup, ok := assign[s|1<<uint(y)]
			if s&(1<<uint(y)) != 0 || !ok {
				continue
			}
			for p, n := range sup {
				if n == y {
					continue
				}
				if fixed[p] >= 0 && fixed[p] != n {
					return false
				}
				fixed[p] = n
			}
		}
		cur := make([]int, r)
		var fill func(p int) bool
		fill = func(p int) bool {
			if p == r {
				count := map[int]int{}
				for _, n := range cur {
					if count[n]++; count[n] > limit {
						return false
					}
				}
				assign[s] = append([]int(nil), cur...)
				if solve(k + 1) {
					return true
				}
				delete(assign, s)
				return false
			}
			if fixed[p] >= 0 {
				cur[p] = fixed[p]
				return fill(p + 1)
			}
			for n := 0; n < u; n++ {
				if s&(1<<uint(n)) != 0 {
					cur[p] = n
					if fill(p + 1) {
						return true
					}
				}
			}
			return false
		}
		return fill(0)
	}
	return solve(0)
}
