package dns_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/gitorch/gitorch/pkg/dns"
	"github.com/gitorch/gitorch/pkg/plan"
)

// testZone is a small cluster: a ClusterIP Service with named ports, a
// headless one with StatefulSet pods, one with no Ready pod, an
// ExternalName to a name the upstream knows, and one to a name inside the
// cluster.
func testZone() plan.DNSZone {
	a := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, netip.MustParseAddr(x))
		}
		return out
	}
	return plan.DNSZone{Domain: "cluster.local", Names: []plan.DNSName{
		{Name: "_http._tcp.web.default.svc.cluster.local.", SRV: []plan.DNSSRV{{Weight: 100, Port: 80, Target: "web.default.svc.cluster.local."}}},
		{Name: "_redis._tcp.kv.default.svc.cluster.local.", SRV: []plan.DNSSRV{
			{Weight: 50, Port: 6379, Target: "kv-0.kv.default.svc.cluster.local."},
			{Weight: 50, Port: 6379, Target: "kv-1.kv.default.svc.cluster.local."},
		}},
		{Name: "alias.default.svc.cluster.local.", CNAME: "web.default.svc.cluster.local."},
		{Name: "kv-0.kv.default.svc.cluster.local.", A: a("10.244.0.2")},
		{Name: "kv-1.kv.default.svc.cluster.local.", A: a("10.244.1.3")},
		{Name: "kv.default.svc.cluster.local.", A: a("10.244.0.2", "10.244.1.3")},
		{Name: "nobody.default.svc.cluster.local."},
		{Name: "search.default.svc.cluster.local.", CNAME: "www.example.com."},
		{Name: "v6.default.svc.cluster.local.", AAAA: a("fd00::7")},
		{Name: "web.default.svc.cluster.local.", A: a("10.96.0.1")},
	}}
}

// upstream runs a resolver on 127.0.0.1 that knows www.example.com and
// example.org, and counts the queries it gets.
type upstream struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Question[0].Name)
		u.mu.Unlock()
		m := new(mdns.Msg).SetReply(r)
		m.RecursionAvailable = true
		switch strings.ToLower(r.Question[0].Name) {
		case "www.example.com.":
			if r.Question[0].Qtype == mdns.TypeA {
				rr, _ := mdns.NewRR("www.example.com. 300 IN A 192.0.2.80")
				m.Answer = append(m.Answer, rr)
			}
		case "example.org.":
			if r.Question[0].Qtype == mdns.TypeTXT {
				rr, _ := mdns.NewRR(`example.org. 300 IN TXT "from upstream"`)
				m.Answer = append(m.Answer, rr)
			}
		default:
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	pc, l, err := dns.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the shutdowns: cleanups run last first
	started := make(chan struct{}, 2)
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		wg.Go(func() { srv.ActivateAndServe() })
		t.Cleanup(func() { srv.Shutdown() })
	}
	<-started
	<-started
	return u
}

func (u *upstream) queries() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// serve runs a server for cfg on 127.0.0.1 and returns it and its address.
func serve(t *testing.T, cfg dns.Config) (*dns.Server, string) {
	t.Helper()
	s, err := dns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc, l, err := dns.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, pc.LocalAddr().String()
}

func query(t *testing.T, addr, network, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg).SetQuestion(name, qtype)
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, mdns.TypeToString[qtype], network, err)
	}
	return r
}

// rrs is the answer section as sorted text without TTLs.
func rrs(section []mdns.RR) []string {
	var out []string
	for _, rr := range section {
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(append(f[:1], f[2:]...), " "))
	}
	sort.Strings(out)
	return out
}

func TestAnswers(t *testing.T) {
	up := startUpstream(t)
	s, addr := serve(t, dns.Config{Upstreams: []string{up.addr}})
	s.SetZone(testZone())
	for _, c := range []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		aa     bool
		answer []string
		extra  []string
		soa    bool // the SOA in the authority section
	}{
		{name: "ClusterIP", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeA, aa: true,
			answer: []string{"web.default.svc.cluster.local. IN A 10.96.0.1"}},
		{name: "names are case-insensitive, the answer keeps the question's case", qname: "WEB.Default.svc.Cluster.Local.", qtype: mdns.TypeA, aa: true,
			answer: []string{"WEB.Default.svc.Cluster.Local. IN A 10.96.0.1"}},
		{name: "AAAA of an IPv6 ClusterIP", qname: "v6.default.svc.cluster.local.", qtype: mdns.TypeAAAA, aa: true,
			answer: []string{"v6.default.svc.cluster.local. IN AAAA fd00::7"}},
		{name: "AAAA of an IPv4 Service is NODATA", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeAAAA, aa: true, soa: true},
		{name: "a Service that does not exist is NXDOMAIN", qname: "nope.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true, soa: true},
		{name: "below an existing name, NXDOMAIN", qname: "x.web.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true, soa: true},
		{name: "a namespace is an empty non-terminal: NODATA", qname: "default.svc.cluster.local.", qtype: mdns.TypeA, aa: true, soa: true},
		{name: "so is _tcp of a Service", qname: "_tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV, aa: true, soa: true},
		{name: "a headless Service with no Ready pod: NODATA", qname: "nobody.default.svc.cluster.local.", qtype: mdns.TypeA, aa: true, soa: true},
		{name: "headless: the pods' addresses", qname: "kv.default.svc.cluster.local.", qtype: mdns.TypeA, aa: true,
			answer: []string{"kv.default.svc.cluster.local. IN A 10.244.0.2", "kv.default.svc.cluster.local. IN A 10.244.1.3"}},
		{name: "a StatefulSet pod", qname: "kv-1.kv.default.svc.cluster.local.", qtype: mdns.TypeA, aa: true,
			answer: []string{"kv-1.kv.default.svc.cluster.local. IN A 10.244.1.3"}},
		{name: "SRV of a named port", qname: "_http._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV, aa: true,
			answer: []string{"_http._tcp.web.default.svc.cluster.local. IN SRV 0 100 80 web.default.svc.cluster.local."},
			extra:  []string{"web.default.svc.cluster.local. IN A 10.96.0.1"}},
		{name: "SRV of a headless Service: one per pod, with the pods' addresses", qname: "_redis._tcp.kv.default.svc.cluster.local.", qtype: mdns.TypeSRV, aa: true,
			answer: []string{
				"_redis._tcp.kv.default.svc.cluster.local. IN SRV 0 50 6379 kv-0.kv.default.svc.cluster.local.",
				"_redis._tcp.kv.default.svc.cluster.local. IN SRV 0 50 6379 kv-1.kv.default.svc.cluster.local.",
			},
			extra: []string{"kv-0.kv.default.svc.cluster.local. IN A 10.244.0.2", "kv-1.kv.default.svc.cluster.local. IN A 10.244.1.3"}},
		{name: "ExternalName: the CNAME, and its target resolved upstream", qname: "search.default.svc.cluster.local.", qtype: mdns.TypeA, aa: true,
			answer: []string{"search.default.svc.cluster.local. IN CNAME www.example.com.", "www.example.com. IN A 192.0.2.80"}},
		{name: "ExternalName asked for its CNAME", qname: "search.default.svc.cluster.local.", qtype: mdns.TypeCNAME, aa: true,
			answer: []string{"search.default.svc.cluster.local. IN CNAME www.example.com."}},
		{name: "a CNAME inside the cluster is followed", qname: "alias.default.svc.cluster.local.", qtype: mdns.TypeA, aa: true,
			answer: []string{"alias.default.svc.cluster.local. IN CNAME web.default.svc.cluster.local.", "web.default.svc.cluster.local. IN A 10.96.0.1"}},
		{name: "the domain's SOA", qname: "cluster.local.", qtype: mdns.TypeSOA, aa: true,
			answer: []string{"cluster.local. IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 2 7200 1800 86400 5"}},
		{name: "other names go upstream", qname: "example.org.", qtype: mdns.TypeTXT,
			answer: []string{`example.org. IN TXT "from upstream"`}},
		{name: "an upstream NXDOMAIN is passed on", qname: "nowhere.example.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "a name that only ends like the domain is not in it", qname: "notcluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(network+"/"+c.name, func(t *testing.T) {
				r := query(t, addr, network, c.qname, c.qtype)
				if r.Rcode != c.rcode || r.Authoritative != c.aa {
					t.Errorf("rcode %s aa %v, want %s aa %v", mdns.RcodeToString[r.Rcode], r.Authoritative, mdns.RcodeToString[c.rcode], c.aa)
				}
				if got := rrs(r.Answer); !slices.Equal(got, c.answer) {
					t.Errorf("answer\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.answer, "\n"))
				}
				if got := rrs(r.Extra); !slices.Equal(got, c.extra) {
					t.Errorf("extra %q, want %q", got, c.extra)
				}
				if c.soa != (len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == mdns.TypeSOA) {
					t.Errorf("authority %v, want the SOA: %v", r.Ns, c.soa)
				}
				for _, rr := range r.Answer {
					if strings.HasSuffix(strings.ToLower(rr.Header().Name), "cluster.local.") && rr.Header().Ttl != dns.DefaultTTL {
						t.Errorf("TTL %d, want %d: %s", rr.Header().Ttl, dns.DefaultTTL, rr)
					}
				}
			})
		}
	}
	for _, q := range up.queries() {
		if mdns.IsSubDomain("cluster.local.", mdns.CanonicalName(q)) {
			t.Errorf("a cluster name was forwarded: %s", q)
		}
	}
}

// SetZone replaces every record at once.
func TestSetZoneSwaps(t *testing.T) {
	s, addr := serve(t, dns.Config{})
	if r := query(t, addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA); r.Rcode != mdns.RcodeNameError {
		t.Fatalf("before any zone: %s", mdns.RcodeToString[r.Rcode])
	}
	s.SetZone(testZone())
	if r := query(t, addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("after SetZone: %v", r)
	}
	z := testZone()
	z.Names = slices.DeleteFunc(z.Names, func(n plan.DNSName) bool { return strings.Contains(n.Name, "web.") })
	s.SetZone(z)
	if r := query(t, addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA); r.Rcode != mdns.RcodeNameError {
		t.Fatalf("a removed Service still answers: %v", r)
	}
}

// Concurrent queries during swaps see one zone or the other, never a
// torn one (go test -race checks the rest).
func TestSetZoneConcurrent(t *testing.T) {
	s, err := dns.New(dns.Config{})
	if err != nil {
		t.Fatal(err)
	}
	zones := []plan.DNSZone{testZone(), {Domain: "cluster.local", Names: []plan.DNSName{
		{Name: "kv.default.svc.cluster.local.", A: []netip.Addr{netip.MustParseAddr("10.1.1.1")}},
	}}}
	s.SetZone(zones[0])
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			s.SetZone(zones[i%2])
		}
	})
	for range 200 {
		r := s.Answer(context.Background(), new(mdns.Msg).SetQuestion("kv.default.svc.cluster.local.", mdns.TypeA), false)
		if n := len(r.Answer); n != 1 && n != 2 {
			t.Fatalf("%d answers", n)
		}
	}
	wg.Wait()
}

// A headless Service with many pods does not fit 512 bytes: over UDP the
// reply is truncated (TC), over TCP it is whole.
func TestTruncation(t *testing.T) {
	s, addr := serve(t, dns.Config{})
	var many []netip.Addr
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{10, 244, 0, byte(i + 1)}))
	}
	s.SetZone(plan.DNSZone{Domain: "cluster.local", Names: []plan.DNSName{{Name: "big.default.svc.cluster.local.", A: many}}})
	r := query(t, addr, "udp", "big.default.svc.cluster.local.", mdns.TypeA)
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Errorf("UDP: truncated %v with %d answers", r.Truncated, len(r.Answer))
	}
	r = query(t, addr, "tcp", "big.default.svc.cluster.local.", mdns.TypeA)
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("TCP: truncated %v with %d answers", r.Truncated, len(r.Answer))
	}
}

func TestForwarding(t *testing.T) {
	t.Run("an upstream that does not answer is skipped", func(t *testing.T) {
		up := startUpstream(t)
		dead, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing
		if err != nil {
			t.Fatal(err)
		}
		defer dead.Close()
		_, addr := serve(t, dns.Config{Upstreams: []string{dead.LocalAddr().String(), up.addr}, Timeout: 200 * time.Millisecond})
		if r := query(t, addr, "udp", "www.example.com.", mdns.TypeA); len(r.Answer) != 1 {
			t.Errorf("got %v", r)
		}
	})
	t.Run("no upstream: SERVFAIL", func(t *testing.T) {
		_, addr := serve(t, dns.Config{})
		if r := query(t, addr, "udp", "www.example.com.", mdns.TypeA); r.Rcode != mdns.RcodeServerFailure {
			t.Errorf("got %s", mdns.RcodeToString[r.Rcode])
		}
	})
	t.Run("the server's own address is never an upstream", func(t *testing.T) {
		s, err := dns.New(dns.Config{Upstreams: []string{"10.96.0.10", "192.0.2.53", "[fd00::1]:5353"}, Self: []netip.Addr{netip.MustParseAddr("10.96.0.10")}})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Upstreams(); !slices.Equal(got, []string{"192.0.2.53:53", "[fd00::1]:5353"}) {
			t.Errorf("upstreams %q", got)
		}
	})
	t.Run("a bad upstream is an error", func(t *testing.T) {
		if _, err := dns.New(dns.Config{Upstreams: []string{"resolver.example"}}); err == nil {
			t.Error("no error")
		}
	})
}

func TestOddQueries(t *testing.T) {
	s, err := dns.New(dns.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetZone(testZone())
	ctx := context.Background()
	q := func(f func(*mdns.Msg)) *mdns.Msg {
		m := new(mdns.Msg).SetQuestion("web.default.svc.cluster.local.", mdns.TypeA)
		f(m)
		return s.Answer(ctx, m, false)
	}
	if r := q(func(m *mdns.Msg) { m.Question = nil }); r.Rcode != mdns.RcodeFormatError {
		t.Errorf("no question: %s", mdns.RcodeToString[r.Rcode])
	}
	if r := q(func(m *mdns.Msg) { m.Question = append(m.Question, m.Question[0]) }); r.Rcode != mdns.RcodeFormatError {
		t.Errorf("two questions: %s", mdns.RcodeToString[r.Rcode])
	}
	if r := q(func(m *mdns.Msg) { m.Opcode = mdns.OpcodeUpdate }); r.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("an update: %s", mdns.RcodeToString[r.Rcode])
	}
	if r := q(func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS }); r.Rcode != mdns.RcodeRefused {
		t.Errorf("CHAOS: %s", mdns.RcodeToString[r.Rcode])
	}
	if r := q(func(m *mdns.Msg) { m.Question[0].Qtype = mdns.TypeAXFR }); r.Rcode != mdns.RcodeRefused {
		t.Errorf("AXFR: %s", mdns.RcodeToString[r.Rcode])
	}
	if r := q(func(m *mdns.Msg) { m.Response = true }); r != nil {
		t.Errorf("a response got a reply: %v", r)
	}
	if _, err := dns.New(dns.Config{Domain: "bad..domain"}); err == nil {
		t.Error("a bad cluster domain was taken")
	}
}

func TestHostUpstreams(t *testing.T) {
	path := t.TempDir() + "/resolv.conf"
	if err := writeFile(path, "# a comment\nnameserver 192.0.2.1\nnameserver fd00::53\nsearch example.com\noptions ndots:2\n"); err != nil {
		t.Fatal(err)
	}
	got, err := dns.HostUpstreams(path)
	if err != nil || !slices.Equal(got, []string{"192.0.2.1:53", "[fd00::53]:53"}) {
		t.Errorf("got %q, %v", got, err)
	}
}

// The server answers many queries at once over UDP (for go test -race).
func TestConcurrentQueries(t *testing.T) {
	s, addr := serve(t, dns.Config{})
	s.SetZone(testZone())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			c := &mdns.Client{Timeout: 5 * time.Second}
			for i := range 50 {
				r, _, err := c.Exchange(new(mdns.Msg).SetQuestion(fmt.Sprintf("kv-%d.kv.default.svc.cluster.local.", (w+i)%2), mdns.TypeA), addr)
				if err != nil || len(r.Answer) != 1 {
					errs <- fmt.Errorf("%v %v", r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
