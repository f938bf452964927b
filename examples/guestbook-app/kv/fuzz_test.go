package kv

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzReadCommand: whatever a client sends, ReadCommand returns a command
// within the limits or an error, and a command it read writes back as the
// same bytes.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$8\r\nmessages\r\n$5\r\nhello\r\n",
		"*2\r\n$3\r\nGET\r\n$-1\r\n",
		"*1025\r\n",
		"*1\r\n$1048577\r\n",
		"GET x\r\n",
		"*1\n$4\nPING\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		args, err := ReadCommand(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		if len(args) < 1 || len(args) > MaxArgs {
			t.Fatalf("%d arguments", len(args))
		}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		if err := WriteCommand(w, args...); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("read %q from %q, which writes as %q", args, in, out.Bytes())
		}
	})
}

// FuzzReadReply: whatever a server sends, ReadReply returns one reply or
// an error, without panicking.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "-ERR x\r\n", ":42\r\n", "$5\r\nhello\r\n", "$-1\r\n", "$3\r\nab\r\n", "*1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := ReadReply(bufio.NewReader(bytes.NewReader(in)))
		if err == nil && rep.Kind != '+' && rep.Kind != '-' && rep.Kind != ':' && rep.Kind != '$' {
			t.Fatalf("reply of kind %q", rep.Kind)
		}
	})
}
