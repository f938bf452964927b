package secrets_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"

	"github.com/gitorch/gitorch/internal/testenv"
	"github.com/gitorch/gitorch/pkg/secrets"
)

func readIDs(t *testing.T, path string) []age.Identity {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decryptString decrypts data and returns the value at path.
func decryptString(t *testing.T, data []byte, ids []age.Identity, path ...string) (string, error) {
	t.Helper()
	f, err := secrets.Parse(data)
	if err != nil {
		return "", err
	}
	doc, err := f.Decrypt(ids...)
	if err != nil {
		return "", err
	}
	n := doc.Content[0]
	for _, p := range path {
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			t.Fatalf("no %s in the decrypted document", strings.Join(path, "."))
		}
		n = next
	}
	return n.Value, nil
}

// Files the sops tool wrote, as Flux's tests keep them.
func TestDecryptSopsToolFiles(t *testing.T) {
	for _, tc := range []struct {
		file, key, want string
	}{
		{"algorithms-age.yaml", "keys-age.txt", "value"},
		{"algorithms-age-pq.yaml", "keys-age-pq.txt", "value"},
		{"global-secret.yaml", "keys-age-global.txt", "global-value"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data := mustRead(t, filepath.Join("testdata/flux", tc.file))
			ids := readIDs(t, filepath.Join("testdata/flux", tc.key))
			got, err := decryptString(t, data, ids, "stringData", "key")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("stringData.key = %q, want %q", got, tc.want)
			}
		})
	}
}

// Files sops 3.13.3 wrote: every value encrypted (ints, floats, bools,
// lists, a multi-line string), the MAC over the encrypted values only, and
// encrypted comments.
func TestDecryptSops313Files(t *testing.T) {
	ids := readIDs(t, "testdata/flux/keys-age.txt")
	var want any
	if err := yaml.Unmarshal(mustRead(t, "testdata/sops-3.13.3/plain.yaml"), &want); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"everything.yaml", "mac-only-encrypted.yaml"} {
		t.Run(name, func(t *testing.T) {
			f, err := secrets.Parse(mustRead(t, "testdata/sops-3.13.3/"+name))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := f.Decrypt(ids...)
			if err != nil {
				t.Fatal(err)
			}
			var got any
			if err := doc.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if g, w := mustYAML(t, got), mustYAML(t, want); g != w {
				t.Errorf("decrypted:\n%s\nwant:\n%s", g, w)
			}
		})
	}
	data := mustRead(t, "testdata/sops-3.13.3/comments.yaml")
	for path, want := range map[string]string{"stringData.password": "hunter2", "stringData.note_unencrypted": "left as it is", "metadata.name": "commented"} {
		got, err := decryptString(t, data, ids, strings.Split(path, ".")...)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
}

// Comments where values are encrypted are encrypted, as sops does, and
// decrypt; the others stay as they are.
func TestComments(t *testing.T) {
	id := newIdentity(t)
	plain := "# top of the file\nkind: Secret\nstringData:\n  # the admin's password\n  password: hunter2 # rotated monthly\n"
	enc, err := secrets.Encrypt([]byte(plain), []string{id.Recipient().String()}, secrets.SecretRules, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"admin's", "monthly"} {
		if bytes.Contains(enc, []byte(s)) {
			t.Errorf("the encrypted file holds the comment %q:\n%s", s, enc)
		}
	}
	if !bytes.Contains(enc, []byte("# top of the file")) || !bytes.Contains(enc, []byte("type:comment]")) {
		t.Errorf("comments:\n%s", enc)
	}
	f, err := secrets.Parse(enc)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := f.Decrypt(id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := secrets.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"# top of the file", "# the admin's password", "password: hunter2 # rotated monthly"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("decrypted without %q:\n%s", s, out)
		}
	}
	// The comments of sops's file decrypt too.
	f, err = secrets.Parse(mustRead(t, "testdata/sops-3.13.3/comments.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if doc, err = f.Decrypt(readIDs(t, "testdata/flux/keys-age.txt")...); err != nil {
		t.Fatal(err)
	}
	if out, err = secrets.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"# a comment at the top", "# the password", "password: hunter2 # inline"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("sops's file decrypted without %q:\n%s", s, out)
		}
	}
}

func TestSopsIdentityOpensItsDataKey(t *testing.T) {
	// The sops project's test identity and a value it encrypted: the age
	// layer opens it, and the file is refused because a data key is 32
	// bytes, not 4.
	enc := mustRead(t, "testdata/sops/encrypted-key.age")
	doc := buildFile(t, string(enc), "age1lzd99uklcjnc0e7d860axevet2cz99ce9pq6tzuzd05l5nr28ams36nvun")
	_, err := decryptString(t, doc, readIDs(t, "testdata/sops/identity.txt"), "stringData", "key")
	if err == nil || !strings.Contains(err.Error(), "a data key of 4 bytes") {
		t.Fatalf("err = %v, want the data key's length refused", err)
	}
}

// buildFile wraps an armored data key in a sops block around a value
// that is not encrypted, as a structure to parse.
func buildFile(t *testing.T, armored, recipient string) []byte {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  key: ENC[AES256_GCM,data:AAAA,iv:" +
		strings.Repeat("A", 43) + "=,tag:" + strings.Repeat("A", 22) + "==,type:str]\nsops:\n  age:\n    - recipient: " + recipient + "\n      enc: |\n")
	for _, l := range strings.Split(strings.TrimSpace(armored), "\n") {
		b.WriteString("        " + l + "\n")
	}
	b.WriteString("  lastmodified: \"2026-01-01T00:00:00Z\"\n  mac: ENC[AES256_GCM,data:AAAA,iv:" + strings.Repeat("A", 43) + "=,tag:" + strings.Repeat("A", 22) + "==,type:str]\n  version: 3.9.0\n")
	return []byte(b.String())
}

const plainSecret = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: default
type: Opaque
data:
  password: aHVudGVyMg==
stringData:
  user: admin
  port: 5432
  ratio: 1.5
  debug: true
  empty: ""
  note_unencrypted: plain
`

func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func encrypt(t *testing.T, plain string, r secrets.Rules, ids ...*age.X25519Identity) []byte {
	t.Helper()
	var rs []string
	for _, id := range ids {
		rs = append(rs, id.Recipient().String())
	}
	out, err := secrets.Encrypt([]byte(plain), rs, r, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	alice, bob := newIdentity(t), newIdentity(t)
	for name, r := range map[string]secrets.Rules{
		"secret rules": secrets.SecretRules,
		"every value":  {},
		"mac only enc": {EncryptedRegex: "^data$", MACOnlyEncrypted: true},
	} {
		t.Run(name, func(t *testing.T) {
			enc := encrypt(t, plainSecret, r, alice, bob)
			if bytes.Contains(enc, []byte("aHVudGVyMg==")) {
				t.Fatal("the encrypted file holds the value")
			}
			f, err := secrets.Parse(enc)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Recipients(); len(got) != 2 || got[1] != bob.Recipient().String() {
				t.Errorf("recipients = %v", got)
			}
			for _, id := range []*age.X25519Identity{alice, bob} {
				doc, err := f.Decrypt(id)
				if err != nil {
					t.Fatal(err)
				}
				out, err := secrets.Marshal(doc)
				if err != nil {
					t.Fatal(err)
				}
				var got, want any
				if err := yaml.Unmarshal(out, &got); err != nil {
					t.Fatal(err)
				}
				if err := yaml.Unmarshal([]byte(plainSecret), &want); err != nil {
					t.Fatal(err)
				}
				if g, w := mustYAML(t, got), mustYAML(t, want); g != w {
					t.Errorf("decrypted:\n%s\nwant:\n%s", g, w)
				}
			}
		})
	}
}

// Values in flow style, a list, and a multi-line string keep their
// structure through encryption.
func TestEncryptKeepsStyles(t *testing.T) {
	id := newIdentity(t)
	plain := "kind: Secret\nstringData: {a: \"x, y\", b: [1, two]}\ndata:\n  pem: |\n    line one\n    line two\n"
	enc, err := secrets.Encrypt([]byte(plain), []string{id.Recipient().String()}, secrets.SecretRules, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decryptString(t, enc, []age.Identity{id}, "data", "pem")
	if err != nil {
		t.Fatal(err)
	}
	if got != "line one\nline two\n" {
		t.Errorf("pem = %q", got)
	}
	f, err := secrets.Parse(enc)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := f.Decrypt(id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := secrets.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := yaml.Unmarshal(out, &a); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(plain), &b); err != nil {
		t.Fatal(err)
	}
	if mustYAML(t, a) != mustYAML(t, b) {
		t.Errorf("decrypted:\n%s\nwant:\n%s", out, plain)
	}
}

func mustYAML(t *testing.T, v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSecretRulesKeepStructureReadable(t *testing.T) {
	enc := encrypt(t, plainSecret, secrets.SecretRules, newIdentity(t))
	for _, s := range []string{"kind: Secret", "name: db", "type: Opaque", "password: ENC[AES256_GCM,", "port: ENC[AES256_GCM,", "type:int]", "type:bool]", "type:float]", `empty: ""`} {
		if !bytes.Contains(enc, []byte(s)) {
			t.Errorf("the file has no %q:\n%s", s, enc)
		}
	}
	f, err := secrets.Parse(enc)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(f.EncryptedPaths(), " ")
	if want := "data.password stringData.user stringData.port stringData.ratio stringData.debug stringData.note_unencrypted"; got != want {
		t.Errorf("encrypted paths = %s, want %s", got, want)
	}
}

// tamper replaces the first occurrence of old in data.
func tamper(t *testing.T, data []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("no %q to tamper with in:\n%s", old, data)
	}
	return bytes.Replace(data, []byte(old), []byte(new), 1)
}

func TestRefused(t *testing.T) {
	id, other := newIdentity(t), newIdentity(t)
	enc := encrypt(t, plainSecret, secrets.SecretRules, id)
	var doc map[string]any
	if err := yaml.Unmarshal(enc, &doc); err != nil {
		t.Fatal(err)
	}
	sops := doc["sops"].(map[string]any)
	mac := sops["mac"].(string)
	pw := doc["data"].(map[string]any)["password"].(string)
	user := doc["stringData"].(map[string]any)["user"].(string)
	flip := func(s string) string { // change one base64 digit of the data
		i := strings.Index(s, "data:") + len("data:")
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	for _, tc := range []struct {
		name string
		data []byte
		ids  []age.Identity
		want error
		msg  string
	}{
		{name: "foreign recipient", data: enc, ids: []age.Identity{other}, want: secrets.ErrNoIdentity, msg: "no identity matches its recipients " + id.Recipient().String()},
		{name: "no identity", data: enc, want: secrets.ErrNoIdentity},
		{name: "tampered value", data: tamper(t, enc, pw, flip(pw)), ids: []age.Identity{id}, msg: "data.password: authentication failed"},
		{name: "values swapped", data: tamper(t, enc, user, pw), ids: []age.Identity{id}, msg: "stringData.user: authentication failed"},
		{name: "tampered MAC", data: tamper(t, enc, mac, flip(mac)), ids: []age.Identity{id}, want: secrets.ErrMAC},
		{name: "lastmodified changed", data: tamper(t, enc, "2026-12-01T10:00:00Z", "2026-12-01T10:00:01Z"), ids: []age.Identity{id}, want: secrets.ErrMAC},
		{name: "unencrypted value changed", data: tamper(t, enc, "type: Opaque", "type: kubernetes.io/tls"), ids: []age.Identity{id}, want: secrets.ErrMAC},
		{name: "value removed", data: tamper(t, enc, "  user: "+user+"\n", ""), ids: []age.Identity{id}, want: secrets.ErrMAC},
		{name: "truncated value", data: tamper(t, enc, pw, pw[:len(pw)/2]), ids: []age.Identity{id}, want: secrets.ErrValue},
		{name: "metadata missing", data: enc[:bytes.Index(enc, []byte("sops:"))], want: secrets.ErrNoMetadata},
		{name: "no mac", data: tamper(t, enc, "mac: "+mac, "mac: \"\""), want: secrets.ErrNoMetadata},
		{name: "huge value", data: tamper(t, enc, pw, "ENC[AES256_GCM,data:"+strings.Repeat("A", 2<<20)+",iv:x,tag:y,type:str]"), ids: []age.Identity{id}, msg: "larger than"},
		{name: "huge file", data: append(bytes.Repeat([]byte("#\n"), 3<<20), enc...), msg: "file larger than"},
		{name: "pgp only", data: []byte("a: ENC[AES256_GCM,data:AAAA,iv:AAAAAAAAAAAAAAAA,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]\nsops:\n  pgp:\n    - fp: X\n      enc: x\n  mac: x\n"), want: secrets.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := secrets.Parse(tc.data)
			if err == nil {
				_, err = f.Decrypt(tc.ids...)
			}
			if err == nil {
				t.Fatal("decrypted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want it to say %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "admin") {
				t.Errorf("the error holds a value: %v", err)
			}
		})
	}
}

// The age CLI of Debian: a data key it encrypted opens, and one this
// package encrypted opens with it.
func TestAgeCLIInterop(t *testing.T) {
	ageCLI := testenv.RequireBinary(t, "age")
	keygen := testenv.RequireBinary(t, "age-keygen")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.txt")
	if out, err := exec.Command(keygen, "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v: %s", err, out)
	}
	ids, err := secrets.ReadIdentityFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := secrets.Recipient(ids[0])

	// This package's file, its data key opened by the CLI.
	enc, err := secrets.Encrypt([]byte(plainSecret), []string{pub}, secrets.SecretRules, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sops secrets.Metadata `yaml:"sops"`
	}
	if err := yaml.Unmarshal(enc, &doc); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ageCLI, "-d", "-i", keyFile)
	cmd.Stdin = strings.NewReader(doc.Sops.Age[0].Enc)
	dataKey, err := cmd.Output()
	if err != nil || len(dataKey) != 32 {
		t.Fatalf("age -d: %v, %d bytes", err, len(dataKey))
	}

	// The CLI encrypts that data key again, for the same recipient: the
	// file with that envelope instead decrypts.
	cmd = exec.Command(ageCLI, "-e", "-a", "-r", pub)
	cmd.Stdin = bytes.NewReader(dataKey)
	armored, err := cmd.Output()
	if err != nil {
		t.Fatalf("age -e: %v", err)
	}
	var node yaml.Node
	if err := yaml.Unmarshal(enc, &node); err != nil {
		t.Fatal(err)
	}
	replaced := false
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		for i, c := range n.Content {
			if c.Value == "enc" && i+1 < len(n.Content) {
				n.Content[i+1].Value = string(armored)
				replaced = true
			}
			walk(c)
		}
	}
	walk(&node)
	if !replaced {
		t.Fatal("no enc in the file")
	}
	again, err := secrets.Marshal(&node)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again, enc) {
		t.Fatal("the envelope did not change")
	}
	got, err := decryptString(t, again, ids, "data", "password")
	if err != nil {
		t.Fatal(err)
	}
	if got != "aHVudGVyMg==" {
		t.Errorf("data.password = %q", got)
	}
}

func TestEncryptRefusesSeveralDocuments(t *testing.T) {
	id := newIdentity(t)
	for _, plain := range []string{plainSecret + "---\n" + plainSecret, plainSecret + "---\nkind: ConfigMap\n", "---\n" + plainSecret + "---\n# only a comment\n"} {
		if _, err := secrets.Encrypt([]byte(plain), []string{id.Recipient().String()}, secrets.SecretRules, time.Now(), nil); err == nil || !strings.Contains(err.Error(), "several YAML documents") {
			t.Errorf("err = %v, want several documents refused", err)
		}
	}
}

func TestIdentityFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "age.key")
	pub, err := secrets.WriteNewIdentity(p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v %v", fi.Mode(), err)
	}
	ids, err := secrets.ReadIdentityFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := secrets.Recipient(ids[0]); got != pub {
		t.Errorf("recipient %s, want %s", got, pub)
	}
	if _, err := secrets.WriteNewIdentity(p, time.Now()); err == nil {
		t.Error("an existing identity was overwritten")
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := secrets.ReadIdentityFile(p); !errors.Is(err, secrets.ErrKeyFilePermissions) {
			t.Errorf("mode %04o: err = %v, want refused", mode, err)
		}
	}
	if err := os.Chmod(p, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.ReadIdentityFile(p); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}
