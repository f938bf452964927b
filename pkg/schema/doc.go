// Package schema loads Kubernetes-style manifests (YAML, JSON and CUE) from a
// file tree, validates them against the CUE definitions in schemas/, applies
// defaults, and decodes them into the Go types of k8s.io/api.
//
// It owns the user-facing contract of what gitorch accepts: every problem is a
// Finding with file:line:col, the object, the field path and a message. It
// reads only the fs.FS it is given and does no other I/O.
package schema
