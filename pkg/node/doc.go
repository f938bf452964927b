// Package node is the gitorch daemon: it polls the Git source, loads and
// validates each new revision, places its pods (pkg/plan), and runs a
// level-triggered reconcile loop that makes the pods of this node match
// that placement through pkg/apply. It restarts containers by their
// restartPolicy with CrashLoopBackOff back-off, runs probes, and serves
// the node's status and container logs over an HTTP API on localhost.
//
// It decides little itself: what to run comes from pkg/plan, how to run
// it from pkg/apply. What it owns is timing (back-off, probes, polling)
// and the status of what it runs. It must not duplicate logic that lives
// in plan or apply.
package node
