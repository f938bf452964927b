package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/webhook"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestWebhookAddressServesHooksOnlyOverTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	a := newApp(io.Discard, io.Discard)
	a.cfg.Set("webhook-address", "127.0.0.1:0")
	a.cfg.Set("tls-cert-file", certFile)
	a.cfg.Set("tls-key-file", keyFile)
	var fetches atomic.Int64
	rc, err := webhook.New(webhook.Config{Secret: []byte("s3cret"), Ref: "main", Trigger: func(webhook.Event) { fetches.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := a.serveWebhooks(t.Context(), rc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + addr.String()
	body := `{"ref":"refs/heads/main"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/hooks/generic", strings.NewReader(body))
	req.Header.Set("X-Signature-256", "sha256="+webhook.Sign([]byte("s3cret"), []byte(body)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || fetches.Load() != 1 {
		t.Fatalf("a signed hook over TLS: %s, %d fetches", resp.Status, fetches.Load())
	}
	// Only the hooks: the API is not on this address.
	resp, err = client.Get(base + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /v1/status on the webhook address: %s, want 404", resp.Status)
	}
	// Plain HTTP is not answered as HTTP.
	if resp, err := http.Get("http://" + addr.String() + "/v1/hooks/generic"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the TLS address: %s", resp.Status)
		}
	}

	a.cfg.Set("tls-key-file", certFile)
	if _, err := a.serveWebhooks(t.Context(), rc, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a certificate given as its own key was accepted")
	}
}
