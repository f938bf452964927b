package schema

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
)

// Pos is a position in a manifest file, relative to the root of the loaded
// tree. Line and Col count from 1; zero means unknown.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Severity says whether a finding refuses the manifests or only informs.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Finding is one thing wrong, or worth knowing, about a manifest.
type Finding struct {
	Severity  Severity `json:"severity"`
	Pos       Pos      `json:"pos"`
	Kind      string   `json:"kind,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	// Field is the path of the field the finding is about, in the form
	// spec.template.spec.containers[0].image; empty for the whole document.
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// String formats f the way compilers do:
//
//	path/file.yaml:LINE:COL: Kind/namespace/name: field.path: message
//
// Warnings are prefixed with "warning: " in the message part.
func (f Finding) String() string {
	s := f.Pos.String() + ": "
	if f.Kind != "" {
		s += f.Kind
		if f.Namespace != "" {
			s += "/" + f.Namespace
		}
		if f.Name != "" {
			s += "/" + f.Name
		}
		s += ": "
	}
	if f.Field != "" {
		s += f.Field + ": "
	}
	if f.Severity == SeverityWarning {
		s += "warning: "
	}
	return s + f.Message
}

// Object is one valid manifest, decoded into its Kubernetes Go type.
type Object struct {
	// Pos is where the object's document starts.
	Pos Pos
	// APIVersion is the apiVersion as written in the manifest; Obj carries
	// the current one (apps/v1 for an extensions/v1beta1 Deployment).
	APIVersion string
	Kind       string
	Namespace  string // "default" when the manifest names none; empty for cluster-scoped kinds
	Name       string
	// Obj is a pointer to a k8s.io/api type: *corev1.Pod, *appsv1.Deployment,
	// *batchv1.Job, ... with defaults applied.
	Obj runtime.Object
	// Encrypted is the SOPS file the object was read from, when it is an
	// encrypted Secret: Obj then has its keys with the ciphertexts as values until
	// Decrypt gives them theirs.
	Encrypted []byte

	// src is the document as read, kept to find where a field is.
	src docSource
}

// FieldPos is where the field at path (spec.template.spec.containers[0].image
// as a list of selectors: "spec", "template", ..., "0", "image") is written in
// the manifest, or the nearest enclosing field that is.
func (o *Object) FieldPos(path ...string) Pos {
	return o.src.fieldPos(path, o.Pos)
}

// Result is what loading a tree of manifests found.
type Result struct {
	// Objects are the documents that validated, sorted by file and position.
	// Their Obj values may be shared with a Cache and the Results of other
	// loads: treat them as read-only (DeepCopyObject before changing one).
	Objects []Object
	// Findings are errors and warnings, sorted by file and position.
	Findings []Finding
	// Files is how many manifest files were read; CachedFiles how many of
	// them came from Options.Cache without being validated again.
	Files, CachedFiles int
}

// RuntimeObjects lists the objects that validated, in the order of
// Objects, as the runtime.Object values that placement (plan.Build,
// plan.Schedule) takes.
func (r *Result) RuntimeObjects() []runtime.Object {
	objs := make([]runtime.Object, len(r.Objects))
	for i := range r.Objects {
		objs[i] = r.Objects[i].Obj
	}
	return objs
}

// Errors counts the findings of error severity.
func (r *Result) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == SeverityError {
			n++
		}
	}
	return n
}
