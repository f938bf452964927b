package kv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
)

// Client is one connection to a server, for one goroutine at a time.
type Client struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

// Dial connects to the server at addr (host:port; the host is resolved
// now, so a Service's DNS name picks up its current address).
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Client{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// ServerError is an error reply of the server.
type ServerError string

func (e ServerError) Error() string { return string(e) }

// Do sends one command and reads its reply, within ctx's deadline. An
// error reply is returned as a ServerError.
func (c *Client) Do(ctx context.Context, args ...string) (Reply, error) {
	deadline, _ := ctx.Deadline() // none: the zero time, no deadline
	c.c.SetDeadline(deadline)
	if err := WriteCommand(c.w, args...); err != nil {
		return Reply{}, err
	}
	rep, err := ReadReply(c.r)
	if err != nil {
		return Reply{}, err
	}
	if rep.Kind == '-' {
		return rep, ServerError(rep.Str)
	}
	return rep, nil
}

// Get returns the value of key; ok is false when there is none.
func (c *Client) Get(ctx context.Context, key string) (value string, ok bool, err error) {
	rep, err := c.Do(ctx, "GET", key)
	if err != nil {
		return "", false, err
	}
	if rep.Kind != '$' {
		return "", false, fmt.Errorf("GET: unexpected reply %c", rep.Kind)
	}
	return rep.Str, !rep.IsNil, nil
}

// Set sets key to value.
func (c *Client) Set(ctx context.Context, key, value string) error {
	rep, err := c.Do(ctx, "SET", key, value)
	if err != nil {
		return err
	}
	if rep.Kind != '+' {
		return errors.New("SET: unexpected reply")
	}
	return nil
}

// Append appends value to key's value (to nothing when key has none).
func (c *Client) Append(ctx context.Context, key, value string) error {
	rep, err := c.Do(ctx, "APPEND", key, value)
	if err != nil {
		return err
	}
	if rep.Kind != ':' {
		return errors.New("APPEND: unexpected reply")
	}
	return nil
}
