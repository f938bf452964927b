package dns_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/gitorch/gitorch/pkg/dns"
	"github.com/gitorch/gitorch/pkg/plan"
)

// bigZone is 10,000 Services with a ClusterIP and a named port.
func bigZone() plan.DNSZone {
	z := plan.DNSZone{Domain: "cluster.local"}
	for i := range 10000 {
		base := fmt.Sprintf("svc-%d.default.svc.cluster.local.", i)
		z.Names = append(z.Names,
			plan.DNSName{Name: base, A: []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})}},
			plan.DNSName{Name: "_http._tcp." + base, SRV: []plan.DNSSRV{{Weight: 100, Port: 80, Target: base}}})
	}
	return z
}

// BenchmarkAnswer is the query path without sockets, among 10,000
// Services.
func BenchmarkAnswer(b *testing.B) {
	s, err := dns.New(dns.Config{})
	if err != nil {
		b.Fatal(err)
	}
	s.SetZone(bigZone())
	req := new(mdns.Msg).SetQuestion("svc-9999.default.svc.cluster.local.", mdns.TypeA)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := s.Answer(ctx, req, false); len(r.Answer) != 1 {
			b.Fatal(r)
		}
	}
}

// BenchmarkUDPQueries is queries/s over UDP on loopback, from parallel
// clients, among 10,000 Services.
func BenchmarkUDPQueries(b *testing.B) {
	s, err := dns.New(dns.Config{})
	if err != nil {
		b.Fatal(err)
	}
	s.SetZone(bigZone())
	pc, l, err := dns.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
	defer func() { cancel(); <-done }()
	addr := pc.LocalAddr().String()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(p *testing.PB) {
		c := &mdns.Client{Timeout: 5 * time.Second}
		conn, err := c.Dial(addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		i := 0
		for p.Next() {
			m := new(mdns.Msg).SetQuestion(fmt.Sprintf("svc-%d.default.svc.cluster.local.", i%10000), mdns.TypeA)
			i++
			r, _, err := c.ExchangeWithConn(m, conn)
			if err != nil || len(r.Answer) != 1 {
				b.Errorf("%v %v", r, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
}

// BenchmarkSetZone is building and swapping in the records of 10,000
// Services.
func BenchmarkSetZone(b *testing.B) {
	s, err := dns.New(dns.Config{})
	if err != nil {
		b.Fatal(err)
	}
	z := bigZone()
	b.ReportAllocs()
	for b.Loop() {
		s.SetZone(z)
	}
}
