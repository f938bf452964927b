package e2e_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
	"github.com/gitorch/gitorch/pkg/plan"
)

// BenchmarkWebhookCommitToRunning measures what a user waits for after a
// push: from the commit (a one-pod change) until its new pod runs Ready,
// as the node that got the hook reports it, with GitHub's signed push hook
// sent to n1 and the agents' polling at one hour, so that the hook (and,
// on three nodes, its fan-out through gossip) is the only trigger. 20
// commits per run, on one node and on three; containerd for real.
func BenchmarkWebhookCommitToRunning(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				waits := hookToRunning(b, nodes, 20)
				slices.Sort(waits)
				b.Logf("%d nodes, commit → pod Running and ready, ms: %v", nodes, waits)
				b.ReportMetric(float64(waits[len(waits)/2].Milliseconds()), "median-ms")
				b.ReportMetric(float64(waits[len(waits)*99/100].Milliseconds()), "p99-ms")
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}

func oneSleeper(gen int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: hook
spec:
  replicas: 1
  selector:
    matchLabels: {app: hook}
  template:
    metadata:
      labels: {app: hook}
      annotations: {generation: "%d"}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: %s
        imagePullPolicy: IfNotPresent
        command: ["sleep", "86400"]
`, gen, applytest.BusyboxRef)
}

// hookToRunning runs a cluster of n nodes and returns, for each of
// commits commits, the time from the commit to its pod running Ready.
func hookToRunning(b *testing.B, n, commits int) []time.Duration {
	secret := filepath.Join(b.TempDir(), "webhook.secret")
	if err := os.WriteFile(secret, []byte("It's a Secret to Everybody"), 0o600); err != nil {
		b.Fatal(err)
	}
	c := NewCluster(b, Options{Nodes: n, Args: []string{"--poll-interval", "1h", "--webhook-secret-file", secret}})
	c.Commit("generation 0", map[string]string{"hook.yaml": oneSleeper(0)})
	c.Start()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i+1)
	}
	c.AliveMembers(c.Members(), names, 60*time.Second)
	n1 := c.Node("n1")
	var waits []time.Duration
	for gen := 1; gen <= commits; gen++ {
		start := time.Now()
		sha := c.Commit(fmt.Sprintf("generation %d", gen), map[string]string{"hook.yaml": oneSleeper(gen)})
		sendPushHook(b, c, n1, "It's a Secret to Everybody", fmt.Sprintf("bench-%d-%d", n, gen))
		Eventually(b, 60*time.Second, fmt.Sprintf("the pod of %.8s running", sha), func() (bool, string) {
			st, err := n1.Status()
			if err != nil {
				return false, err.Error()
			}
			for _, p := range st.Pods {
				if strings.HasPrefix(p.Name, "hook-") && p.Revision == sha && p.Phase == plan.PhaseRunning && p.Ready {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d pods", len(st.Pods))
		})
		waits = append(waits, time.Since(start))
	}
	return waits
}

// sendPushHook sends GitHub's push hook for main, signed with secret, to
// node's API from inside its network namespace.
func sendPushHook(b *testing.B, c *Cluster, node *Node, secret, delivery string) {
	body := []byte(`{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000"}`)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	// The connection is made inside the node's network namespace (the
	// dial runs on the thread Host.Do moved there); the request then
	// goes over it.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := node.Host.Do(func() error {
			var err error
			conn, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: dial}}
	err := func() error {
		req, err := http.NewRequest(http.MethodPost, node.URL()+"/v1/hooks/github", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", delivery)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			return fmt.Errorf("hook answered %s: %s", resp.Status, msg)
		}
		return nil
	}()
	if err != nil {
		b.Fatalf("push hook to %s: %v", node.Name, err)
	}
}
