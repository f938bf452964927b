package kv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// replicaBuffer is how many writes a master queues for one replica; a
// replica that falls further behind is disconnected, and syncs again when
// it reconnects.
const replicaBuffer = 1024

// Server is one key-value store: a master, or a replica when it follows
// another Server (Follow).
type Server struct {
	log *slog.Logger

	mu       sync.Mutex
	data     map[string]string
	replicas map[chan []string]struct{} // the master's followers
	// As a replica: whom it follows and whether it holds the master's
	// whole data set and its writes since (the link is up).
	masterAddr string
	linkUp     bool
}

// NewServer returns an empty store, a master until Follow is called.
func NewServer(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{log: log, data: map[string]string{}, replicas: map[chan []string]struct{}{}}
}

// Serve accepts connections on l until ctx is done or accepting fails,
// and then closes l and every connection and waits for their goroutines.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	conns := map[net.Conn]struct{}{}
	var mu sync.Mutex
	done, cancel := context.WithCancel(ctx)
	context.AfterFunc(done, func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer wg.Wait()
	defer cancel()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		if done.Err() != nil {
			// Accepted just as Serve stopped: the closing may have
			// missed it.
			c.Close()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(done, c)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	for {
		args, err := ReadCommand(r)
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				fmt.Fprintf(w, "-ERR %s\r\n", oneLine(err.Error()))
				w.Flush()
			}
			return
		}
		if strings.EqualFold(args[0], "SYNC") {
			s.feedReplica(ctx, c, w)
			return
		}
		s.exec(w, args)
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// oneLine makes s fit in a status or error reply.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// write applies one write command to the data and queues it for every
// replica, under one lock, so that each replica sees the writes in the
// order the master applied them.
func (s *Server) write(args []string) {
	switch strings.ToUpper(args[0]) {
	case "SET":
		s.data[args[1]] = args[2]
	case "APPEND":
		s.data[args[1]] += args[2]
	case "DEL":
		for _, k := range args[1:] {
			delete(s.data, k)
		}
	}
	for ch := range s.replicas {
		select {
		case ch <- args:
		default:
			// Too far behind: drop it; it resyncs on reconnect.
			delete(s.replicas, ch)
			close(ch)
		}
	}
}

// arity is the number of arguments of each command (the name included);
// a negative one is a minimum.
var arity = map[string]int{
	"PING": -1, "ECHO": 2, "GET": 2, "SET": 3, "APPEND": 3, "DEL": -2, "EXISTS": -2, "INFO": -1,
}

// exec runs one command of a client and writes its reply.
func (s *Server) exec(w *bufio.Writer, args []string) {
	name := strings.ToUpper(args[0])
	n, ok := arity[name]
	if !ok {
		fmt.Fprintf(w, "-ERR unknown command '%s'\r\n", oneLine(args[0]))
		return
	}
	if (n > 0 && len(args) != n) || (n < 0 && len(args) < -n) {
		fmt.Fprintf(w, "-ERR wrong number of arguments for '%s' command\r\n", strings.ToLower(name))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch name {
	case "PING":
		if len(args) > 1 {
			writeBulk(w, args[1])
		} else {
			w.WriteString("+PONG\r\n")
		}
	case "ECHO":
		writeBulk(w, args[1])
	case "GET":
		if v, ok := s.data[args[1]]; ok {
			writeBulk(w, v)
		} else {
			w.WriteString("$-1\r\n")
		}
	case "EXISTS":
		n := 0
		for _, k := range args[1:] {
			if _, ok := s.data[k]; ok {
				n++
			}
		}
		fmt.Fprintf(w, ":%d\r\n", n)
	case "INFO":
		writeBulk(w, s.info())
	case "SET", "APPEND", "DEL":
		if s.masterAddr != "" {
			w.WriteString("-READONLY You can't write against a read only replica.\r\n")
			return
		}
		reply := "+OK\r\n"
		switch name {
		case "APPEND":
			reply = ":" + strconv.Itoa(len(s.data[args[1]])+len(args[2])) + "\r\n"
		case "DEL":
			n := 0
			for _, k := range args[1:] {
				if _, ok := s.data[k]; ok {
					n++
				}
			}
			reply = ":" + strconv.Itoa(n) + "\r\n"
		}
		s.write(args)
		w.WriteString(reply)
	}
}

// info is INFO's text: its replication section, in Redis's field names,
// so that a Redis client's checks read it.
func (s *Server) info() string {
	var b strings.Builder
	b.WriteString("# Replication\r\n")
	if s.masterAddr == "" {
		fmt.Fprintf(&b, "role:master\r\nconnected_slaves:%d\r\n", len(s.replicas))
	} else {
		host, port, _ := net.SplitHostPort(s.masterAddr)
		link := "down"
		if s.linkUp {
			link = "up"
		}
		fmt.Fprintf(&b, "role:slave\r\nmaster_host:%s\r\nmaster_port:%s\r\nmaster_link_status:%s\r\n", host, port, link)
	}
	fmt.Fprintf(&b, "# Keyspace\r\nkeys:%d\r\n", len(s.data))
	return b.String()
}

// feedReplica serves a replica's SYNC: the whole data set as SET commands
// after a +FULLRESYNC <n> line, then every write, until the replica goes
// away, falls too far behind, or ctx is done.
func (s *Server) feedReplica(ctx context.Context, c net.Conn, w *bufio.Writer) {
	ch := make(chan []string, replicaBuffer)
	s.mu.Lock()
	if s.masterAddr != "" {
		s.mu.Unlock()
		w.WriteString("-ERR this server is a replica: SYNC with its master\r\n")
		w.Flush()
		return
	}
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "+FULLRESYNC %d\r\n", len(keys))
	for _, k := range keys {
		fmt.Fprintf(w, "*3\r\n")
		writeBulk(w, "SET")
		writeBulk(w, k)
		writeBulk(w, s.data[k])
	}
	s.replicas[ch] = struct{}{}
	s.mu.Unlock()
	s.log.Info("replica synced", "replica", c.RemoteAddr().String(), "keys", len(keys))
	defer func() {
		s.mu.Lock()
		if _, ok := s.replicas[ch]; ok {
			delete(s.replicas, ch)
		}
		s.mu.Unlock()
		s.log.Info("replica gone", "replica", c.RemoteAddr().String())
	}()
	// The replica sends nothing more; reading tells when it goes away.
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c)
		close(gone)
	}()
	if w.Flush() != nil {
		return
	}
	// A ping now and then lets the replica tell a silent master from a
	// dead one.
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case args, ok := <-ch:
			if !ok || WriteCommand(w, args...) != nil {
				return
			}
		case <-ping.C:
			if WriteCommand(w, "PING") != nil {
				return
			}
		case <-gone:
			return
		case <-ctx.Done():
			return
		}
	}
}

// pingInterval is how often a master pings its replicas; a replica that
// hears nothing for linkTimeout takes the link for dead.
var (
	pingInterval = 2 * time.Second
	linkTimeout  = 3 * pingInterval
)

// Follow makes s a replica of the master at addr (host:port, resolved at
// each connection) until ctx is done: it connects, replaces its data with
// the master's, applies the master's writes as they come, and connects
// again after retry when the link breaks. Writes from clients are refused
// while it follows.
func (s *Server) Follow(ctx context.Context, addr string, retry time.Duration) {
	s.mu.Lock()
	s.masterAddr = addr
	s.mu.Unlock()
	for {
		err := s.followOnce(ctx, addr)
		s.mu.Lock()
		s.linkUp = false
		s.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("replication link down", "master", addr, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

func (s *Server) followOnce(ctx context.Context, addr string) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := d.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	if err := WriteCommand(w, "SYNC"); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(linkTimeout))
	head, err := ReadReply(r)
	if err != nil {
		return err
	}
	var n int
	if head.Kind != '+' || !strings.HasPrefix(head.Str, "FULLRESYNC ") {
		return fmt.Errorf("master answered SYNC with %c%s", head.Kind, head.Str)
	}
	if n, err = strconv.Atoi(strings.TrimPrefix(head.Str, "FULLRESYNC ")); err != nil || n < 0 {
		return fmt.Errorf("%w: bad FULLRESYNC %q", ErrProtocol, head.Str)
	}
	data := make(map[string]string, n)
	for range n {
		c.SetReadDeadline(time.Now().Add(linkTimeout))
		args, err := ReadCommand(r)
		if err != nil {
			return err
		}
		if len(args) != 3 || args[0] != "SET" {
			return fmt.Errorf("%w: snapshot holds %q", ErrProtocol, args[0])
		}
		data[args[1]] = args[2]
	}
	s.mu.Lock()
	s.data = data
	s.linkUp = true
	s.mu.Unlock()
	s.log.Info("following master", "master", addr, "keys", n)
	for {
		c.SetReadDeadline(time.Now().Add(linkTimeout))
		args, err := ReadCommand(r)
		if err != nil {
			return err
		}
		name := strings.ToUpper(args[0])
		if name == "PING" {
			continue
		}
		if !replicated(name, len(args)) {
			return fmt.Errorf("%w: master sent %q", ErrProtocol, args[0])
		}
		s.mu.Lock()
		s.write(args)
		s.mu.Unlock()
	}
}

// Ready says whether s serves what it should: a master always; a replica
// once it holds its master's data and follows its writes.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.masterAddr == "" || s.linkUp
}

// replicated says whether a command from the master is a write a replica
// applies, with the right number of arguments.
func replicated(name string, n int) bool {
	switch name {
	case "SET", "APPEND":
		return n == 3
	case "DEL":
		return n >= 2
	}
	return false
}
