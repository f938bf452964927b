package secrets

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"
)

// MetadataKey is the top-level key of a document that holds sops's
// metadata.
const MetadataKey = "sops"

// MaxFileSize caps the size of a file this package parses.
const MaxFileSize = 4 << 20

// Sentinel errors, for decisions (errors.Is).
var (
	// ErrNoMetadata: the document has encrypted values but no sops block,
	// or a sops block without its data keys or MAC.
	ErrNoMetadata = errors.New("sops metadata missing")
	// ErrNoIdentity: none of the identities opens any of the file's data
	// keys.
	ErrNoIdentity = errors.New("no identity matches its recipients")
	// ErrMAC: the values do not match the file's MAC (a value was changed,
	// removed or added), or the MAC itself was changed.
	ErrMAC = errors.New("MAC mismatch")
	// ErrUnsupported: a feature of the format that gitorch does not
	// implement.
	ErrUnsupported = errors.New("not supported")
)

// AgeKey is one age recipient of a file with the data key encrypted for it
// (an armored age file).
type AgeKey struct {
	Recipient string `yaml:"recipient"`
	Enc       string `yaml:"enc"`
}

// Metadata is the sops block, with the field names sops writes.
type Metadata struct {
	Age                     []AgeKey   `yaml:"age,omitempty"`
	KeyGroups               []keyGroup `yaml:"key_groups,omitempty"`
	ShamirThreshold         int        `yaml:"shamir_threshold,omitempty"`
	LastModified            string     `yaml:"lastmodified"`
	MAC                     string     `yaml:"mac"`
	UnencryptedSuffix       string     `yaml:"unencrypted_suffix,omitempty"`
	EncryptedSuffix         string     `yaml:"encrypted_suffix,omitempty"`
	UnencryptedRegex        string     `yaml:"unencrypted_regex,omitempty"`
	EncryptedRegex          string     `yaml:"encrypted_regex,omitempty"`
	UnencryptedCommentRegex string     `yaml:"unencrypted_comment_regex,omitempty"`
	EncryptedCommentRegex   string     `yaml:"encrypted_comment_regex,omitempty"`
	MACOnlyEncrypted        bool       `yaml:"mac_only_encrypted,omitempty"`
	Version                 string     `yaml:"version"`

	// The other key sources, only to say which ones a file uses.
	PGP   []yaml.Node `yaml:"pgp,omitempty"`
	KMS   []yaml.Node `yaml:"kms,omitempty"`
	GCP   []yaml.Node `yaml:"gcp_kms,omitempty"`
	Azure []yaml.Node `yaml:"azure_kv,omitempty"`
	Vault []yaml.Node `yaml:"hc_vault,omitempty"`
	HCKMS []yaml.Node `yaml:"hckms,omitempty"`
}

type keyGroup struct {
	Age []AgeKey `yaml:"age,omitempty"`
	PGP []yaml.Node
	KMS []yaml.Node
}

// File is one parsed SOPS document (YAML, or JSON, which YAML reads).
type File struct {
	Meta Metadata
	// doc is the document node; its sops key is removed.
	doc    *yaml.Node
	leaves []leaf
	rules  rules
}

type leaf struct {
	node *yaml.Node
	path []string
}

// Parse reads a SOPS document. It checks the structure and the metadata;
// it needs no key.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file larger than %d bytes", MaxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return nil, fmt.Errorf("%w: a SOPS file with several documents (keep one encrypted Secret per file)", ErrUnsupported)
	} else if err != io.EOF {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("a SOPS document is a mapping")
	}
	root := doc.Content[0]
	f := &File{doc: &doc}
	metaAt := -1
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == MetadataKey {
			metaAt = i
		}
	}
	if metaAt < 0 {
		return nil, fmt.Errorf("%w: the document has no top-level %q key", ErrNoMetadata, MetadataKey)
	}
	if err := root.Content[metaAt+1].Decode(&f.Meta); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoMetadata, err)
	}
	root.Content = append(root.Content[:metaAt:metaAt], root.Content[metaAt+2:]...)
	if err := f.Meta.check(); err != nil {
		return nil, err
	}
	var err error
	if f.rules, err = newRules(f.Meta); err != nil {
		return nil, err
	}
	if f.leaves, err = collectLeaves(root); err != nil {
		return nil, err
	}
	return f, nil
}

func (m *Metadata) check() error {
	if len(m.KeyGroups) > 1 {
		return fmt.Errorf("%w: %d key groups (Shamir's secret sharing); use one list of age recipients", ErrUnsupported, len(m.KeyGroups))
	}
	if len(m.KeyGroups) == 1 {
		m.Age = append(m.Age, m.KeyGroups[0].Age...)
	}
	if len(m.Age) == 0 {
		var others []string
		for _, k := range []struct {
			name string
			n    int
		}{{"pgp", len(m.PGP)}, {"kms", len(m.KMS)}, {"gcp_kms", len(m.GCP)}, {"azure_kv", len(m.Azure)}, {"hc_vault", len(m.Vault)}, {"hckms", len(m.HCKMS)}} {
			if k.n > 0 {
				others = append(others, k.name)
			}
		}
		if len(others) > 0 {
			return fmt.Errorf("%w: encrypted for %s only; gitorch decrypts with age (add an age recipient: sops updatekeys)", ErrUnsupported, strings.Join(others, ", "))
		}
		return fmt.Errorf("%w: no age recipient in the sops block", ErrNoMetadata)
	}
	for i, k := range m.Age {
		if k.Recipient == "" || !strings.Contains(k.Enc, "BEGIN AGE ENCRYPTED FILE") {
			return fmt.Errorf("%w: sops.age[%d] has no recipient or no encrypted data key", ErrNoMetadata, i)
		}
	}
	if m.MAC == "" {
		return fmt.Errorf("%w: no mac", ErrNoMetadata)
	}
	if _, err := ParseValue(m.MAC); err != nil {
		return fmt.Errorf("sops.mac: %w", err)
	}
	if _, err := time.Parse(time.RFC3339, m.LastModified); err != nil {
		return fmt.Errorf("%w: lastmodified %q is not an RFC 3339 time", ErrNoMetadata, m.LastModified)
	}
	if m.UnencryptedCommentRegex != "" || m.EncryptedCommentRegex != "" {
		return fmt.Errorf("%w: comment-based encryption rules (unencrypted_comment_regex, encrypted_comment_regex)", ErrUnsupported)
	}
	return nil
}

// collectLeaves lists the scalars of the tree in the order sops walks it:
// mapping keys in order, list items in order, a list item's path being its
// list's. Nulls are not values.
func collectLeaves(n *yaml.Node) ([]leaf, error) {
	var out []leaf
	var walk func(n *yaml.Node, path []string) error
	walk = func(n *yaml.Node, path []string) error {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				var key any
				if err := k.Decode(&key); err != nil {
					return err
				}
				s, ok := key.(string)
				if !ok || k.Kind != yaml.ScalarNode {
					return fmt.Errorf("line %d: key %q is not a string", k.Line, k.Value)
				}
				if err := walk(n.Content[i+1], append(path[:len(path):len(path)], s)); err != nil {
					return err
				}
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				if err := walk(c, path); err != nil {
					return err
				}
			}
		case yaml.ScalarNode:
			if n.ShortTag() != "!!null" {
				out = append(out, leaf{node: n, path: path})
			}
		case yaml.AliasNode:
			return fmt.Errorf("%w: line %d: YAML aliases in an encrypted file", ErrUnsupported, n.Line)
		}
		if n.Anchor != "" {
			return fmt.Errorf("%w: line %d: YAML anchors in an encrypted file", ErrUnsupported, n.Line)
		}
		return nil
	}
	return out, walk(n, nil)
}

// rules is which paths sops encrypts, from the metadata.
type rules struct {
	unencSuffix, encSuffix string
	unencRE, encRE         *regexp.Regexp
}

func newRules(m Metadata) (rules, error) {
	r := rules{unencSuffix: m.UnencryptedSuffix, encSuffix: m.EncryptedSuffix}
	var err error
	if m.UnencryptedRegex != "" {
		if r.unencRE, err = regexp.Compile(m.UnencryptedRegex); err != nil {
			return r, fmt.Errorf("sops.unencrypted_regex: %w", err)
		}
	}
	if m.EncryptedRegex != "" {
		if r.encRE, err = regexp.Compile(m.EncryptedRegex); err != nil {
			return r, fmt.Errorf("sops.encrypted_regex: %w", err)
		}
	}
	return r, nil
}

// encrypted reports whether sops encrypts the value at path, by the rules
// as sops applies them, in this order.
func (r rules) encrypted(path []string) bool {
	enc := true
	any := func(pred func(string) bool) bool {
		for _, p := range path {
			if pred(p) {
				return true
			}
		}
		return false
	}
	if r.unencSuffix != "" && any(func(p string) bool { return strings.HasSuffix(p, r.unencSuffix) }) {
		enc = false
	}
	if r.encSuffix != "" {
		enc = any(func(p string) bool { return strings.HasSuffix(p, r.encSuffix) })
	}
	if r.unencRE != nil && any(r.unencRE.MatchString) {
		enc = false
	}
	if r.encRE != nil {
		enc = any(r.encRE.MatchString)
	}
	return enc
}

// EncryptedPaths are the paths (keys joined by ".") of the values the file
// keeps encrypted, in file order.
func (f *File) EncryptedPaths() []string {
	var out []string
	for _, l := range f.leaves {
		if f.rules.encrypted(l.path) && l.node.Value != "" {
			out = append(out, strings.Join(l.path, "."))
		}
	}
	return out
}

// Recipients are the age recipients the file's data key is encrypted for.
func (f *File) Recipients() []string {
	out := make([]string, len(f.Meta.Age))
	for i, k := range f.Meta.Age {
		out[i] = k.Recipient
	}
	return out
}

// macOnlyEncryptedInit starts the hash of a file whose MAC covers only its
// encrypted values, so that its MAC differs from one over all values
// (the bytes sops uses).
var macOnlyEncryptedInit = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb, 0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

// dataKey opens the file's data key with the first identity that matches
// one of its recipients.
func (f *File) dataKey(ids []age.Identity) ([]byte, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w %s (no age identity on this node)", ErrNoIdentity, strings.Join(f.Recipients(), ", "))
	}
	var other error
	for i, k := range f.Meta.Age {
		r, err := age.Decrypt(armor.NewReader(strings.NewReader(k.Enc)), ids...)
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			continue
		}
		if err != nil {
			other = fmt.Errorf("sops.age[%d]: %w", i, err)
			continue
		}
		key, err := io.ReadAll(io.LimitReader(r, 64))
		if err != nil {
			other = fmt.Errorf("sops.age[%d]: %w", i, err)
			continue
		}
		if len(key) != 32 {
			other = fmt.Errorf("sops.age[%d]: a data key of %d bytes, want 32", i, len(key))
			continue
		}
		return key, nil
	}
	if other != nil {
		return nil, other
	}
	return nil, fmt.Errorf("%w %s", ErrNoIdentity, strings.Join(f.Recipients(), ", "))
}

// Decrypt decrypts every value with the data key one of ids opens, checks
// the MAC, and returns the plaintext document (without the sops block).
// The File is left as it was.
func (f *File) Decrypt(ids ...age.Identity) (*yaml.Node, error) {
	key, err := f.dataKey(ids)
	if err != nil {
		return nil, err
	}
	h := sha512.New()
	if f.Meta.MACOnlyEncrypted {
		h.Write(macOnlyEncryptedInit)
	}
	plain := make([]yaml.Node, len(f.leaves))
	for i, l := range f.leaves {
		enc := f.rules.encrypted(l.path)
		n := *l.node
		if enc && n.Value != "" {
			if n.ShortTag() != "!!str" {
				return nil, fmt.Errorf("line %d: %s: want an encrypted value, found %s", n.Line, strings.Join(l.path, "."), n.ShortTag())
			}
			v, err := ParseValue(n.Value)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n.Line, strings.Join(l.path, "."), err)
			}
			b, err := v.open(key, strings.Join(l.path, ":")+":")
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n.Line, strings.Join(l.path, "."), err)
			}
			if err := setPlain(&n, b, v.Type); err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n.Line, strings.Join(l.path, "."), err)
			}
			// sops hashes the value it decoded (a bool as True or False).
			if v.Type != "str" && v.Type != "bytes" && v.Type != "time" {
				if b, err = macBytes(&n); err != nil {
					return nil, fmt.Errorf("line %d: %s: %w", n.Line, strings.Join(l.path, "."), err)
				}
			}
			h.Write(b)
		} else if !f.Meta.MACOnlyEncrypted || enc {
			b, err := macBytes(&n)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n.Line, strings.Join(l.path, "."), err)
			}
			h.Write(b)
		}
		plain[i] = n
	}
	mac, err := ParseValue(f.Meta.MAC)
	if err != nil {
		return nil, fmt.Errorf("sops.mac: %w", err)
	}
	stamp, _ := time.Parse(time.RFC3339, f.Meta.LastModified)
	want, err := mac.open(key, stamp.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("%w: the MAC does not open (it, or lastmodified, was changed)", ErrMAC)
	}
	got := fmt.Sprintf("%X", h.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
		return nil, fmt.Errorf("%w: the values were changed since they were encrypted", ErrMAC)
	}
	out := f.render(plain)
	f.decryptComments(out, key)
	return out, nil
}

// walkComments calls fn for each node of n whose comments are at path:
// the path of the mapping or list they are comments of, as sops gives
// them (a mapping or list value's own comments are inside it).
func walkComments(n *yaml.Node, path []string, fn func(n *yaml.Node, path []string)) {
	fn(n, path)
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkComments(c, path, fn)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			fn(k, path)
			if v.Kind == yaml.ScalarNode {
				fn(v, path)
				continue
			}
			walkComments(v, append(path[:len(path):len(path)], k.Value), fn)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			// An item's own comments are its list's.
			fn(c, path)
			if c.Kind != yaml.ScalarNode {
				walkComments(c, path, fn)
			}
		}
	}
}

// commentLines applies fn to each comment line of n (without its #),
// in place.
func commentLines(n *yaml.Node, fn func(string) string) {
	for _, c := range []*string{&n.HeadComment, &n.LineComment, &n.FootComment} {
		if *c == "" {
			continue
		}
		lines := strings.Split(*c, "\n")
		for i, l := range lines {
			if body, ok := strings.CutPrefix(l, "#"); ok {
				lines[i] = "#" + fn(body)
			}
		}
		*c = strings.Join(lines, "\n")
	}
}

// decryptComments decrypts the comments sops encrypted
// (#ENC[...,type:comment]) in the rendered copy n. A comment that does
// not decrypt stays as it is, as with sops: comments are not in the MAC.
func (f *File) decryptComments(n *yaml.Node, key []byte) {
	walkComments(n, nil, func(n *yaml.Node, path []string) {
		if !f.rules.encrypted(path) {
			return
		}
		aad := strings.Join(path, ":") + ":"
		commentLines(n, func(body string) string {
			v, err := ParseValue(body)
			if err != nil || v.Type != "comment" {
				return body
			}
			b, err := v.open(key, aad)
			if err != nil {
				return body
			}
			return string(b)
		})
	})
}

// render copies the document with the leaves replaced by plain.
func (f *File) render(plain []yaml.Node) *yaml.Node {
	repl := map[*yaml.Node]*yaml.Node{}
	for i := range f.leaves {
		repl[f.leaves[i].node] = &plain[i]
	}
	var cp func(n *yaml.Node) *yaml.Node
	cp = func(n *yaml.Node) *yaml.Node {
		if r, ok := repl[n]; ok {
			return r
		}
		c := *n
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, k := range n.Content {
			c.Content[i] = cp(k)
		}
		return &c
	}
	return cp(f.doc)
}

// setPlain writes the decrypted bytes into n as a scalar of the type sops
// recorded. Its errors never quote the value.
func setPlain(n *yaml.Node, b []byte, typ string) error {
	s := string(b)
	n.Style = 0
	switch typ {
	case "str", "bytes", "time":
		n.Tag = "!!str"
	case "int":
		if _, err := strconv.Atoi(s); err != nil {
			return fmt.Errorf("%w: type int, but the value is not one", ErrValue)
		}
		n.Tag = "!!int"
	case "float":
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return fmt.Errorf("%w: type float, but the value is not one", ErrValue)
		}
		n.Tag = "!!float"
	case "bool":
		v, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%w: type bool, but the value is not one", ErrValue)
		}
		n.Tag, s = "!!bool", strconv.FormatBool(v)
	default:
		return fmt.Errorf("%w: type %s where a value is expected", ErrValue, typ)
	}
	n.Value = s
	if n.Tag == "!!str" && strings.Contains(s, "\n") {
		n.Style = yaml.LiteralStyle
	}
	return nil
}

// macBytes is what sops hashes for a value: strings as they are, ints and
// floats formatted, booleans as True or False.
func macBytes(n *yaml.Node) ([]byte, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case int:
		return []byte(strconv.Itoa(v)), nil
	case float64:
		return []byte(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case bool:
		if v {
			return []byte("True"), nil
		}
		return []byte("False"), nil
	}
	return nil, fmt.Errorf("%w: a value of type %T", ErrUnsupported, v)
}

// Marshal writes a YAML node as a document, indented by two spaces.
func Marshal(n *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	e := yaml.NewEncoder(&b)
	e.SetIndent(2)
	if err := e.Encode(n); err != nil {
		return nil, err
	}
	if err := e.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Rules say which values Encrypt encrypts, as the metadata fields of the
// same names do. The zero Rules encrypt every value.
type Rules struct {
	UnencryptedSuffix string
	EncryptedSuffix   string
	UnencryptedRegex  string
	EncryptedRegex    string
	MACOnlyEncrypted  bool
}

// SecretRules encrypt only a Secret's data and stringData, leaving its
// apiVersion, kind and metadata readable, as Flux's documentation
// recommends: validate and plan then work without a key.
var SecretRules = Rules{EncryptedRegex: "^(data|stringData)$"}

// Encrypt encrypts a plaintext YAML or JSON document for recipients (each
// an age1... public key) and returns the SOPS file, in YAML. now is the
// file's lastmodified; rand, when nil, is crypto/rand.
func Encrypt(plain []byte, recipients []string, r Rules, now time.Time, rnd io.Reader) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if len(recipients) == 0 {
		return nil, errors.New("no recipient")
	}
	dec := yaml.NewDecoder(bytes.NewReader(plain))
	var doc, more yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := dec.Decode(&more); err != io.EOF {
		// Encrypting in place must not drop the other documents.
		return nil, errors.New("several YAML documents: keep one Secret per file to encrypt it")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("want one YAML document, a mapping")
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == MetadataKey {
			return nil, errors.New("already encrypted (it has a sops key)")
		}
	}
	meta := Metadata{UnencryptedSuffix: r.UnencryptedSuffix, EncryptedSuffix: r.EncryptedSuffix,
		UnencryptedRegex: r.UnencryptedRegex, EncryptedRegex: r.EncryptedRegex, MACOnlyEncrypted: r.MACOnlyEncrypted}
	if meta.UnencryptedSuffix == "" && meta.EncryptedSuffix == "" && meta.UnencryptedRegex == "" && meta.EncryptedRegex == "" {
		meta.UnencryptedSuffix = "_unencrypted" // sops's default
	}
	rl, err := newRules(meta)
	if err != nil {
		return nil, err
	}
	leaves, err := collectLeaves(root)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := io.ReadFull(rnd, key); err != nil {
		return nil, err
	}
	for _, s := range recipients {
		rc, err := ParseRecipient(s)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		aw := armor.NewWriter(&b)
		w, err := age.Encrypt(aw, rc)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(key); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		if err := aw.Close(); err != nil {
			return nil, err
		}
		b.WriteByte('\n')
		meta.Age = append(meta.Age, AgeKey{Recipient: s, Enc: b.String()})
	}
	h := sha512.New()
	if meta.MACOnlyEncrypted {
		h.Write(macOnlyEncryptedInit)
	}
	for _, l := range leaves {
		enc := rl.encrypted(l.path)
		b, err := macBytes(l.node)
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", l.node.Line, strings.Join(l.path, "."), err)
		}
		if !meta.MACOnlyEncrypted || enc {
			h.Write(b)
		}
		if !enc || l.node.Value == "" && l.node.ShortTag() == "!!str" {
			continue
		}
		typ := map[string]string{"!!str": "str", "!!int": "int", "!!float": "float", "!!bool": "bool"}[l.node.ShortTag()]
		if typ == "" {
			return nil, fmt.Errorf("line %d: %s: %w: a value tagged %s", l.node.Line, strings.Join(l.path, "."), ErrUnsupported, l.node.ShortTag())
		}
		// b is what sops encrypts too: ints and floats formatted, bools
		// as True or False.
		v, err := seal(key, b, typ, strings.Join(l.path, ":")+":", rnd)
		if err != nil {
			return nil, err
		}
		l.node.Value, l.node.Tag, l.node.Style = v.String(), "!!str", 0
	}
	// Comments where values are encrypted are encrypted too, as sops
	// does: they are not in the MAC.
	var cerr error
	walkComments(&doc, nil, func(n *yaml.Node, path []string) {
		if !rl.encrypted(path) {
			return
		}
		aad := strings.Join(path, ":") + ":"
		commentLines(n, func(body string) string {
			if body == "" || IsEncrypted(body) {
				return body
			}
			v, err := seal(key, []byte(body), "comment", aad, rnd)
			if err != nil {
				cerr = err
				return body
			}
			return v.String()
		})
	})
	if cerr != nil {
		return nil, cerr
	}
	stamp := now.UTC().Truncate(time.Second).Format(time.RFC3339)
	mac, err := seal(key, []byte(fmt.Sprintf("%X", h.Sum(nil))), "str", stamp, rnd)
	if err != nil {
		return nil, err
	}
	meta.LastModified, meta.MAC, meta.Version = stamp, mac.String(), "3.9.0"
	var mn yaml.Node
	if err := mn.Encode(meta); err != nil {
		return nil, err
	}
	root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: MetadataKey}, &mn)
	return Marshal(&doc)
}
