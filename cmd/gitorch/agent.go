package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/proxy"
	"github.com/gitorch/gitorch/pkg/gossip"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/notify"
	"github.com/gitorch/gitorch/pkg/plan"
	"github.com/gitorch/gitorch/pkg/source"
)

// systemDataDir is where the agent run as root keeps its state unless
// --data-dir says otherwise.
const systemDataDir = "/var/lib/gitorch"

// agentDataDirUsage is the agent's --data-dir help.
const agentDataDirUsage = "directory for the agent's state: Git cache, pods, IPAM (default: " + systemDataDir +
	" as root, else gitorch under the user's state directory, $XDG_STATE_HOME or ~/.local/state)"

// agentDataDir is the agent's state directory without --data-dir: a
// daemon run as root (euid 0) keeps it in /var/lib/gitorch, as system
// daemons do; another user in the XDG state directory, $XDG_STATE_HOME
// (default ~/.local/state), under gitorch. Its state is not a cache:
// losing it loses the pods' IP addresses and the revision last run.
func agentDataDir(euid int, getenv func(string) string) (string, error) {
	if euid == 0 {
		return systemDataDir, nil
	}
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "gitorch"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", usageError(errors.New("no --data-dir given, and neither XDG_STATE_HOME nor HOME is set"))
	}
	return filepath.Join(home, ".local", "state", "gitorch"), nil
}

func (a *app) agentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run this node: follow a Git repository and run its pods",
		Long: `The agent is gitorch's daemon. It fetches --repo every --poll-interval,
validates each new revision (as 'gitorch validate' does) and, when it is
valid, places its pods and runs this node's share on containerd: init
containers in order, restarts by restartPolicy with CrashLoopBackOff
back-off, liveness, readiness and startup probes, graceful stops. An
invalid revision is refused: the last good one keeps running, and
'gitorch status' shows the refusal with its errors.

Pods survive the agent: on SIGTERM it stops without touching them, and a
new agent adopts the running containers without restarting them.

The agent serves its status and container logs on --api-address
(127.0.0.1 only unless an --api-token-file is given), which 'gitorch
status', 'gitorch logs' and 'gitorch events' read, with Prometheus
metrics on /metrics and /healthz, /readyz (docs/observability.md). With
--notify-url it POSTs a JSON message (signed with --notify-secret-file)
when a revision is applied or refused and when a workload's pods stop or
start being all ready. It needs root.

With --webhook-secret-file, a push reported by a Git host's webhook makes
the agent fetch at once, and every node with it (see docs/webhooks.md);
'gitorch sync' does the same from a shell or a CI job.

Nodes form a cluster by gossip (--join): every node places every pod over
the live members by the same rule, runs its share, and answers 'gitorch
status' for the whole cluster. A dead node's pods start on the others
after --node-dead-grace; a node that comes back gets pods again after
--rejoin-settle. Gossip is encrypted with the keys of --gossip-key-file
('gitorch gossip keygen' makes one); see docs/cluster.md. Without --join
and without a key, the node is a cluster of one that does not gossip.`,
		Example: `  # Run the pods of a repository's main branch
  gitorch agent --repo https://git.example.com/ops/deploy.git --ref main

  # A directory of the repository, fetched every 15 seconds, with a
  # containerd of its own
  gitorch agent --repo /srv/git/deploy.git --path prod --poll-interval 15s \
      --containerd-address /run/gitorch/containerd.sock

  # One node of a cluster: every node may name the same peers, itself
  # among them, and nodes may start in any order
  gitorch agent --repo https://git.example.com/ops/deploy.git \
      --node-name n1 --advertise-address 10.0.0.1 --pod-cidr 10.88.1.0/24 \
      --join 10.0.0.1,10.0.0.2,10.0.0.3 --gossip-key-file /etc/gitorch/gossip.key \
      --api-address 0.0.0.0:7480 --api-token-file /etc/gitorch/api.token \
      --node-labels zone=a,disk=ssd --reserved cpu=500m,memory=1Gi

  # Decrypt the repository's SOPS-encrypted Secrets with this node's age
  # identity ('gitorch secret keygen'; docs/secrets.md)
  gitorch agent --repo https://git.example.com/ops/deploy.git \
      --age-key-file /var/lib/gitorch/age.key
  # NodePorts from another range; Services left to another proxy on a
  # second machine (no nftables tables inet gitorch* there)
  gitorch agent --repo https://git.example.com/ops/deploy.git --service-node-port-range 20000-22767
  gitorch agent --repo https://git.example.com/ops/deploy.git --service-proxy=false

  # Tell a Slack channel of refused revisions and unhealthy workloads
  gitorch agent --repo https://git.example.com/ops/deploy.git \
      --notify-url https://hooks.slack.com/services/T000/B000/XXXX --notify-format slack

  # Fetch on every push: the Git host POSTs to
  # https://node1.example.com:8443/v1/hooks/github (or gitlab, gitea,
  # generic), signed with the secret; every node fetches (docs/webhooks.md)
  gitorch agent --repo https://github.com/example/deploy.git --ref main \
      --webhook-secret-file /etc/gitorch/webhook.secret --webhook-address :8443 \
      --tls-cert-file /etc/gitorch/tls.crt --tls-key-file /etc/gitorch/tls.key

  # Pods resolve <service>.<namespace>.svc.k8s.example through the node's
  # DNS on 10.96.0.10; other names go to the resolvers given
  gitorch agent --repo https://git.example.com/ops/deploy.git \
      --cluster-domain k8s.example --dns-upstream 192.0.2.53,192.0.2.54:5353

  # The same, from a config file (/etc/gitorch/gitorch.yaml):
  #   repo: https://git.example.com/ops/deploy.git
  #   pod-cidr: 10.88.0.0/24
  gitorch agent`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return a.runAgent(ctx)
		},
	}
	addSourceFlags(cmd, agentDataDirUsage)
	addContainerdFlags(cmd)
	f := cmd.Flags()
	f.Duration("poll-interval", time.Minute, "how often to fetch the repository")
	f.String("node-name", "", "this node's name (default: the host name)")
	f.String("pod-cidr", "10.88.0.0/16", "addresses for this node's pods; the bridge takes the first")
	f.String("bridge", "gitorch0", "name of the pods' bridge")
	f.String("service-cidr", plan.DefaultServiceCIDR.String(), "range ClusterIPs are allocated from (for the <SERVICE>_SERVICE_HOST variables)")
	f.Bool("cluster-dns", true, "serve the cluster DNS on the 10th address of --service-cidr (10.96.0.10), on the gitorch-dns link, and point pods' resolv.conf at it")
	f.String("cluster-domain", plan.DefaultClusterDomain, "the cluster's DNS domain: <service>.<namespace>.svc.<domain>")
	f.StringSlice("dns-upstream", nil, "resolvers (IP[:PORT],...) the cluster DNS forwards other names to (default: the nameservers of /etc/resolv.conf)")
	f.String("service-node-port-range", plan.DefaultNodePortRange.String(), "range of nodePorts: a Service's nodePort outside it gets no rule; one left out is allocated in it")
	f.Bool("service-proxy", true, "write the Service rules (nftables tables inet gitorch and inet gitorch-<n>, see docs/services.md); false leaves Services to another proxy")
	f.String("registry-config", "", "docker config.json holding registry credentials (default: /root/.docker/config.json when it exists)")
	f.StringSlice("plain-http-registry", nil, "registries (host or host:port) reached over plain HTTP instead of HTTPS")
	f.String("api-address", defaultAPIAddress, "address of the status and logs API")
	f.String("api-token-file", "", "file holding the bearer token the API requires (required when --api-address is not a loopback address)")
	f.String("containerd-root", apply.DefaultImageFS, "containerd's root directory: unused images are removed when its filesystem fills up")
	f.Int("image-gc-high-threshold", 85, "remove unused images, least recently used first, when the image filesystem is fuller than this percentage")
	f.Int("image-gc-low-threshold", 80, "... until it is below this percentage")
	f.String("log-level", "info", "debug, info, warn or error")
	f.String("advertise-address", "", "the address peers reach this node's gossip (and API, when --api-address binds all addresses) at (default: memberlist's choice of a private address)")
	f.Int("gossip-port", gossip.DefaultPort, "gossip port, TCP and UDP")
	f.StringSlice("join", nil, "peers to join, HOST[:PORT],...; may name this node itself; retried until one answers")
	f.String("cluster-name", gossip.DefaultClusterName, "the cluster's name: nodes of another cluster are never members")
	f.String("age-key-file", "", "age identity that decrypts the repository's encrypted Secrets; refused when its group or others can read it (default: "+ageKeyFileName+" in the data dir, when it exists; 'gitorch secret keygen')")
	f.String("gossip-key-file", "", "file of base64 gossip keys, one per line: the first encrypts, all decrypt ('gitorch gossip keygen')")
	f.Bool("gossip-insecure", false, "gossip without encryption (anyone reaching the port can forge membership)")
	f.String("gossip-profile", "lan", "gossip timing: lan (memberlist's LAN profile) or local (fast, for nodes on one machine)")
	f.StringArray("notify-url", nil, "URL to POST a JSON notification to on revisions applied or refused and workload health changes (repeatable)")
	f.String("notify-secret-file", "", "file holding the secret that signs notifications (X-Signature-256: sha256=HMAC of the body)")
	f.String("notify-format", notify.FormatJSON, "body of notifications: json, or slack (a Slack-compatible {\"text\": ...})")
	f.StringToString("node-labels", nil, "this node's labels, k=v,... (for nodeSelector and affinity)")
	f.StringToString("reserved", nil, "resources kept for the system, e.g. cpu=500m,memory=1Gi: pods get the machine's CPUs and memory less these")
	f.Duration("node-dead-grace", node.DefaultNodeDeadGrace, "how long a dead node keeps its pods before they start elsewhere")
	f.Duration("rejoin-settle", node.DefaultRejoinSettle, "how long a node that lost its pods must stay up before it gets pods again")
	f.Duration("fence-timeout", node.DefaultFence, "how long after a node's death and --node-dead-grace its StatefulSet pods wait (besides their grace period) before starting elsewhere")
	addWebhookFlags(f)
	return cmd
}

func (a *app) runAgent(ctx context.Context) error {
	c := a.cfg
	if c.GetString("repo") == "" {
		return usageError(errors.New("--repo is required (or repo: in the config file)"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.GetString("log-level"))); err != nil {
		return usageError(fmt.Errorf("--log-level: %w", err))
	}
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	podCIDR, err := netip.ParsePrefix(c.GetString("pod-cidr"))
	if err != nil {
		return usageError(fmt.Errorf("--pod-cidr: %w", err))
	}
	serviceCIDR, err := netip.ParsePrefix(c.GetString("service-cidr"))
	if err != nil {
		return usageError(fmt.Errorf("--service-cidr: %w", err))
	}
	nodePorts, err := plan.ParsePortRange(c.GetString("service-node-port-range"))
	if err != nil {
		return usageError(fmt.Errorf("--service-node-port-range: %w", err))
	}
	domain := strings.TrimSuffix(c.GetString("cluster-domain"), ".")
	if errs := validation.IsDNS1123Subdomain(domain); len(errs) > 0 {
		return usageError(fmt.Errorf("--cluster-domain %q: %s", c.GetString("cluster-domain"), errs[0]))
	}
	dnsAddr := plan.ClusterDNSAddr(serviceCIDR)
	if c.GetBool("cluster-dns") && !dnsAddr.IsValid() {
		return usageError(fmt.Errorf("--service-cidr %s has no 10th address for the cluster DNS: give a larger range or --cluster-dns=false", serviceCIDR))
	}
	for _, u := range c.GetStringSlice("dns-upstream") {
		if _, err := netip.ParseAddr(u); err != nil {
			if _, err := netip.ParseAddrPort(u); err != nil {
				return usageError(fmt.Errorf("--dns-upstream %q: want IP or IP:PORT", u))
			}
		}
	}
	poll := c.GetDuration("poll-interval")
	if poll <= 0 {
		return usageError(fmt.Errorf("--poll-interval %s: want a positive duration", poll))
	}
	if hi, lo := c.GetInt("image-gc-high-threshold"), c.GetInt("image-gc-low-threshold"); hi < 1 || hi > 100 || lo < 1 || lo > hi {
		return usageError(fmt.Errorf("--image-gc-low-threshold %d and --image-gc-high-threshold %d: want 1 ≤ low ≤ high ≤ 100", lo, hi))
	}
	apiAddr := c.GetString("api-address")
	token, err := secret(c.GetString("api-token-file"), c.GetString("api-token"))
	if err != nil {
		return usageError(fmt.Errorf("--api-token-file: %w", err))
	}
	if err := checkAPIExposure(apiAddr, token); err != nil {
		return usageError(err)
	}
	hookCfg, err := a.webhookConfig(log)
	if err != nil {
		return err
	}
	name := c.GetString("node-name")
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return usageError(fmt.Errorf("no --node-name and no host name: %w", err))
		}
		name = strings.ToLower(name)
	}
	labels, err := stringMap(c.Get("node-labels"))
	if err != nil {
		return usageError(fmt.Errorf("--node-labels: %w", err))
	}
	reserved, err := stringMap(c.Get("reserved"))
	if err != nil {
		return usageError(fmt.Errorf("--reserved: %w", err))
	}
	self, err := thisNode(name, labels, reserved)
	if err != nil {
		return usageError(err)
	}
	meta := node.MetaFor(self, advertisedAPI(apiAddr, c.GetString("advertise-address")), podCIDR)
	cluster, err := a.gossipConfig(name, meta, log)
	if err != nil {
		return err
	}
	var agent atomic.Pointer[node.Agent]
	var g *gossip.Gossip
	if cluster != nil {
		cluster.OnChange = func() {
			if ag := agent.Load(); ag != nil {
				ag.ClusterChanged()
			}
		}
		if g, err = gossip.New(*cluster); err != nil {
			return usageError(err)
		}
	}
	dataDir := c.GetString("data-dir")
	if dataDir == "" {
		if dataDir, err = agentDataDir(os.Geteuid(), os.Getenv); err != nil {
			return err
		}
	}
	unlock, err := node.LockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	ids, idPath, err := agentIdentities(c.GetString("age-key-file"), dataDir)
	if err != nil {
		return usageError(err)
	}
	if len(ids) == 0 {
		log.Info("no age identity: a revision with an encrypted Secret will be refused", "age-key-file", idPath)
	}
	regs := apply.Registries{PlainHTTP: c.GetStringSlice("plain-http-registry")}
	regFile := c.GetString("registry-config")
	if regFile == "" {
		if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, ".docker", "config.json"); fileExists(p) {
				regFile = p
			}
		}
	}
	if regFile != "" {
		if regs.Auths, err = apply.LoadDockerConfig(regFile); err != nil {
			return usageError(fmt.Errorf("--registry-config: %w", err))
		}
	}

	srcCfg, err := a.sourceConfig()
	if err != nil {
		return err
	}
	repo, err := source.Open(dataDir, srcCfg, log)
	if err != nil {
		return sourceError(err)
	}
	defer repo.Close()

	addr := c.GetString("containerd-address")
	cl, err := client.New(addr, client.WithTimeout(10*time.Second))
	if err != nil {
		return fmt.Errorf("connect to containerd at %s: %w", addr, err)
	}
	defer cl.Close()
	ipam, err := apply.OpenIPAM(filepath.Join(dataDir, "ipam.json"), podCIDR)
	if err != nil {
		return err
	}
	network, err := apply.NewBridgeNetwork(apply.BridgeConfig{Bridge: c.GetString("bridge"), IPAM: ipam})
	if err != nil {
		return usageError(err)
	}
	rt, err := apply.NewContainerd(apply.ContainerdConfig{
		Client:      cl,
		Namespace:   c.GetString("containerd-namespace"),
		Snapshotter: c.GetString("snapshotter"),
		DataDir:     dataDir,
		Network:     network,
		Registries:  regs,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	cfg := node.Config{
		Node:          self,
		Source:        repo,
		Ref:           srcCfg.Ref,
		Path:          srcCfg.Path,
		Runtime:       rt,
		DataDir:       dataDir,
		Identities:    ids,
		PollInterval:  poll,
		FetchTimeout:  c.GetDuration("fetch-timeout"),
		ServiceCIDR:   serviceCIDR,
		NodePortRange: nodePorts,
		ImageGC: apply.ImageGCPolicy{
			HighThresholdPercent: c.GetInt("image-gc-high-threshold"),
			LowThresholdPercent:  c.GetInt("image-gc-low-threshold"),
			Path:                 c.GetString("containerd-root"),
		},
		Membership: plan.MembershipPolicy{DeadGrace: c.GetDuration("node-dead-grace"), RejoinSettle: c.GetDuration("rejoin-settle")},
		Handoff:    plan.HandoffPolicy{Fence: c.GetDuration("fence-timeout")},
		Meta:       meta,
		PodNet:     apply.NewPodNet(apply.PodNetConfig{}),
		Logger:     log,
	}
	if g != nil {
		cfg.Cluster, cfg.ClusterName = g, c.GetString("cluster-name")
	}
	cfg.ClusterDomain = domain
	if c.GetBool("cluster-dns") {
		dnsCtx, stopDNS := context.WithCancel(ctx)
		nd, err := node.StartDNS(dnsCtx, node.DNSOptions{Addr: dnsAddr, Domain: domain, Upstreams: c.GetStringSlice("dns-upstream"), Logger: log})
		if err != nil {
			stopDNS()
			return err
		}
		defer func() {
			stopDNS()
			if err := <-nd.Done; err != nil {
				log.Warn("cluster DNS", "err", err)
			}
		}()
		cfg.DNS, cfg.HostResolv = nd.Server, nd.Host
		log.Info("cluster DNS", "address", dnsAddr, "domain", domain, "upstreams", nd.Server.Upstreams())
	}
	if c.GetBool("service-proxy") {
		px, err := proxy.New(proxy.Config{})
		if err != nil {
			return err
		}
		defer px.Close()
		cfg.Proxy = px
	}
	notifier, err := a.notifier(log)
	if err != nil {
		return err
	}
	if notifier != nil {
		cfg.Notifier = notifier
		go notifier.Run(ctx)
	}
	ag, err := node.New(cfg)
	if err != nil {
		return err
	}
	agent.Store(ag)
	if g != nil {
		if err := g.Start(ctx); err != nil {
			return fmt.Errorf("gossip: %w", err)
		}
		defer g.Shutdown()
	}

	ln, err := net.Listen("tcp", apiAddr)
	if err != nil {
		return fmt.Errorf("API: %w", err)
	}
	ctx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	opts := node.APIOptions{Token: token, RevisionFiles: ag.RevisionFiles, Events: ag, Metrics: ag.Metrics(), Ready: ag.Ready, Sync: ag.SyncNow}
	hooks, err := webhookReceiver(hookCfg, srcCfg.Ref, ag, log)
	if err != nil {
		return err
	}
	if hooks != nil {
		opts.Hooks = hooks
	}
	if _, err := a.serveWebhooks(ctx, hooks, log); err != nil {
		return err
	}
	if g != nil {
		opts.Leave = func(ctx context.Context) error {
			if err := ag.Leave(ctx); err != nil {
				return err
			}
			if err := g.Leave(5 * time.Second); err != nil {
				log.Warn("gossip leave", "err", err)
			}
			log.Info("left the cluster; stopping")
			stopAgent()
			return nil
		}
	}
	srv := &http.Server{
		Handler:           node.NewAPI(ag, rt, opts),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server", "err", err)
		}
	}()
	log.Info("agent started", "node", name, "repo", repo.URL(), "api", ln.Addr().String(), "data-dir", dataDir)
	err = ag.Run(ctx)
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	log.Info("agent stopped; pods keep running")
	return err
}

// thisNode describes the machine for placement: its labels (the
// well-known ones and --node-labels), its CPUs and memory less what
// --reserved keeps for the system (as kubelet's --system-reserved and
// Nomad's reserved), and 110 pods, as kubelet's default.
func thisNode(name string, labels, reserved map[string]string) (plan.Node, error) {
	n := plan.Node{
		Name:   name,
		Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH},
		Allocatable: plan.Resources{
			MilliCPU: int64(runtime.NumCPU()) * 1000,
			Pods:     110,
		},
	}
	for k, v := range labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return n, fmt.Errorf("--node-labels: %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return n, fmt.Errorf("--node-labels: %s=%q: %s", k, v, strings.Join(errs, "; "))
		}
		n.Labels[k] = v
	}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err == nil {
		n.Allocatable.Memory = int64(si.Totalram) * int64(si.Unit)
	}
	return reserve(n, reserved)
}

// stringMap reads a k=v,... setting: a map from a flag or the config
// file, a string from the environment (GITORCH_NODE_LABELS=zone=a,disk=ssd).
func stringMap(v any) (map[string]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case map[string]string:
		return v, nil
	case map[string]any:
		out := map[string]string{}
		for k, x := range v {
			out[k] = fmt.Sprint(x)
		}
		return out, nil
	case string:
		out := map[string]string{}
		for _, kv := range strings.Split(v, ",") {
			if kv = strings.TrimSpace(kv); kv == "" {
				continue
			}
			k, val, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("%q: want key=value", kv)
			}
			out[k] = val
		}
		return out, nil
	}
	return nil, fmt.Errorf("%v: want key=value,...", v)
}

// reserve takes --reserved (cpu=500m,memory=1Gi) off n's allocatable.
func reserve(n plan.Node, reserved map[string]string) (plan.Node, error) {
	for k, v := range reserved {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return n, fmt.Errorf("--reserved %s=%s: %w", k, v, err)
		}
		switch k {
		case "cpu":
			n.Allocatable.MilliCPU -= q.MilliValue()
		case "memory":
			n.Allocatable.Memory -= q.Value()
		default:
			return n, fmt.Errorf("--reserved %s: want cpu or memory", k)
		}
	}
	if n.Allocatable.MilliCPU <= 0 || n.Allocatable.Memory <= 0 {
		return n, fmt.Errorf("--reserved keeps everything: the machine has %d CPUs and %d bytes of memory, leaving %s for pods",
			runtime.NumCPU(), n.Allocatable.Memory+reservedMemory(reserved), n.Allocatable)
	}
	return n, nil
}

func reservedMemory(reserved map[string]string) int64 {
	q, err := resource.ParseQuantity(reserved["memory"])
	if err != nil {
		return 0
	}
	return q.Value()
}

// advertisedAPI is the API address peers reach: --api-address, with the
// advertise address for an address that binds all interfaces; none for a
// loopback API, which peers cannot reach.
func advertisedAPI(apiAddr, advertise string) string {
	host, port, err := net.SplitHostPort(apiAddr)
	if err != nil {
		return ""
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case host == "localhost" || err == nil && ip.IsLoopback():
		return ""
	case host == "" || err == nil && ip.IsUnspecified():
		if advertise == "" {
			return ""
		}
		return net.JoinHostPort(advertise, port)
	}
	return apiAddr
}

// gossipConfig is the gossip configuration of the flags; nil for a node
// with no --join and no key, which is a cluster of one.
func (a *app) gossipConfig(name string, meta gossip.Meta, log *slog.Logger) (*gossip.Config, error) {
	c := a.cfg
	join := c.GetStringSlice("join")
	keyFile, insecure := c.GetString("gossip-key-file"), c.GetBool("gossip-insecure")
	if keyFile == "" && !insecure {
		if len(join) > 0 {
			return nil, usageError(errors.New("--join needs --gossip-key-file (make a key with 'gitorch gossip keygen'), or --gossip-insecure to gossip unencrypted"))
		}
		log.Info("no --join and no --gossip-key-file: a cluster of one, not gossiping")
		return nil, nil
	}
	// The revision it runs joins the metadata later: check that it fits.
	withRevision := meta
	withRevision.Revision = strings.Repeat("0", 40)
	if err := gossip.CheckMeta(withRevision); err != nil {
		return nil, usageError(fmt.Errorf("--node-labels, --api-address: %w", err))
	}
	cfg := &gossip.Config{
		NodeName:      name,
		ClusterName:   c.GetString("cluster-name"),
		BindPort:      c.GetInt("gossip-port"),
		AdvertiseAddr: c.GetString("advertise-address"),
		Join:          join,
		Insecure:      insecure && keyFile == "",
		Meta:          meta,
		Logger:        log,
	}
	if keyFile != "" {
		keys, err := gossip.LoadKeyFile(keyFile)
		if err != nil {
			return nil, usageError(fmt.Errorf("--gossip-key-file: %w", err))
		}
		cfg.Keys = keys
	}
	switch p := c.GetString("gossip-profile"); p {
	case "lan":
		cfg.Timing = gossip.LANTiming()
	case "local":
		cfg.Timing = gossip.LocalTiming()
	default:
		return nil, usageError(fmt.Errorf("--gossip-profile %q: want lan or local", p))
	}
	return cfg, nil
}

// checkAPIExposure refuses to serve the API beyond loopback without a
// token: it shows secrets' effects, logs and the repository.
func checkAPIExposure(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--api-address %q: %w", addr, err)
	}
	if token != "" {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--api-address %s is not a loopback address: give --api-token-file too", addr)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// notifier is the Notifier of --notify-url, or nil without one.
func (a *app) notifier(log *slog.Logger) (*notify.Notifier, error) {
	c := a.cfg
	urls := c.GetStringSlice("notify-url")
	if len(urls) == 0 {
		return nil, nil
	}
	key, err := secret(c.GetString("notify-secret-file"), c.GetString("notify-secret"))
	if err != nil {
		return nil, usageError(fmt.Errorf("--notify-secret-file: %w", err))
	}
	n, err := notify.New(notify.Config{URLs: urls, Secret: []byte(key), Format: c.GetString("notify-format"), Logger: log})
	if err != nil {
		return nil, usageError(err)
	}
	return n, nil
}
