// Command backend is the guestbook's key-value store, a tiny stand-in for
// Redis (see package kv for what it speaks and what it does not). It keeps
// its data in memory and listens on port 6379, as a master or, with
// -replica-of, as a replica following a master:
//
//	backend                              a master on :6379
//	backend -replica-of redis-master:6379
//	backend -check                       exit 0 when the server on :6379
//	                                     serves: a master, or a replica
//	                                     that follows its master
//
// -check is for a readiness probe (exec), as `redis-cli ping` is for Redis.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gitorch/gitorch/examples/guestbook-app/kv"
)

func main() {
	addr := flag.String("addr", ":6379", "address to listen on")
	master := flag.String("replica-of", "", "follow the master at this host:port (e.g. redis-master:6379) and refuse writes")
	check := flag.Bool("check", false, "check the server at -addr and exit: 0 if it is a master, or a replica whose link to its master is up")
	flag.Parse()
	if *check {
		if err := checkServer(*addr); err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	s := kv.NewServer(log)
	if *master != "" {
		go s.Follow(ctx, *master, time.Second)
		log.Info("serving as a replica", "addr", l.Addr().String(), "master", *master)
	} else {
		log.Info("serving as a master", "addr", l.Addr().String())
	}
	if err := s.Serve(ctx, l); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// checkServer asks the server at addr (":6379" means the loopback) for
// its INFO and says why it does not serve, if it does not.
func checkServer(addr string) error {
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := kv.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	rep, err := c.Do(ctx, "INFO")
	if err != nil {
		return err
	}
	info := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(rep.Str))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			info[k] = v
		}
	}
	switch {
	case info["role"] == "master":
		return nil
	case info["role"] == "slave" && info["master_link_status"] == "up":
		return nil
	case info["role"] == "slave":
		return fmt.Errorf("replica of %s:%s: link to the master is %s", info["master_host"], info["master_port"], info["master_link_status"])
	}
	return fmt.Errorf("INFO says role %q", info["role"])
}
