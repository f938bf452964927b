// Command frontend is the guestbook's web frontend, a Go counterpart of the
// PHP frontend of the Kubernetes guestbook example (gb-frontend). It serves
//
//	/                   the entries and a form to add one
//	/guestbook.php      the original's API: ?cmd=set&key=K&value=V stores V
//	                    under K ({"message": "Updated"}); ?cmd=get&key=K
//	                    returns {"data": "V"}
//	/healthz            200 while the process serves (it does not depend on
//	                    the backend, so that a backend outage does not take
//	                    the frontend out of its Service)
//
// As the original, it writes to the master (Service redis-master) and reads
// from the replicas (Service redis-replica), on port 6379. With
// GET_HOSTS_FROM=dns (the default) it finds them by their Services' DNS
// names, resolved at each request; with GET_HOSTS_FROM=env by the
// REDIS_MASTER_SERVICE_HOST and REDIS_REPLICA_SERVICE_HOST variables.
// The entries are one comma-separated value under the key "messages", as
// the original's page keeps them.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", ":80", "address to serve HTTP on")
	master := flag.String("master", "", "the master's host:port (default: from GET_HOSTS_FROM)")
	replica := flag.String("replica", "", "a replica's host:port, for reads (default: from GET_HOSTS_FROM)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	b, err := backendsFrom(os.Getenv)
	if err != nil {
		log.Error("find the backends", "err", err)
		os.Exit(2)
	}
	if *master != "" {
		b.master = *master
	}
	if *replica != "" {
		b.replica = *replica
	}
	host, _ := os.Hostname()
	h := newHandler(b, host, log)
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving", "addr", *addr, "master", b.master, "replica", b.replica)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}
