package schema

import (
	"encoding/base64"
	"errors"
	"fmt"
	"sort"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
	"filippo.io/age"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/gitorch/gitorch/pkg/secrets"
)

// A Secret kept encrypted in SOPS's format (pkg/secrets) is validated
// without a key: its sops block is checked and set aside, and each
// encrypted value of data and stringData stands for its value, so
// that the Secret's structure and keys are checked, and pods' references
// to its keys resolve, as for a plain one. Its Object then carries the
// file (Object.Encrypted); a node decrypts it with Decrypt.

// encryptedFields are the only top-level fields of an encrypted manifest
// that may hold encrypted values: the rest (apiVersion, kind, metadata,
// type) must stay readable for validate and plan.
var encryptedFields = map[string]bool{"data": true, "stringData": true}

// sopsDocument looks at one document of the file name (data, its bytes).
// When it is a SOPS document it checks its metadata, removes the sops
// field and stands the ciphertext for each encrypted value of expr, in
// place; sealed says it was one. Encrypted values without a sops block
// are a finding too: left as they are, they would become values.
// unreadable says that its apiVersion, kind or metadata are encrypted:
// the document cannot be checked further.
func sopsDocument(name string, data []byte, expr ast.Expr) (sealed, unreadable bool, findings []Finding) {
	st, ok := expr.(*ast.StructLit)
	if !ok {
		return false, false, nil
	}
	at := func(n ast.Node) Pos {
		p := posOf(n.Pos())
		p.File = name
		return p
	}
	metaAt := -1
	for i, d := range st.Elts {
		if f, ok := d.(*ast.Field); ok {
			if l, ok := labelName(f.Label); ok && l == secrets.MetadataKey {
				metaAt = i
			}
		}
	}
	doc := docInfo{kind: stringField(cue.Value{}, expr, "kind"), namespace: stringField(cue.Value{}, expr, "metadata", "namespace"),
		name: stringField(cue.Value{}, expr, "metadata", "name")}
	for _, p := range []*string{&doc.kind, &doc.namespace, &doc.name} {
		if secrets.IsEncrypted(*p) {
			*p = ""
		}
	}
	if doc.namespace == "" && doc.kind == "Secret" {
		doc.namespace = "default"
	}
	var encAt []encValue
	var outside []Finding
	for _, d := range st.Elts {
		f, ok := d.(*ast.Field)
		if !ok {
			continue
		}
		l, _ := labelName(f.Label)
		if l == secrets.MetadataKey {
			continue
		}
		ast.Walk(f.Value, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := literal.Unquote(lit.Value)
			if err != nil || !secrets.IsEncrypted(s) {
				return true
			}
			if !encryptedFields[l] {
				unreadable = true
				outside = append(outside, doc.finding(SeverityError, at(lit), l,
					"encrypted, but only data and stringData may be (encrypt with encrypted_regex: ^(data|stringData)$, as gitorch secret encrypt does), or validate and plan cannot read the manifest"))
				return false
			}
			encAt = append(encAt, encValue{lit, l, s})
			return false
		}, nil)
	}
	if metaAt < 0 {
		// Without a sops block, only a Secret's data that looks
		// encrypted is a finding: other text may quote the format.
		if doc.kind != "Secret" || len(encAt) == 0 {
			return false, false, nil
		}
		return true, false, []Finding{doc.finding(SeverityError, at(encAt[0].lit), "",
			"encrypted values but no sops metadata (the sops: block was removed or never written); encrypt the file again")}
	}
	if unreadable {
		return true, true, outside
	}
	if doc.kind != "Secret" {
		findings = append(findings, doc.finding(SeverityError, at(st.Elts[metaAt]), "",
			"only a Secret may be encrypted with SOPS"))
	}
	if _, err := secrets.Parse(data); err != nil {
		findings = append(findings, doc.finding(SeverityError, at(st.Elts[metaAt]), secrets.MetadataKey, err.Error()))
	}
	st.Elts = append(st.Elts[:metaAt:metaAt], st.Elts[metaAt+1:]...)
	for _, e := range encAt {
		// The ciphertext stands for the value: a plan sees a value
		// changed when it was encrypted again.
		v := e.s
		if e.field == "data" {
			v = base64.StdEncoding.EncodeToString([]byte(v))
		}
		e.lit.Value = literal.String.Quote(v)
	}
	return true, false, findings
}

type encValue struct {
	lit   *ast.BasicLit
	field string // data or stringData
	s     string
}

// Decrypt decrypts every encrypted Secret of res with ids, in place: each
// one's Obj becomes a Secret with its values. A Secret that does not
// decrypt is an error finding; the others are decrypted all the same.
// Decrypted values go nowhere but into the Objects.
func Decrypt(res *Result, ids []age.Identity) []Finding {
	var findings []Finding
	for i := range res.Objects {
		o := &res.Objects[i]
		if o.Encrypted == nil {
			continue
		}
		s, ok := o.Obj.(*corev1.Secret)
		if !ok {
			continue
		}
		fail := func(msg string) {
			findings = append(findings, Finding{Severity: SeverityError, Pos: Pos{File: o.Pos.File},
				Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Message: "cannot decrypt: " + msg})
		}
		f, err := secrets.Parse(o.Encrypted)
		if err != nil {
			fail(err.Error())
			continue
		}
		doc, err := f.Decrypt(ids...)
		if err != nil {
			fail(err.Error())
			continue
		}
		data, err := secretData(doc)
		if err != nil {
			fail(err.Error())
			continue
		}
		plain := s.DeepCopy()
		plain.Data, plain.StringData = data, nil
		o.Obj = plain
	}
	sortFindings(findings)
	return findings
}

// secretData reads data (base64) and stringData of a decrypted Secret,
// stringData winning, as Kubernetes merges them.
func secretData(doc *yaml.Node) (map[string][]byte, error) {
	var raw struct {
		Data       map[string]string    `yaml:"data"`
		StringData map[string]yaml.Node `yaml:"stringData"`
	}
	if err := doc.Decode(&raw); err != nil {
		// The decoder's message may quote a value.
		return nil, errors.New("data and stringData must map keys to strings")
	}
	out := make(map[string][]byte, len(raw.Data)+len(raw.StringData))
	keys := make([]string, 0, len(raw.Data))
	for k := range raw.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, err := base64.StdEncoding.DecodeString(raw.Data[k])
		if err != nil {
			return nil, fmt.Errorf("data.%s: the decrypted value is not base64 (put plain text in stringData)", k)
		}
		out[k] = b
	}
	for k, n := range raw.StringData {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			return nil, fmt.Errorf("stringData.%s: the decrypted value is a %s, want a string", k, n.ShortTag())
		}
		out[k] = []byte(n.Value)
	}
	return out, nil
}
