// Package dns is the cluster DNS server every node runs: it answers for
// the cluster domain from the records pkg/plan computes (plan.ClusterDNS),
// authoritatively, and forwards every other name to the node's upstream
// resolvers. The records are swapped whole and atomically (SetZone), so a
// query sees one version of the cluster or the next, never a mix.
//
// It decides nothing about what the records are, and it does not make the
// address it listens on (pkg/apply does).
package dns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/gitorch/gitorch/pkg/plan"
)

// DefaultTTL is the TTL of the cluster's records and of its negative
// answers, as CoreDNS's kubernetes plugin gives them: short, since pods
// come and go.
const DefaultTTL = 5

// Config configures a Server.
type Config struct {
	// Domain is the cluster domain (default plan.DefaultClusterDomain).
	Domain string
	// Upstreams are the resolvers ("host:port", or a host for port 53)
	// other names are forwarded to; none makes them SERVFAIL.
	Upstreams []string
	// Self are the addresses the server answers on: an upstream among
	// them is dropped, so that the server never forwards to itself.
	Self []netip.Addr
	// TTL of the answers (default DefaultTTL).
	TTL uint32
	// Timeout of one forwarded query to one upstream (default 2 s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Server answers DNS queries. It is an mdns.Handler; Serve runs it on a
// UDP and a TCP socket.
type Server struct {
	cfg       Config
	log       *slog.Logger
	origin    string // the domain, fully qualified, lower case
	upstreams []string
	zone      atomic.Pointer[zone]
	serial    atomic.Uint32
}

// New returns a server for cfg that answers from an empty zone until
// SetZone.
func New(cfg Config) (*Server, error) {
	if cfg.Domain == "" {
		cfg.Domain = plan.DefaultClusterDomain
	}
	if _, ok := mdns.IsDomainName(cfg.Domain); !ok {
		return nil, fmt.Errorf("cluster domain %q is not a domain name", cfg.Domain)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, origin: mdns.CanonicalName(cfg.Domain)}
	for _, u := range cfg.Upstreams {
		hp, err := upstreamAddr(u)
		if err != nil {
			return nil, err
		}
		if ap, err := netip.ParseAddrPort(hp); err == nil && isSelf(ap.Addr(), cfg.Self) {
			log.Warn("upstream resolver is this server; left out", "upstream", hp)
			continue
		}
		s.upstreams = append(s.upstreams, hp)
	}
	s.SetZone(plan.DNSZone{Domain: strings.TrimSuffix(s.origin, ".")})
	return s, nil
}

func isSelf(a netip.Addr, self []netip.Addr) bool {
	for _, s := range self {
		if s.Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

// upstreamAddr is u as host:port.
func upstreamAddr(u string) (string, error) {
	if a, err := netip.ParseAddr(strings.Trim(u, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	if _, err := netip.ParseAddrPort(u); err == nil {
		return u, nil
	}
	return "", fmt.Errorf("upstream resolver %q: not an address or address:port", u)
}

// Upstreams are the resolvers the server forwards to.
func (s *Server) Upstreams() []string { return append([]string(nil), s.upstreams...) }

// SetZone makes z the records answered from now on. Names outside the
// server's domain are ignored.
func (s *Server) SetZone(z plan.DNSZone) {
	s.zone.Store(s.build(z, s.serial.Add(1)))
}

// zone is one version of the records, ready to answer from.
type zone struct {
	// names maps a fully qualified lower-case name to its records; a
	// name with none (an empty non-terminal, a headless Service without
	// pods) exists all the same.
	names map[string]*rrset
	soa   *mdns.SOA
	ns    *mdns.NS
}

type rrset struct {
	a, aaaa, srv []mdns.RR
	cname        *mdns.CNAME
}

func (s *Server) build(z plan.DNSZone, serial uint32) *zone {
	ttl := s.cfg.TTL
	hdr := func(name string, t uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
	}
	out := &zone{names: map[string]*rrset{}}
	out.soa = &mdns.SOA{Hdr: hdr(s.origin, mdns.TypeSOA), Ns: "ns.dns." + s.origin, Mbox: "hostmaster." + s.origin,
		Serial: serial, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: ttl}
	out.ns = &mdns.NS{Hdr: hdr(s.origin, mdns.TypeNS), Ns: "ns.dns." + s.origin}
	exist := func(name string) *rrset {
		set := out.names[name]
		if set == nil {
			set = &rrset{}
			out.names[name] = set
			// Every ancestor up to the origin exists (RFC 8020).
			for off, end := 0, false; !end; {
				off, end = mdns.NextLabel(name, off)
				parent := name[off:]
				if end || !s.inZone(parent) {
					break
				}
				if out.names[parent] != nil {
					break
				}
				out.names[parent] = &rrset{}
			}
		}
		return set
	}
	exist(s.origin)
	nsSet := exist("ns.dns." + s.origin)
	for _, a := range s.cfg.Self {
		nsSet.add(hdr, "ns.dns."+s.origin, a)
	}
	for _, n := range z.Names {
		name := mdns.CanonicalName(n.Name)
		if !s.inZone(name) {
			continue
		}
		set := exist(name)
		for _, a := range n.A {
			set.add(hdr, name, a)
		}
		for _, a := range n.AAAA {
			set.add(hdr, name, a)
		}
		if n.CNAME != "" {
			set.cname = &mdns.CNAME{Hdr: hdr(name, mdns.TypeCNAME), Target: mdns.CanonicalName(n.CNAME)}
		}
		for _, r := range n.SRV {
			set.srv = append(set.srv, &mdns.SRV{Hdr: hdr(name, mdns.TypeSRV), Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: mdns.CanonicalName(r.Target)})
		}
	}
	return out
}

// inZone says whether name (canonical: lower case, fully qualified) is
// the cluster domain or below it.
func (s *Server) inZone(name string) bool {
	return name == s.origin || strings.HasSuffix(name, "."+s.origin) && len(name) > len(s.origin)+1
}

func (set *rrset) add(hdr func(string, uint16) mdns.RR_Header, name string, a netip.Addr) {
	a = a.Unmap()
	if a.Is4() {
		set.a = append(set.a, &mdns.A{Hdr: hdr(name, mdns.TypeA), A: net.IP(a.AsSlice())})
	} else if a.Is6() {
		set.aaaa = append(set.aaaa, &mdns.AAAA{Hdr: hdr(name, mdns.TypeAAAA), AAAA: net.IP(a.AsSlice())})
	}
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	resp := s.Answer(context.Background(), req, isTCP(w))
	if resp == nil {
		return
	}
	if !isTCP(w) {
		size := mdns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = max(int(o.UDPSize()), mdns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("dns reply", "err", err)
	}
}

func isTCP(w mdns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

// Answer is the reply to req: from the zone for the cluster domain, from
// an upstream for other names. tcp says the query came over TCP (and is
// forwarded so). It returns nil for a message that gets no reply (a
// response).
func (s *Server) Answer(ctx context.Context, req *mdns.Msg, tcp bool) *mdns.Msg {
	if req.Response {
		return nil
	}
	resp := new(mdns.Msg)
	switch {
	case req.Opcode != mdns.OpcodeQuery:
		return resp.SetRcode(req, mdns.RcodeNotImplemented)
	case len(req.Question) != 1:
		return resp.SetRcodeFormatError(req)
	}
	q := req.Question[0]
	name := mdns.CanonicalName(q.Name)
	if _, ok := mdns.IsDomainName(q.Name); !ok {
		return resp.SetRcodeFormatError(req)
	}
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		return resp.SetRcode(req, mdns.RcodeRefused)
	}
	if !s.inZone(name) {
		return s.forward(ctx, req, tcp)
	}
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	if o := req.IsEdns0(); o != nil {
		resp.SetEdns0(mdns.DefaultMsgSize, false)
	}
	switch q.Qtype {
	case mdns.TypeAXFR, mdns.TypeIXFR:
		return resp.SetRcode(req, mdns.RcodeRefused)
	}
	z := s.zone.Load()
	// Chase CNAMEs inside the zone; a chain that leaves it is resolved
	// upstream, as a recursive resolver would, for the stub resolvers of
	// pods that do not chase CNAMEs themselves.
	for hops := 0; ; hops++ {
		set := z.names[name]
		if set == nil {
			if hops == 0 {
				resp.Rcode = mdns.RcodeNameError
			}
			resp.Ns = append(resp.Ns, z.soa)
			return resp
		}
		if set.cname != nil && q.Qtype != mdns.TypeCNAME {
			resp.Answer = append(resp.Answer, rename(set.cname, q.Name, hops))
			target := set.cname.Target
			if hops >= 8 {
				return resp
			}
			if s.inZone(target) {
				name = target
				continue
			}
			up := new(mdns.Msg)
			up.SetQuestion(target, q.Qtype)
			up.RecursionDesired = true
			if r := s.forward(ctx, up, tcp); r != nil && r.Rcode == mdns.RcodeSuccess {
				resp.Answer = append(resp.Answer, r.Answer...)
			}
			return resp
		}
		var rrs []mdns.RR
		switch q.Qtype {
		case mdns.TypeA:
			rrs = set.a
		case mdns.TypeAAAA:
			rrs = set.aaaa
		case mdns.TypeSRV:
			rrs = set.srv
		case mdns.TypeCNAME:
			if set.cname != nil {
				rrs = []mdns.RR{set.cname}
			}
		case mdns.TypeSOA:
			if name == s.origin {
				rrs = []mdns.RR{z.soa}
			}
		case mdns.TypeNS:
			if name == s.origin {
				rrs = []mdns.RR{z.ns}
			}
		case mdns.TypeANY:
			rrs = append(append(append([]mdns.RR(nil), set.a...), set.aaaa...), set.srv...)
			if set.cname != nil {
				rrs = append(rrs, set.cname)
			}
		}
		for _, rr := range rrs {
			resp.Answer = append(resp.Answer, rename(rr, q.Name, hops))
		}
		if q.Qtype == mdns.TypeSRV {
			// The targets' addresses, as CoreDNS adds them.
			for _, rr := range set.srv {
				if t := z.names[rr.(*mdns.SRV).Target]; t != nil {
					resp.Extra = append(resp.Extra, t.a...)
					resp.Extra = append(resp.Extra, t.aaaa...)
				}
			}
		}
		if len(resp.Answer) == 0 {
			resp.Ns = append(resp.Ns, z.soa) // NODATA
		}
		return resp
	}
}

// rename gives rr the owner name the question used (its case), for the
// first link of a chain.
func rename(rr mdns.RR, qname string, hops int) mdns.RR {
	if hops > 0 {
		return rr
	}
	c := mdns.Copy(rr)
	c.Header().Name = qname
	return c
}

// forward asks the upstreams in turn and returns the first answer, or
// SERVFAIL.
func (s *Server) forward(ctx context.Context, req *mdns.Msg, tcp bool) *mdns.Msg {
	network := "udp"
	if tcp {
		network = "tcp"
	}
	var lastErr error
	for _, u := range s.upstreams {
		c := &mdns.Client{Net: network, Timeout: s.cfg.Timeout, UDPSize: mdns.DefaultMsgSize}
		r, _, err := c.ExchangeContext(ctx, req, u)
		if err == nil && r.Truncated && network == "udp" {
			c.Net = "tcp"
			r, _, err = c.ExchangeContext(ctx, req, u)
		}
		if err == nil {
			r.Id = req.Id
			return r
		}
		lastErr = err
	}
	if lastErr != nil {
		s.log.Debug("forward", "name", req.Question[0].Name, "err", lastErr)
	}
	return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
}

// Listen opens the UDP and TCP sockets of addr ("host:port") for Serve.
// With port 0 both get the same free port (tried up to 10 times, since
// a port free for UDP may be taken for TCP).
func Listen(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if port != "0" || attempt == 9 {
			return nil, nil, err
		}
	}
}

// Serve answers on pc (UDP) and l (TCP) until ctx ends, then closes them.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, l net.Listener) error {
	var started sync.WaitGroup
	started.Add(2)
	udpUp, tcpUp := sync.OnceFunc(started.Done), sync.OnceFunc(started.Done)
	udp := &mdns.Server{PacketConn: pc, Handler: s, ReadTimeout: 2 * time.Second, NotifyStartedFunc: udpUp}
	tcp := &mdns.Server{Listener: l, Handler: s, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		MaxTCPQueries: 128, IdleTimeout: func() time.Duration { return 8 * time.Second }, NotifyStartedFunc: tcpUp}
	errc := make(chan error, 2)
	go func() { errc <- udp.ActivateAndServe(); udpUp() }()
	go func() { errc <- tcp.ActivateAndServe(); tcpUp() }()
	ready := make(chan struct{})
	go func() { started.Wait(); close(ready) }()
	pending := 2
	var err error
	// Both servers start (or one fails) before either is shut down: a
	// server shut down before it started would serve on.
	select {
	case <-ready:
		select {
		case <-ctx.Done():
		case err = <-errc:
			pending--
		}
	case err = <-errc:
		pending--
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range []*mdns.Server{udp, tcp} {
		srv.ShutdownContext(sctx) // "not started" for one that failed
	}
	pc.Close()
	l.Close()
	for ; pending > 0; pending-- {
		if e := <-errc; e != nil && err == nil && ctx.Err() == nil {
			err = e
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// HostUpstreams are the nameservers of the resolv.conf file at path (the
// node's, /etc/resolv.conf), as host:port.
func HostUpstreams(path string) ([]string, error) {
	cfg, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range cfg.Servers {
		out = append(out, net.JoinHostPort(s, cfg.Port))
	}
	return out, nil
}
