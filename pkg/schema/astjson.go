package schema

import (
	"bytes"
	"strconv"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
)

// astJSON writes the JSON form of a YAML or JSON document as the CUE
// decoders produce it: plain struct, list and scalar literals. It is several
// times faster than evaluating the value to export it, which matters on the
// hot path of loading a large tree. ok is false for anything else (the
// caller then asks CUE).
func astJSON(e ast.Expr) (out []byte, ok bool) {
	var b bytes.Buffer
	if !appendJSON(&b, e) {
		return nil, false
	}
	return b.Bytes(), true
}

func appendJSON(b *bytes.Buffer, e ast.Expr) bool {
	switch n := e.(type) {
	case *ast.StructLit:
		b.WriteByte('{')
		for i, d := range n.Elts {
			f, ok := d.(*ast.Field)
			if !ok || f.Constraint != token.ILLEGAL {
				return false
			}
			name, ok := labelName(f.Label)
			if !ok {
				return false
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Quote(name))
			b.WriteByte(':')
			if !appendJSON(b, f.Value) {
				return false
			}
		}
		b.WriteByte('}')
	case *ast.ListLit:
		b.WriteByte('[')
		for i, el := range n.Elts {
			if i > 0 {
				b.WriteByte(',')
			}
			if !appendJSON(b, el) {
				return false
			}
		}
		b.WriteByte(']')
	case *ast.BasicLit:
		switch n.Kind {
		case token.STRING:
			s, err := literal.Unquote(n.Value)
			if err != nil {
				return false
			}
			b.WriteString(strconv.Quote(s))
		case token.INT:
			i, err := strconv.ParseInt(n.Value, 0, 64)
			if err != nil {
				return false
			}
			b.WriteString(strconv.FormatInt(i, 10))
		case token.FLOAT:
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return false
			}
			b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
		case token.TRUE, token.FALSE, token.NULL:
			b.WriteString(n.Value)
		default:
			return false
		}
	default:
		return false
	}
	return true
}

func labelName(l ast.Label) (string, bool) {
	switch n := l.(type) {
	case *ast.Ident:
		return n.Name, true
	case *ast.BasicLit:
		if n.Kind != token.STRING {
			return "", false
		}
		s, err := literal.Unquote(n.Value)
		return s, err == nil
	}
	return "", false
}
