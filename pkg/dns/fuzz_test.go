package dns_test

import (
	"context"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/gitorch/gitorch/pkg/dns"
)

// FuzzAnswer feeds odd packets to the query path: whatever unpacks gets
// an answer that packs again, or no answer for a response, and nothing
// panics. No upstream is set, so forwarded names fail at once.
func FuzzAnswer(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.default.svc.cluster.local.", mdns.TypeA},
		{"_redis._tcp.kv.default.svc.cluster.local.", mdns.TypeSRV},
		{"search.default.svc.cluster.local.", mdns.TypeA},
		{"alias.default.svc.cluster.local.", mdns.TypeANY},
		{"cluster.local.", mdns.TypeSOA},
		{"example.org.", mdns.TypeTXT},
	} {
		m := new(mdns.Msg).SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, true)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}) // a pointer to itself
	f.Add([]byte{0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	s, err := dns.New(dns.Config{})
	if err != nil {
		f.Fatal(err)
	}
	s.SetZone(testZone())
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(b); err != nil {
			return
		}
		resp := s.Answer(context.Background(), req, false)
		if resp == nil {
			if !req.Response {
				t.Fatal("a query got no reply")
			}
			return
		}
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("reply id %d response %v to query %d", resp.Id, resp.Response, req.Id)
		}
		resp.Truncate(mdns.MinMsgSize)
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("the reply does not pack: %v\n%v", err, resp)
		}
	})
}
