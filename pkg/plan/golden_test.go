package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
)

// placementDigest is the SHA-256 of every pod's name and node (empty when
// unplaceable) in the placement of a fixed seeded cluster.
func placementDigest() string {
	_, nodes, objs := cluster(7, genOptions{minNodes: 50, maxNodes: 50, workloads: 200, maxReplicas: 12, constraints: true})
	h := sha256.New()
	for _, p := range Schedule(objs, nodes).Pods {
		fmt.Fprintf(h, "%s/%s %s\n", p.Namespace, p.Name, p.Node)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// TestPlacementIsPinned fails when any change, to the algorithm, the
// hashes, the fixed-point logarithm or the pod names, moves a pod. Every
// node of a cluster must compute the same placement, so nodes running
// different gitorch versions disagree after such a change: make it
// deliberately, say so in the release notes, and update the digest.
func TestPlacementIsPinned(t *testing.T) {
	const want = "5277dfb1a24644ef"
	if got := placementDigest(); got != want {
		t.Errorf("placement digest %s, want %s: pods moved (see the comment)", got, want)
	}
}
