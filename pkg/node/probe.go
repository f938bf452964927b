package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/plan"
)

// execer runs a command in a container; *apply.Containerd is one.
type execer interface {
	Exec(ctx context.Context, namespace, pod, container string, cmd []string, timeout time.Duration) (apply.ExecResult, error)
}

// ProbeTarget is the container instance a probe checks, and how to reach
// it.
type ProbeTarget struct {
	Namespace, Pod, Container string
	// Instance names the run of the container (see instanceID): results
	// of an earlier run never apply to a later one.
	Instance string
	PodIP    netip.Addr
	// NetNS is the path of the pod's network namespace; HTTP and TCP
	// probes connect from inside it, so that they reach the pod whatever
	// namespace the agent runs in. "" dials from the agent's own.
	NetNS string
	// Ports of the container, to resolve named probe ports.
	Ports []corev1.ContainerPort
	// StartedAt is when the instance started: a probe's initial delay
	// counts from then, so the probes of a container an agent adopts
	// (it ran before the agent started) run at once. The zero time means
	// now.
	StartedAt time.Time
}

func (t ProbeTarget) podKey() plan.Key { return plan.Key{Namespace: t.Namespace, Name: t.Pod} }

// maxProbeBody is how much of an HTTP probe's response is read, as
// kubelet.
const maxProbeBody = 10 << 10

// probeOnce runs the handler of p once against t. It returns nil when the
// probe succeeds, else why it failed, in kubelet's words where it has
// them.
func probeOnce(ctx context.Context, ex execer, p *corev1.Probe, t ProbeTarget) error {
	// The manifests' defaults set the timeout (1 s).
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	switch h := p.ProbeHandler; {
	case h.Exec != nil:
		res, err := ex.Exec(ctx, t.Namespace, t.Pod, t.Container, h.Exec.Command, timeout)
		if err != nil {
			return fmt.Errorf("exec %q: %w", h.Exec.Command, err)
		}
		if res.ExitCode != 0 {
			out := strings.TrimSpace(string(res.Output))
			if out != "" {
				return fmt.Errorf("command %q exited with %d: %s", h.Exec.Command, res.ExitCode, out)
			}
			return fmt.Errorf("command %q exited with %d", h.Exec.Command, res.ExitCode)
		}
		return nil
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, t.Ports)
		if err != nil {
			return err
		}
		host := h.TCPSocket.Host
		if host == "" {
			host = t.PodIP.String()
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		c, err := dialIn(ctx, t.NetNS, net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return c.Close()
	case h.HTTPGet != nil:
		return httpProbe(ctx, h.HTTPGet, t, timeout, "HTTP probe")
	}
	// gRPC probes are ignored (validation warns about them): no handler
	// gitorch runs means nothing can fail.
	return nil
}

// dialIn connects to addr from inside the network namespace netns.
func dialIn(ctx context.Context, netns, addr string) (net.Conn, error) {
	var d net.Dialer
	if netns == "" {
		return d.DialContext(ctx, "tcp", addr)
	}
	var conn net.Conn
	err := nsfile.Do(netns, func() error {
		// The socket is made on this thread, inside the namespace, and
		// stays there whichever thread uses it afterwards.
		c, err := d.DialContext(ctx, "tcp", addr)
		conn = c
		return err
	})
	return conn, err
}

// resolvePort turns a probe's port (number or container port name) into
// a number.
func resolvePort(p intstr.IntOrString, ports []corev1.ContainerPort) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal < 1 || p.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port %d", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	for _, cp := range ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}

// httpProbe GETs the handler's URL: a status from 200 to 399 is success.
// Redirects are followed to the same host only; one to another host
// counts as success, as kubelet does.
func httpProbe(ctx context.Context, h *corev1.HTTPGetAction, t ProbeTarget, timeout time.Duration, what string) error {
	port, err := resolvePort(h.Port, t.Ports)
	if err != nil {
		return err
	}
	host := h.Host
	if host == "" {
		host = t.PodIP.String()
	}
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	if pu, err := url.Parse(path); err == nil {
		u.Path, u.RawQuery = pu.Path, pu.RawQuery
	} else {
		u.Path = path
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialIn(ctx, t.NetNS, addr)
		},
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as kubelet: probes check liveness, not identity
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if req.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "gitorch-probe/1")
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s failed: %w", what, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return nil
	}
	msg := fmt.Sprintf("%s failed with statuscode: %d", what, resp.StatusCode)
	if b := strings.TrimSpace(string(body)); b != "" {
		msg += ": " + firstLine(b, 200)
	}
	return errors.New(msg)
}

func firstLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n]
	}
	return s
}
