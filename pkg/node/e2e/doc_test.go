// Package e2e_test runs gitorch clusters for real: three agents built from
// cmd/gitorch, each in a host of an applytest LAN (a network namespace of
// its own, joined to the others by a bridge), gossiping with an encrypted
// key, sharing one private containerd with a containerd namespace per node,
// and following a Git repository the test commits to. The tests kill,
// cut off, restart and mislead agents, and check what every node reports
// and what containerd really runs.
//
// The tests need root, containerd, runc, git, nsenter and busybox-static
// (scripts/test.sh installs them). The benchmarks measure what a user
// waits for and what an agent costs:
//
//	go test ./pkg/node/e2e -run '^$' -bench . -benchtime 1x -count 3
package e2e_test
