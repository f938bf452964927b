package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/apply/nsfile"
	"github.com/gitorch/gitorch/pkg/dns"
	"github.com/gitorch/gitorch/pkg/plan"
)

// DNSRecords takes the cluster's DNS records (a *dns.Server).
type DNSRecords interface {
	SetZone(plan.DNSZone)
}

// DNSOptions configure a node's cluster DNS server (StartDNS).
type DNSOptions struct {
	// Addr is the cluster DNS address: plan.ClusterDNSAddr of the
	// service range.
	Addr netip.Addr
	// Domain is the cluster domain (default plan.DefaultClusterDomain).
	Domain string
	// Upstreams are the resolvers other names go to; empty: the
	// nameservers of ResolvConf.
	Upstreams []string
	// ResolvConf is the node's resolver file (default /etc/resolv.conf).
	ResolvConf string
	// NetNS is the network namespace the link and the sockets are made in
	// ("" for gitorch's own; tests give theirs).
	NetNS  string
	Logger *slog.Logger
}

// NodeDNS is a running cluster DNS server.
type NodeDNS struct {
	Server *dns.Server
	// Host is the node's resolver configuration, for pods with dnsPolicy
	// Default.
	Host plan.ResolvConf
	// Done receives what Serve returned once ctx ended.
	Done <-chan error
}

// StartDNS puts o.Addr on the gitorch-dns link, listens on its port 53
// (UDP and TCP) and serves until ctx ends. The server answers from an
// empty zone until the agent gives it records (Config.DNS).
func StartDNS(ctx context.Context, o DNSOptions) (*NodeDNS, error) {
	if !o.Addr.IsValid() {
		return nil, fmt.Errorf("cluster DNS: no address (the service range has no 10th address)")
	}
	if o.ResolvConf == "" {
		o.ResolvConf = "/etc/resolv.conf"
	}
	host, err := apply.ReadResolvConf(o.ResolvConf)
	if err != nil && len(o.Upstreams) == 0 {
		return nil, fmt.Errorf("cluster DNS: the node's resolvers: %w (or give --dns-upstream)", err)
	}
	upstreams := o.Upstreams
	if len(upstreams) == 0 {
		upstreams = host.Nameservers
	}
	srv, err := dns.New(dns.Config{Domain: o.Domain, Upstreams: upstreams, Self: []netip.Addr{o.Addr}, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	if err := apply.EnsureDNSLink(o.NetNS, o.Addr); err != nil {
		return nil, fmt.Errorf("cluster DNS: %w", err)
	}
	var pc net.PacketConn
	var l net.Listener
	listen := func() (err error) {
		pc, l, err = dns.Listen(netip.AddrPortFrom(o.Addr, 53).String())
		return err
	}
	if o.NetNS != "" {
		err = nsfile.Do(o.NetNS, listen)
	} else {
		err = listen()
	}
	if err != nil {
		return nil, fmt.Errorf("cluster DNS: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, pc, l) }()
	return &NodeDNS{Server: srv, Host: host, Done: done}, nil
}

// podDNS is what the node's pods' resolv.conf are made from: nothing
// without a cluster DNS.
func (a *Agent) podDNS() plan.PodDNS {
	if a.cfg.DNS == nil {
		return plan.PodDNS{}
	}
	return plan.PodDNS{ClusterDNS: plan.ClusterDNSAddr(a.cfg.ServiceCIDR), Domain: a.cfg.ClusterDomain, Host: a.cfg.HostResolv}
}

// dnsChanged asks the DNS loop to compute the records again.
func (a *Agent) dnsChanged() {
	select {
	case a.dnsDirty <- struct{}{}:
	default:
	}
}

// dnsLoop keeps the DNS server's records in step with the revision, the
// members and the pods' statuses cluster-wide: every change asks for a
// new zone, computed whole (changes that come meanwhile make one more).
// Most changes (a pod's restart count, a pod no headless Service selects)
// change no record: the zone is made again only when the revision or the
// headless Services' endpoints changed.
func (a *Agent) dnsLoop(ctx context.Context) {
	if a.cfg.DNS == nil {
		return
	}
	var last dnsInputs
	for {
		in := a.dnsInputs(&last)
		if !last.same(in) {
			if last.sameObjects(in) {
				in.ips = last.ips
			} else {
				in.ips = plan.AllocateClusterIPs(in.services, a.cfg.ServiceCIDR)
			}
			a.cfg.DNS.SetZone(plan.ClusterDNS(in.services, in.ips, in.endpoints, a.cfg.ClusterDomain))
			last = in
		}
		select {
		case <-ctx.Done():
			return
		case <-a.dnsDirty:
		}
	}
}

// dnsInputs are what the zone is made from.
type dnsInputs struct {
	objects   []runtime.Object
	services  []*corev1.Service
	ips       []plan.ServiceIP // set by dnsLoop
	endpoints map[plan.Key][]plan.DNSEndpoint
	// index reads the revision's Services for their endpoints, once.
	index *plan.EndpointIndex
}

// sameObjects says both come from the same revision.
func (d dnsInputs) sameObjects(o dnsInputs) bool {
	return len(d.objects) > 0 && sameObjects(d.objects, o.objects)
}

func (d dnsInputs) same(o dnsInputs) bool {
	return d.sameObjects(o) && reflect.DeepEqual(d.endpoints, o.endpoints)
}

// dnsInputs gathers the inputs of plan.ClusterDNS: the Services of the
// running revision, and for headless ones their endpoints (plan.Endpoints
// of the pods of the cluster: this node's from the agent, the others' from
// gossip), with the endpoint index of last when the revision is the same.
func (a *Agent) dnsInputs(last *dnsInputs) dnsInputs {
	a.mu.Lock()
	objects := a.objects
	a.mu.Unlock()
	in := dnsInputs{objects: objects}
	headless := false
	for _, o := range objects {
		if s, ok := o.(*corev1.Service); ok {
			in.services = append(in.services, s)
			headless = headless || s.Spec.ClusterIP == corev1.ClusterIPNone
		}
	}
	if headless {
		in.index = last.index
		if !last.sameObjects(in) || in.index == nil {
			in.index = plan.NewEndpointIndex(objects)
		}
		in.endpoints = plan.HeadlessDNSEndpoints(objects, in.index.Endpoints(a.clusterPods()))
	}
	return in
}

// sameNodeNames says whether two lists of nodes, sorted by name, name the
// same nodes.
func sameNodeNames(a, b []plan.Node) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}
