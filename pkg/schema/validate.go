package schema

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
	"k8s.io/apimachinery/pkg/runtime"
)

// schemaFilePrefix marks positions inside gitorch's own schema files, so
// that an error is reported where the user's manifest is, not where the
// rule is.
const schemaFilePrefix = "$schemas/"

// validator checks documents against the CUE schema and decodes them. It is
// not safe for concurrent use (a cue.Context is single-threaded): every
// worker has its own.
type validator struct {
	schemas fs.FS // what defs were compiled from
	ctx     *cue.Context
	defs    map[string]cue.Value
	uses    int // documents checked
}

// newValidator compiles the .cue files at the top of schemaFS as one
// package.
func newValidator(schemaFS fs.FS) (*validator, error) {
	entries, err := fs.ReadDir(schemaFS, ".")
	if err != nil {
		return nil, fmt.Errorf("read schemas: %w", err)
	}
	inst := build.NewContext().NewInstance("schemas", nil)
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".cue" || e.Name() == guardsFile {
			continue
		}
		src, err := fs.ReadFile(schemaFS, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read schemas: %w", err)
		}
		if err := inst.AddFile(schemaFilePrefix+e.Name(), src); err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", e.Name(), err)
		}
	}
	ctx := cuecontext.New()
	pkg := ctx.BuildInstance(inst)
	if err := pkg.Err(); err != nil {
		return nil, fmt.Errorf("compile schemas: %w", err)
	}
	v := &validator{schemas: schemaFS, ctx: ctx, defs: map[string]cue.Value{}}
	for _, k := range kinds {
		def := pkg.LookupPath(cue.ParsePath(k.def))
		if !def.Exists() {
			return nil, fmt.Errorf("compile schemas: no definition %s for kind %s", k.def, k.kind)
		}
		v.defs[k.kind] = def
	}
	return v, nil
}

// docInfo identifies a document while it is checked.
type docInfo struct {
	pos        Pos
	apiVersion string
	kind       string
	namespace  string
	name       string
	info       *kindInfo
}

func (d *docInfo) finding(sev Severity, pos Pos, field, msg string) Finding {
	return Finding{Severity: sev, Pos: pos, Kind: d.kind, Namespace: d.namespace, Name: d.name, Field: field, Message: msg}
}

// check validates one document and, when it is valid, decodes it. A
// document of kind List is expanded into its items.
// ref says where expr is, for the object to find its fields again.
func (v *validator) check(val cue.Value, expr ast.Expr, ref docRef) ([]Object, []Finding) {
	v.uses++
	d := &docInfo{pos: posOf(val.Pos())}
	if err := val.Err(); err != nil {
		return nil, v.convertErrors(d, val, err)
	}
	if val.IncompleteKind() != cue.StructKind {
		return nil, []Finding{d.finding(SeverityError, d.pos, "", "a manifest must be a mapping with apiVersion and kind, not "+val.IncompleteKind().String())}
	}
	d.apiVersion = stringField(val, expr, "apiVersion")
	d.kind = stringField(val, expr, "kind")
	d.name = stringField(val, expr, "metadata", "name")
	d.namespace = stringField(val, expr, "metadata", "namespace")

	if d.kind == "List" && (d.apiVersion == "v1" || d.apiVersion == "") {
		return v.checkList(val, expr, ref)
	}
	switch {
	case d.kind == "" && d.apiVersion == "":
		return nil, []Finding{d.finding(SeverityError, d.pos, "", "missing apiVersion and kind")}
	case d.kind == "":
		return nil, []Finding{d.finding(SeverityError, d.pos, "kind", "missing kind")}
	}
	d.info = kinds[d.kind]
	if d.info == nil {
		return nil, []Finding{d.finding(SeverityError, fieldPos(val, []string{"kind"}, d.pos), "kind", unsupportedKindMessage(d.apiVersion, d.kind))}
	}
	if d.info.namespaced && d.namespace == "" {
		d.namespace = "default"
	}
	if d.apiVersion == "" {
		return nil, []Finding{d.finding(SeverityError, d.pos, "apiVersion", "missing apiVersion (use "+d.info.current+")")}
	}
	var findings []Finding
	if _, ok := d.info.types[d.apiVersion]; !ok {
		return nil, []Finding{d.finding(SeverityError, fieldPos(val, []string{"apiVersion"}, d.pos), "apiVersion",
			fmt.Sprintf("apiVersion %s is not valid for %s; use %s", d.apiVersion, d.kind, strings.Join(d.info.apiVersions(), " or ")))}
	}
	if removed, ok := d.info.legacy[d.apiVersion]; ok {
		findings = append(findings, d.finding(SeverityWarning, fieldPos(val, []string{"apiVersion"}, d.pos), "apiVersion",
			fmt.Sprintf("%s %s is deprecated (removed in Kubernetes %s): read as %s with the old version's defaults; change it to %s",
				d.kind, d.apiVersion, removed, d.info.current, d.info.current)))
	}

	unified := v.defs[d.kind].Unify(val)
	err := unified.Validate(cue.Concrete(true))
	var ignored [][]string
	if err != nil {
		fs, ign := v.classify(d, val, err)
		findings = append(findings, fs...)
		ignored = ign
	}
	for _, f := range findings {
		if f.Severity == SeverityError {
			return nil, findings
		}
	}
	obj, decodeFindings := v.decode(d, val, expr, ignored)
	findings = append(findings, decodeFindings...)
	if obj == nil {
		return nil, findings
	}
	o := Object{
		Pos: d.pos, APIVersion: d.apiVersion, Kind: d.kind,
		Namespace: d.namespace, Name: d.name, Obj: obj, src: source(val, expr, ref),
	}
	if gs := checkGuards(&o, val); len(gs) > 0 {
		return nil, append(findings, gs...)
	}
	return []Object{o}, findings
}

func (v *validator) checkList(val cue.Value, expr ast.Expr, ref docRef) ([]Object, []Finding) {
	items := val.LookupPath(cue.MakePath(cue.Str("items")))
	if !items.Exists() {
		return nil, nil
	}
	iter, err := items.List()
	if err != nil {
		d := &docInfo{pos: posOf(items.Pos()), kind: "List"}
		return nil, []Finding{d.finding(SeverityError, d.pos, "items", "items of a List must be a list of manifests")}
	}
	var objs []Object
	var findings []Finding
	var elts []ast.Expr
	if list, ok := listElts(expr, "items"); ok {
		elts = list
	}
	for i := 0; iter.Next(); i++ {
		var e ast.Expr
		item := docRef{}
		if i < len(elts) {
			e = elts[i]
			item = ref
			item.items = append(slices.Clone(ref.items), i)
		}
		o, f := v.check(iter.Value(), e, item)
		objs = append(objs, o...)
		findings = append(findings, f...)
	}
	return objs, findings
}

// decode turns a valid document into its Kubernetes Go type, without the
// fields gitorch ignores, and applies defaults.
func (v *validator) decode(d *docInfo, val cue.Value, expr ast.Expr, ignored [][]string) (runtime.Object, []Finding) {
	data, ok := astJSON(expr)
	var err error
	if !ok {
		if data, err = val.MarshalJSON(); err != nil {
			return nil, v.convertErrors(d, val, err)
		}
	}
	if len(ignored) > 0 {
		data, err = stripFields(data, ignored)
		if err != nil {
			return nil, []Finding{d.finding(SeverityError, d.pos, "", "decode: "+err.Error())}
		}
	}
	obj := d.info.newObj()
	if err := json.Unmarshal(data, obj); err != nil {
		field := ""
		var te *json.UnmarshalTypeError
		if ok := asTypeError(err, &te); ok {
			field = te.Field
		}
		pos := fieldPos(val, strings.Split(field, "."), d.pos)
		return nil, []Finding{d.finding(SeverityError, pos, field, "cannot decode: "+cleanJSONError(err))}
	}
	gvk := obj.GetObjectKind()
	gvk.SetGroupVersionKind(gvkOf(d.info.current, d.kind))
	var findings []Finding
	for _, msg := range applyDefaults(obj, d.apiVersion) {
		findings = append(findings, d.finding(SeverityWarning, d.pos, msg.field, msg.text))
	}
	setNamespace(obj, d)
	return obj, findings
}

// stripFields removes the ignored paths from a JSON document.
func stripFields(data []byte, ignored [][]string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	for _, p := range ignored {
		deletePath(m, p)
	}
	return json.Marshal(m)
}

func deletePath(node any, p []string) {
	for i, sel := range p {
		last := i == len(p)-1
		switch n := node.(type) {
		case map[string]any:
			if last {
				delete(n, sel)
				return
			}
			node = n[sel]
		case []any:
			idx := 0
			if _, err := fmt.Sscanf(sel, "%d", &idx); err != nil || idx < 0 || idx >= len(n) {
				return
			}
			if last {
				return // list elements are never ignored one by one
			}
			node = n[idx]
		default:
			return
		}
	}
}

// fieldPos finds where the field at p is in the document, or the nearest
// enclosing field that exists; def when none has a position.
func fieldPos(val cue.Value, p []string, def Pos) Pos {
	for n := len(p); n >= 0; n-- {
		sub := val
		ok := true
		for _, sel := range p[:n] {
			if sel == "" {
				continue
			}
			next := lookupSel(sub, sel)
			if !next.Exists() {
				ok = false
				break
			}
			sub = next
		}
		if !ok {
			continue
		}
		if pos := posOf(valuePos(sub)); pos.Line > 0 && !strings.HasPrefix(pos.File, schemaFilePrefix) {
			return pos
		}
	}
	return def
}

// valuePos is where a scalar value is written, or where the field that
// holds a struct or list starts.
func valuePos(v cue.Value) token.Pos {
	if f, ok := v.Source().(*ast.Field); ok && f.Value != nil {
		switch f.Value.(type) {
		case *ast.BasicLit:
			return f.Value.Pos()
		}
	}
	return v.Pos()
}

func lookupSel(v cue.Value, sel string) cue.Value {
	if v.IncompleteKind() == cue.ListKind {
		var idx int
		if _, err := fmt.Sscanf(sel, "%d", &idx); err == nil {
			return v.LookupPath(cue.MakePath(cue.Index(idx)))
		}
		return cue.Value{}
	}
	return v.LookupPath(cue.MakePath(cue.Str(sel)))
}

func posOf(p token.Pos) Pos {
	if !p.IsValid() {
		return Pos{}
	}
	return Pos{File: p.Filename(), Line: p.Line(), Col: p.Column()}
}

// sortFindings orders findings by file and position, keeping the order of
// findings at the same place.
func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i].Pos, fs[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// listElts returns the elements of the list literal in field name of a
// struct literal.
func listElts(e ast.Expr, name string) ([]ast.Expr, bool) {
	s, ok := e.(*ast.StructLit)
	if !ok {
		return nil, false
	}
	for _, d := range s.Elts {
		if f, ok := d.(*ast.Field); ok {
			if l, ok := labelName(f.Label); ok && l == name {
				list, ok := f.Value.(*ast.ListLit)
				if !ok {
					return nil, false
				}
				return list.Elts, true
			}
		}
	}
	return nil, false
}

// stringField reads a string field of a document, from its literal when it
// has one (cheaper than a lookup in the evaluated value).
func stringField(val cue.Value, expr ast.Expr, path ...string) string {
	if expr != nil {
		e := expr
	outer:
		for _, name := range path {
			st, ok := e.(*ast.StructLit)
			if !ok {
				return ""
			}
			for _, d := range st.Elts {
				if f, ok := d.(*ast.Field); ok {
					if l, ok := labelName(f.Label); ok && l == name {
						e = f.Value
						continue outer
					}
				}
			}
			return ""
		}
		if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, _ := literal.Unquote(lit.Value)
			return s
		}
		return ""
	}
	sels := make([]cue.Selector, len(path))
	for i, p := range path {
		sels[i] = cue.Str(p)
	}
	s, _ := val.LookupPath(cue.MakePath(sels...)).String()
	return s
}

// source is what Object.FieldPos needs of a document: where the document
// is in its file when it is a YAML or JSON one, else its value. Keeping the
// syntax tree or the evaluated value of every object of a large tree alive
// would take most of a load's memory (and the garbage collector's time
// scanning it); the file's content is a small part of that, and a field's
// position is needed only for a finding of the checks across objects.
func source(val cue.Value, expr ast.Expr, ref docRef) docSource {
	if expr != nil && ref.data != nil {
		return docSource{ref: ref}
	}
	return docSource{val: val}
}

// docRef is a document of a YAML or JSON file: the file's content (as
// read, line breaks normalized), its name and kind, the index of the
// document in the stream, and the items of the List documents it is in.
type docRef struct {
	data       []byte
	name, kind string
	doc        int
	items      []int
}

// expr parses the document again.
func (r docRef) expr() ast.Expr {
	next := documents(r.name, r.data, r.kind)
	var e ast.Expr
	for i := 0; i <= r.doc; i++ {
		var err error
		if e, err = next(); err != nil {
			return nil
		}
	}
	for _, i := range r.items {
		elts, ok := listElts(e, "items")
		if !ok || i >= len(elts) {
			return nil
		}
		e = elts[i]
	}
	return e
}

type docSource struct {
	ref docRef
	val cue.Value
}

func (s docSource) fieldPos(p []string, def Pos) Pos {
	if s.ref.data == nil {
		if !s.val.Exists() {
			return def
		}
		return fieldPos(s.val, p, def)
	}
	e := s.ref.expr()
	if e == nil {
		return def
	}
	return exprFieldPos(e, p, def)
}

// exprFieldPos is where the field at p is written in the document e: the
// key of a struct or list, the value of a scalar, the start of a list
// element; the nearest enclosing field that is there, else def.
func exprFieldPos(e ast.Expr, p []string, def Pos) Pos {
	pos := posOf(e.Pos())
	for _, sel := range p {
		switch n := e.(type) {
		case *ast.StructLit:
			var next *ast.Field
			for _, d := range n.Elts {
				if f, ok := d.(*ast.Field); ok {
					if name, ok := labelName(f.Label); ok && name == sel {
						next = f
						break
					}
				}
			}
			if next == nil {
				return orDefault(pos, def)
			}
			e = next.Value
			if _, scalar := e.(*ast.BasicLit); scalar {
				pos = posOf(e.Pos())
			} else {
				pos = posOf(next.Pos())
			}
		case *ast.ListLit:
			i, err := strconv.Atoi(sel)
			if err != nil || i < 0 || i >= len(n.Elts) {
				return orDefault(pos, def)
			}
			e = n.Elts[i]
			pos = posOf(e.Pos())
		default:
			return orDefault(pos, def)
		}
	}
	return orDefault(pos, def)
}

func orDefault(p, def Pos) Pos {
	if p.Line == 0 {
		return def
	}
	return p
}
