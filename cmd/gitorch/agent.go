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
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/node"
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
status' and 'gitorch logs' read. It needs root.

This release runs a single node: every pod is placed on it.`,
		Example: `  # Run the pods of a repository's main branch
  gitorch agent --repo https://git.example.com/ops/deploy.git --ref main

  # A directory of the repository, fetched every 15 seconds, with a
  # containerd of its own
  gitorch agent --repo /srv/git/deploy.git --path prod --poll-interval 15s \
      --containerd-address /run/gitorch/containerd.sock

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
	f.String("registry-config", "", "docker config.json holding registry credentials (default: /root/.docker/config.json when it exists)")
	f.StringSlice("plain-http-registry", nil, "registries (host or host:port) reached over plain HTTP instead of HTTPS")
	f.String("api-address", defaultAPIAddress, "address of the status and logs API")
	f.String("api-token-file", "", "file holding the bearer token the API requires (required when --api-address is not a loopback address)")
	f.String("containerd-root", apply.DefaultImageFS, "containerd's root directory: unused images are removed when its filesystem fills up")
	f.Int("image-gc-high-threshold", 85, "remove unused images, least recently used first, when the image filesystem is fuller than this percentage")
	f.Int("image-gc-low-threshold", 80, "... until it is below this percentage")
	f.String("log-level", "info", "debug, info, warn or error")
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
	name := c.GetString("node-name")
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return usageError(fmt.Errorf("no --node-name and no host name: %w", err))
		}
		name = strings.ToLower(name)
	}
	dataDir := c.GetString("data-dir")
	if dataDir == "" {
		if dataDir, err = agentDataDir(os.Geteuid(), os.Getenv); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
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
	ag, err := node.New(node.Config{
		Node:         thisNode(name),
		Source:       repo,
		Ref:          srcCfg.Ref,
		Path:         srcCfg.Path,
		Runtime:      rt,
		DataDir:      dataDir,
		PollInterval: poll,
		FetchTimeout: c.GetDuration("fetch-timeout"),
		ServiceCIDR:  serviceCIDR,
		ImageGC: apply.ImageGCPolicy{
			HighThresholdPercent: c.GetInt("image-gc-high-threshold"),
			LowThresholdPercent:  c.GetInt("image-gc-low-threshold"),
			Path:                 c.GetString("containerd-root"),
		},
		Logger: log,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", apiAddr)
	if err != nil {
		return fmt.Errorf("API: %w", err)
	}
	srv := &http.Server{
		Handler:           node.NewAPI(ag, rt, node.APIOptions{Token: token}),
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

// thisNode describes the machine for placement: all its CPUs and memory,
// and 110 pods, as kubelet's default.
func thisNode(name string) plan.Node {
	n := plan.Node{
		Name:   name,
		Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH},
		Allocatable: plan.Resources{
			MilliCPU: int64(runtime.NumCPU()) * 1000,
			Pods:     110,
		},
	}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err == nil {
		n.Allocatable.Memory = int64(si.Totalram) * int64(si.Unit)
	}
	return n
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
