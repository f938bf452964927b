package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/webhook"
)

func addWebhookFlags(f *pflag.FlagSet) {
	f.String("webhook-secret-file", "", "file holding the webhooks' shared secret; without one the hooks are off (404)")
	f.String("webhook-max-body", "1Mi", "largest webhook body read; larger ones are refused (413) unread")
	f.String("webhook-address", "", "also serve the webhooks, and only them, on this address (for Git hosts outside; TLS with --tls-cert-file and --tls-key-file)")
	f.String("tls-cert-file", "", "certificate (PEM, with its chain) of --webhook-address")
	f.String("tls-key-file", "", "private key (PEM) of --tls-cert-file")
}

// webhookConfig is the receiver the flags ask for, nil when no secret is
// given; it is checked before the agent touches anything. The caller sets
// Ref and Trigger.
func (a *app) webhookConfig(log *slog.Logger) (*webhook.Config, error) {
	c := a.cfg
	sec, err := secret(c.GetString("webhook-secret-file"), c.GetString("webhook-secret"))
	if err != nil {
		return nil, usageError(fmt.Errorf("--webhook-secret-file: %w", err))
	}
	if sec == "" {
		if c.GetString("webhook-address") != "" {
			return nil, usageError(errors.New("--webhook-address needs --webhook-secret-file: hooks are never received unauthenticated"))
		}
		return nil, nil
	}
	q, err := resource.ParseQuantity(c.GetString("webhook-max-body"))
	if err != nil || q.Value() <= 0 {
		return nil, usageError(fmt.Errorf("--webhook-max-body %q: want a size such as 1Mi", c.GetString("webhook-max-body")))
	}
	if (c.GetString("tls-cert-file") == "") != (c.GetString("tls-key-file") == "") {
		return nil, usageError(errors.New("--tls-cert-file and --tls-key-file go together"))
	}
	return &webhook.Config{Secret: []byte(sec), MaxBody: q.Value(), Logger: log}, nil
}

// webhookReceiver makes the receiver of cfg (nil: none): each hook that
// concerns ref makes ag fetch, and the cluster with it.
func webhookReceiver(cfg *webhook.Config, ref string, ag *node.Agent, log *slog.Logger) (*webhook.Receiver, error) {
	if cfg == nil {
		return nil, nil
	}
	cfg.Ref = ref
	cfg.Trigger = func(ev webhook.Event) {
		log.Info("webhook: fetching now", "provider", ev.Provider, "event", ev.Name, "ref", ev.Ref, "delivery", ev.Delivery)
		ag.RequestSync()
	}
	return webhook.New(*cfg)
}

// serveWebhooks serves rc alone on --webhook-address, over TLS when a
// certificate is given, until ctx ends; it returns at once, with the
// address it listens on (nil: it does not).
func (a *app) serveWebhooks(ctx context.Context, rc *webhook.Receiver, log *slog.Logger) (net.Addr, error) {
	addr := a.cfg.GetString("webhook-address")
	if addr == "" || rc == nil {
		return nil, nil
	}
	cert, key := a.cfg.GetString("tls-cert-file"), a.cfg.GetString("tls-key-file")
	var tlsCfg *tls.Config
	if cert != "" {
		// Loaded now, so that a bad certificate stops the agent at start.
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, usageError(fmt.Errorf("--tls-cert-file, --tls-key-file: %w", err))
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--webhook-address: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/hooks/{provider}", rc)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// A slow body is a way to hold connections: a hook is small.
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		// Handshake errors of scanners are not worth more than debug.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("webhook server", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("serving webhooks", "address", ln.Addr().String(), "tls", tlsCfg != nil)
	return ln.Addr(), nil
}
