package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
)

// readOnlyFields are set by Kubernetes itself; manifests exported with
// kubectl often carry them. gitorch drops them without a warning.
var readOnlyFields = map[string]bool{
	"status":                     true,
	"metadata.creationTimestamp": true,
	"metadata.resourceVersion":   true,
	"metadata.uid":               true,
	"metadata.selfLink":          true,
	"metadata.generation":        true,
	"metadata.managedFields":     true,
}

type cueErr struct {
	path []string
	msg  string
	pos  Pos
	args []any
}

// classify turns CUE's validation errors into findings. A field the schema
// does not allow is a warning when Kubernetes has it (and it is returned in
// ignored, to be dropped) or an error when it does not.
func (v *validator) classify(d *docInfo, val cue.Value, err error) (findings []Finding, ignored [][]string) {
	errs := v.flatten(d, val, err)
	// Disjunction failures come as one "empty disjunction" error followed by
	// one "conflicting values" error per alternative; gather them per path.
	alternatives := map[string][]string{}
	disjunction := map[string]bool{}
	for _, e := range errs {
		key := strings.Join(e.path, "\x00")
		switch {
		case strings.HasSuffix(e.msg, "errors in empty disjunction:"):
			disjunction[key] = true
		case strings.HasPrefix(e.msg, "conflicting values") && len(e.args) == 2:
			alternatives[key] = append(alternatives[key], fmt.Sprint(e.args[0]), fmt.Sprint(e.args[1]))
		}
	}
	seen := map[string]bool{}
	typ := d.info.types[d.apiVersion]
	// CUE may leave out fields not allowed in a struct that has other
	// errors, so they are also looked for directly.
	notAllowed := unknownFields(v.defs[d.kind], val, nil)
	var ignoredOrUnknown [][]string
	for _, e := range errs {
		if e.msg == "field not allowed" {
			notAllowed = append(notAllowed, e.path)
		}
	}
	// Report the outermost field only: nothing inside a field that is not
	// allowed is checked.
	sort.SliceStable(notAllowed, func(i, j int) bool { return len(notAllowed[i]) < len(notAllowed[j]) })
	for _, p := range notAllowed {
		key := strings.Join(p, "\x00")
		if seen["na\x00"+key] || underAny(p, ignoredOrUnknown) {
			continue
		}
		seen["na\x00"+key] = true
		ignoredOrUnknown = append(ignoredOrUnknown, p)
		field := formatPath(p)
		pos := labelPos(val, p, d.pos)
		if kubernetesHas(typ, p) {
			ignored = append(ignored, p)
			if !readOnlyFields[strings.Join(p, ".")] {
				msg := "ignored: " + field + " (not supported by gitorch)"
				if isVolumeSource(p) {
					msg += "; the volume is an empty directory instead"
				}
				findings = append(findings, d.finding(SeverityWarning, pos, field, msg))
			}
			continue
		}
		msg := fmt.Sprintf("unknown field %q", p[len(p)-1])
		if s := v.suggest(d, p); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		findings = append(findings, d.finding(SeverityError, pos, field, msg))
	}
	for _, e := range errs {
		key := strings.Join(e.path, "\x00")
		field := formatPath(e.path)
		switch {
		case e.msg == "field not allowed":
			continue
		case disjunction[key] && (strings.HasSuffix(e.msg, "errors in empty disjunction:") || strings.HasPrefix(e.msg, "conflicting values")):
			if seen["dj\x00"+key] {
				continue
			}
			seen["dj\x00"+key] = true
			findings = append(findings, d.finding(SeverityError, e.pos, field, disjunctionMessage(val, e.path, alternatives[key])))
		default:
			k := "m\x00" + key + "\x00" + e.msg
			if seen[k] {
				continue
			}
			seen[k] = true
			findings = append(findings, d.finding(SeverityError, e.pos, field, friendly(e.msg)))
		}
	}
	return findings, ignored
}

// isVolumeSource reports whether p is the source of a pod volume
// (...volumes[N].persistentVolumeClaim): without one a volume is an empty
// directory, as in Kubernetes.
func isVolumeSource(p []string) bool {
	n := len(p)
	if n < 3 || p[n-3] != "volumes" {
		return false
	}
	_, err := strconv.Atoi(p[n-2])
	return err == nil
}

// underAny reports whether p is inside one of the paths.
func underAny(p []string, paths [][]string) bool {
	for _, q := range paths {
		if len(q) < len(p) && slices.Equal(q, p[:len(q)]) {
			return true
		}
	}
	return false
}

// labelPos is where the key of the field at p is written.
func labelPos(val cue.Value, p []string, def Pos) Pos {
	sub := val
	for _, sel := range p {
		if sub = lookupSel(sub, sel); !sub.Exists() {
			return fieldPos(val, p, def)
		}
	}
	if pos := posOf(sub.Pos()); pos.Line > 0 {
		return pos
	}
	return fieldPos(val, p, def)
}

// unknownFields walks the data of a document beside the schema and returns
// the paths of the fields the schema does not allow.
func unknownFields(schemaNode, data cue.Value, prefix []string) [][]string {
	if !schemaNode.Exists() {
		return nil
	}
	var out [][]string
	switch data.IncompleteKind() {
	case cue.StructKind:
		it, err := data.Fields()
		if err != nil {
			return nil
		}
		for it.Next() {
			name := it.Selector().Unquoted()
			p := append(append([]string(nil), prefix...), name)
			if !schemaNode.Allows(cue.Str(name)) {
				out = append(out, p)
				continue
			}
			out = append(out, unknownFields(schemaField(schemaNode, name), it.Value(), p)...)
		}
	case cue.ListKind:
		it, err := data.List()
		if err != nil {
			return nil
		}
		elem := schemaNode.LookupPath(cue.MakePath(cue.AnyIndex))
		for i := 0; it.Next(); i++ {
			p := append(append([]string(nil), prefix...), strconv.Itoa(i))
			out = append(out, unknownFields(elem, it.Value(), p)...)
		}
	}
	return out
}

// schemaField is the schema of field name in a struct schema, whether the
// field is regular, optional, required or matched by a pattern.
func schemaField(s cue.Value, name string) cue.Value {
	for _, sel := range []cue.Selector{cue.Str(name), cue.Str(name).Optional(), cue.Str(name).Required(), cue.AnyString} {
		if n := s.LookupPath(cue.MakePath(sel)); n.Exists() {
			return n
		}
	}
	return cue.Value{}
}

// convertErrors reports errors that are not about the schema (a conflict
// inside a CUE file, a value that cannot be exported) as they are.
func (v *validator) convertErrors(d *docInfo, val cue.Value, err error) []Finding {
	var fs []Finding
	for _, e := range v.flatten(d, val, err) {
		fs = append(fs, d.finding(SeverityError, e.pos, formatPath(e.path), friendly(e.msg)))
	}
	return fs
}

func (v *validator) flatten(d *docInfo, val cue.Value, err error) []cueErr {
	var out []cueErr
	for _, e := range cueerrors.Errors(err) {
		p := e.Path()
		if len(p) > 0 && strings.HasPrefix(p[0], "#") {
			p = p[1:]
		}
		p = unquoteAll(p)
		format, args := e.Msg()
		ce := cueErr{path: p, msg: fmt.Sprintf(format, args...), args: args}
		for _, pos := range cueerrors.Positions(e) {
			if pp := posOf(pos); pp.Line > 0 && !strings.HasPrefix(pp.File, schemaFilePrefix) {
				ce.pos = pp
				break
			}
		}
		if ce.pos.Line == 0 {
			ce.pos = fieldPos(val, p, d.pos)
		}
		out = append(out, ce)
	}
	return out
}

func unquoteAll(p []string) []string {
	out := make([]string, len(p))
	for i, s := range p {
		if strings.HasPrefix(s, `"`) {
			if u, err := strconv.Unquote(s); err == nil {
				s = u
			}
		}
		out[i] = s
	}
	return out
}

var identRE = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$-]*$`)

// formatPath renders a field path as spec.containers[0].image, quoting map
// keys that are not identifiers: metadata.labels["app.kubernetes.io/name"].
func formatPath(p []string) string {
	var b strings.Builder
	for _, sel := range p {
		if sel == "" {
			continue
		}
		if _, err := strconv.Atoi(sel); err == nil {
			b.WriteString("[" + sel + "]")
			continue
		}
		if !identRE.MatchString(sel) {
			b.WriteString("[" + strconv.Quote(sel) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(sel)
	}
	return b.String()
}

// disjunctionMessage explains a value that matched none of the allowed
// alternatives.
func disjunctionMessage(val cue.Value, p []string, alts []string) string {
	got := ""
	sub := val
	for _, sel := range p {
		sub = lookupSel(sub, sel)
	}
	if sub.Exists() {
		got = fmt.Sprint(sub)
	}
	set := map[string]bool{}
	var allowed []string
	for _, a := range alts {
		if a == got || set[a] || strings.ContainsAny(a, "\n{") {
			continue
		}
		set[a] = true
		allowed = append(allowed, a)
	}
	sort.Strings(allowed)
	if got == "" {
		return "value matches none of the allowed forms"
	}
	if len(allowed) == 0 {
		return fmt.Sprintf("invalid value %s", got)
	}
	return fmt.Sprintf("invalid value %s: must be one of %s", got, strings.Join(allowed, ", "))
}

// friendly rewrites CUE's messages for constraints whose meaning a user
// should not have to decode from a regular expression.
func friendly(msg string) string {
	for _, h := range patternHints {
		if strings.Contains(msg, h.pattern) {
			if i := strings.Index(msg, " (out of bound"); i > 0 {
				return msg[:i] + ": " + h.hint
			}
			if i := strings.Index(msg, " (does not satisfy"); i > 0 {
				return msg[:i] + ": " + h.hint
			}
		}
	}
	return msg
}

// patternHints name the regular expressions of schemas/ in plain words.
var patternHints = []struct{ pattern, hint string }{
	{`=~"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"`,
		"must be a lowercase RFC 1123 subdomain: a-z, 0-9, '-' and '.', starting and ending with a letter or digit"},
	{`=~"^[a-z]([-a-z0-9]*[a-z0-9])?$"`,
		"must be a lowercase RFC 1035 label: a-z, 0-9 and '-', starting with a letter and ending with a letter or digit"},
	{`=~"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"`,
		"must be a lowercase RFC 1123 label: a-z, 0-9 and '-', starting and ending with a letter or digit"},
	{`strings.MaxRunes(63)`, "must be at most 63 characters"},
	{`strings.MaxRunes(253)`, "must be at most 253 characters"},
	{`strings.MaxRunes(15)`, "must be at most 15 characters (an IANA service name)"},
	{`=~"[a-z]"`, "must contain at least one letter"},
	{`!~"--"`, "must not contain two hyphens in a row"},
	{`[KMGTPE]i|[numkMGTPE]`, "must be a quantity such as 100m, 0.5, 64Mi or 1G"},
	{`=~"^[0-9]+%$"`, "must be a whole number or a percentage such as 25%"},
	{`[-A-Za-z0-9_.]{0,61}`, "must be a label: at most 63 characters of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit"},
	{`=~"^([A-Za-z0-9+/]{4})*`, "must be base64 (use stringData for plain text)"},
	{`=~"^[-._a-zA-Z0-9]+$"`, "must consist of letters, digits, '-', '_' and '.'"},
	{`=~"^/"`, "must be an absolute path"},
	{`!~"^/"`, "must be a relative path"},
	{`!~"(^|/)\\.\\.(/|$)"`, "must not contain '..'"},
}

// suggest finds a known field close to a misspelt one.
func (v *validator) suggest(d *docInfo, p []string) string {
	bad := p[len(p)-1]
	def := v.defs[d.kind]
	parent := def
	for _, sel := range p[:len(p)-1] {
		if _, err := strconv.Atoi(sel); err == nil {
			parent = parent.LookupPath(cue.MakePath(cue.AnyIndex))
			continue
		}
		parent = schemaField(parent, sel)
	}
	best, bestDist := "", 3
	if !parent.Exists() {
		return ""
	}
	if it, err := parent.Fields(cue.Optional(true)); err == nil {
		for it.Next() {
			name := it.Selector().Unquoted()
			if dist := levenshtein(strings.ToLower(bad), strings.ToLower(name)); dist < bestDist {
				best, bestDist = name, dist
			}
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func asTypeError(err error, target **json.UnmarshalTypeError) bool {
	return errors.As(err, target)
}

func cleanJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("expected %s, got %s", te.Type, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func gvkOf(apiVersion, kind string) k8sschema.GroupVersionKind {
	gv, _ := k8sschema.ParseGroupVersion(apiVersion)
	return gv.WithKind(kind)
}
