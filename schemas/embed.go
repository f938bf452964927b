// Package schemas holds gitorch's CUE definitions of the Kubernetes kinds it
// supports, the contract a repository is checked against (see
// docs/schemas.md). pkg/schema compiles the embedded files as one CUE
// package (it looks up one definition per kind: #Deployment, #Service, ...),
// and users can run them with the cue command:
//
//	cue vet -c -d '#Deployment' ./schemas deployment.yaml
//	cue vet -c -d '#Manifest' ./schemas manifests.yaml
package schemas

import "embed"

// FS holds the .cue files of package schemas, at its root.
//
//go:embed *.cue
var FS embed.FS

// GuardsFile holds the rules across the fields of one object (one source
// per volume, one handler per probe, a Service's type and ports, ...).
// The cue command reads it with the rest of the package; pkg/schema
// compiles the package without it and applies the same rules in Go.
const GuardsFile = "guards.cue"
