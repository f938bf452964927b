package schema

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/gitorch/gitorch/pkg/plan"
)

// notShown ends a finding whose value was taken out.
const notShown = "; the value is not shown (a Secret's)"

// mismatchedTypes is the part of CUE's "conflicting values A and B
// (mismatched types X and Y)" that holds no value.
var mismatchedTypes = regexp.MustCompile(`\(mismatched types ([a-z]+) and ([a-z]+)\)$`)

// redactFindings takes every Secret value out of the findings: a finding
// on a field that plan.SensitiveField calls sensitive keeps its position,
// object and the path down to the key (data.password), and gets a message
// that says what is wrong without quoting the value, base64 or decoded.
// Messages that quote nothing but keys are kept as they are.
func redactFindings(fs []Finding) {
	for i := range fs {
		f := &fs[i]
		if !plan.SensitiveField(f.Kind, f.Field) {
			continue
		}
		if !strings.HasPrefix(f.Field, "metadata.") {
			f.Field = valuePath(f.Field)
		}
		f.Message = redactMessage(f.Message)
	}
}

// redactMessage rewrites a finding's message on a Secret value.
func redactMessage(msg string) string {
	switch {
	case strings.HasPrefix(msg, "invalid key "):
		// A key that is not allowed: the key is shown, as keys are.
		return msg
	case strings.HasPrefix(msg, "conflicting values "):
		if m := mismatchedTypes.FindStringSubmatch(msg); m != nil {
			return "mismatched types " + m[1] + " and " + m[2] + notShown
		}
	case strings.HasPrefix(msg, "invalid value "):
		// invalid value "QUOTED": EXPLANATION, where the explanation is
		// one of gitorch's own (it names the constraint, not the value).
		if q, err := strconv.QuotedPrefix(msg[len("invalid value "):]); err == nil {
			rest := msg[len("invalid value ")+len(q):]
			for _, h := range patternHints {
				if rest == ": "+h.hint {
					return h.hint + notShown
				}
			}
		}
	}
	return "invalid value" + notShown
}

// valuePath cuts a path inside a Secret value down to the value's key:
// data.password.x → data.password, stringData["tls.crt"][0] →
// stringData["tls.crt"]. A finding deeper in a value that should have been
// a string would otherwise show the value's structure.
func valuePath(field string) string {
	i := strings.IndexAny(field, ".[")
	if i < 0 {
		return field
	}
	switch {
	case field[i] == '.':
		if j := strings.IndexAny(field[i+1:], ".["); j >= 0 {
			return field[:i+1+j]
		}
	case strings.HasPrefix(field[i:], `["`):
		if q, err := strconv.QuotedPrefix(field[i+1:]); err == nil && strings.HasPrefix(field[i+1+len(q):], "]") {
			return field[:i+1+len(q)+1]
		}
	}
	return field
}
