// Package kv is the guestbook's key-value store: a tiny stand-in for Redis,
// not Redis. It speaks the small part of the Redis protocol (RESP 2) that
// the guestbook needs — PING, ECHO, GET, SET, APPEND, DEL, EXISTS and INFO —
// keeps its data in memory only, and has a replica mode that follows a
// master. Replication is its own: a replica sends SYNC, and the master
// answers with its keys as SET commands, then every write it executes.
// That is not Redis's replication protocol (no RDB, no PSYNC, no offsets):
// a replica of this package cannot follow a real Redis, nor a real Redis
// follow this package.
//
// It is made for the example repository's guestbook, which must run on
// nodes without registry access: examples/guestbook-app/backend is the
// program, built into an image by scripts/guestbook-images.
package kv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Limits on what a peer may send: a command longer than these is a
// protocol error and ends the connection, so that a client cannot make
// the server allocate without bound.
const (
	MaxArgs     = 1024
	MaxBulk     = 1 << 20 // bytes in one argument or bulk reply
	maxLineSize = 64      // a header line: *N, $N, +..., -..., :N
)

// ErrProtocol is the error of a peer that does not speak RESP.
var ErrProtocol = errors.New("protocol error")

// line reads one CRLF-terminated line of at most maxLen bytes, without
// its CRLF.
func line(r *bufio.Reader, maxLen int) ([]byte, error) {
	var buf []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if b == '\n' {
			if len(buf) == 0 || buf[len(buf)-1] != '\r' {
				return nil, fmt.Errorf("%w: line ends without CR", ErrProtocol)
			}
			return buf[:len(buf)-1], nil
		}
		if len(buf) >= maxLen {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLen)
		}
		buf = append(buf, b)
	}
}

// length parses the count of a *N or $N header; -1 is a null.
func length(b []byte, limit int) (int, error) {
	if string(b) == "-1" {
		return -1, nil
	}
	// Digits only, without a sign or leading zeros: one length has one
	// spelling.
	bad := len(b) == 0 || len(b) > 10 || (b[0] == '0' && len(b) > 1)
	for _, c := range b {
		bad = bad || c < '0' || c > '9'
	}
	if bad {
		return 0, fmt.Errorf("%w: bad length %q", ErrProtocol, b)
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n > limit {
		return 0, fmt.Errorf("%w: length %q over %d", ErrProtocol, b, limit)
	}
	return n, nil
}

// bulk reads the n bytes of a bulk string and its CRLF.
func bulk(r *bufio.Reader, n int) ([]byte, error) {
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return nil, fmt.Errorf("%w: bulk string not ended by CRLF", ErrProtocol)
	}
	return buf[:n], nil
}

// ReadCommand reads one command as clients send it: an array of bulk
// strings. io.EOF means the peer closed the connection between commands.
func ReadCommand(r *bufio.Reader) ([]string, error) {
	head, err := line(r, maxLineSize)
	if err != nil {
		return nil, err
	}
	if len(head) == 0 || head[0] != '*' {
		return nil, fmt.Errorf("%w: expected an array of bulk strings, got %q", ErrProtocol, head)
	}
	n, err := length(head[1:], MaxArgs)
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("%w: empty command", ErrProtocol)
	}
	args := make([]string, 0, n)
	for range n {
		h, err := line(r, maxLineSize)
		if err != nil {
			return nil, unexpected(err)
		}
		if len(h) == 0 || h[0] != '$' {
			return nil, fmt.Errorf("%w: expected a bulk string, got %q", ErrProtocol, h)
		}
		size, err := length(h[1:], MaxBulk)
		if err != nil {
			return nil, err
		}
		if size < 0 {
			return nil, fmt.Errorf("%w: null argument", ErrProtocol)
		}
		b, err := bulk(r, size)
		if err != nil {
			return nil, err
		}
		args = append(args, string(b))
	}
	return args, nil
}

// unexpected turns an io.EOF in the middle of a message into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteCommand writes args as an array of bulk strings.
func WriteCommand(w *bufio.Writer, args ...string) error {
	fmt.Fprintf(w, "*%d\r\n", len(args))
	for _, a := range args {
		writeBulk(w, a)
	}
	return w.Flush()
}

func writeBulk(w *bufio.Writer, s string) {
	fmt.Fprintf(w, "$%d\r\n", len(s))
	w.WriteString(s)
	w.WriteString("\r\n")
}

// Reply is one reply of the server. Exactly one of its forms is set, as
// Kind says.
type Reply struct {
	Kind  byte   // '+' status, '-' error, ':' integer, '$' bulk string
	Str   string // the status, error or bulk string
	Int   int64
	IsNil bool // a null bulk string ($-1): the key does not exist
}

// ReadReply reads one reply: a status, an error, an integer or a bulk
// string (the replies of the commands this package has).
func ReadReply(r *bufio.Reader) (Reply, error) {
	h, err := line(r, MaxBulk)
	if err != nil {
		return Reply{}, err
	}
	if len(h) == 0 {
		return Reply{}, fmt.Errorf("%w: empty reply", ErrProtocol)
	}
	switch h[0] {
	case '+', '-':
		return Reply{Kind: h[0], Str: string(h[1:])}, nil
	case ':':
		n, err := strconv.ParseInt(string(h[1:]), 10, 64)
		if err != nil {
			return Reply{}, fmt.Errorf("%w: bad integer %q", ErrProtocol, h)
		}
		return Reply{Kind: ':', Int: n}, nil
	case '$':
		n, err := length(h[1:], MaxBulk)
		if err != nil {
			return Reply{}, err
		}
		if n < 0 {
			return Reply{Kind: '$', IsNil: true}, nil
		}
		b, err := bulk(r, n)
		if err != nil {
			return Reply{}, err
		}
		return Reply{Kind: '$', Str: string(b)}, nil
	}
	return Reply{}, fmt.Errorf("%w: unknown reply type %q", ErrProtocol, h[0])
}
