// Package plan holds gitorch's decisions as pure functions: which pods the
// manifests ask for and on which node each one runs (Schedule), which
// ClusterIP each Service gets (AllocateClusterIPs), what changed between two
// revisions (Diff), and the plan that puts these together for people
// (Build, Plan.WriteText, Plan.WriteJSON).
//
// Every node of a cluster evaluates these functions on the same commit and
// the same membership and must get the same answer, so nothing here does
// I/O, reads a clock, draws random numbers or depends on map iteration
// order; the results do not depend on the order of the inputs either. The
// algorithm and the properties it keeps are described in docs/placement.md.
package plan
