// Command gitorch is a masterless GitOps container orchestrator: every node
// runs the same daemon, pulls a Git repository of Kubernetes-style manifests
// and runs its share of the pods.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
