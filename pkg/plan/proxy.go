package plan

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The Service proxy's ruleset, as data: what ProxyRules computes and
// pkg/apply/proxy writes into the nftables tables "inet gitorch" and
// "inet gitorch-<shard>". The fixed part of the tables (base chains hooked
// into prerouting, output and postrouting, the dispatch through the maps,
// the masquerade, the refusal) is the same on every node and for every set
// of Services; it is described in docs/services.md and built by
// pkg/apply/proxy. What changes with the Services and their endpoints is
// here, Service by Service: the elements of two verdict maps and two sets
// of refused ports, a chain per Service port and per nodePort, a set per
// endpoint of a Service with ClientIP affinity, the endpoints' addresses
// for hairpin traffic, and the table each Service is in.

// PortRange is a range of ports, both ends included.
type PortRange struct{ Min, Max int32 }

// DefaultNodePortRange is the range NodePorts come from, as Kubernetes'.
var DefaultNodePortRange = PortRange{30000, 32767}

// Contains reports whether p is in r.
func (r PortRange) Contains(p int32) bool { return p >= r.Min && p <= r.Max }

// String is "min-max", the form of --service-node-port-range.
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.Min, r.Max) }

// ParsePortRange reads "min-max" (or a single port).
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, found := strings.Cut(s, "-")
	if !found {
		hi = lo
	}
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil || a == 0 || a > b {
		return PortRange{}, fmt.Errorf("port range %q: want MIN-MAX with 1 <= MIN <= MAX <= 65535", s)
	}
	return PortRange{int32(a), int32(b)}, nil
}

// Proto is a transport protocol as nftables' meta l4proto has it.
type Proto uint8

// The protocols a Service port can have here.
const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return strconv.Itoa(int(p))
}

// ProxyOptions are the node's facts the ruleset depends on.
type ProxyOptions struct {
	// Node is this node's name: externalTrafficPolicy Local sends
	// NodePort traffic only to the endpoints on it.
	Node string
	// NodePortRange: a nodePort outside it gets no rule.
	NodePortRange PortRange
}

// MapElement is an element of one of the ruleset's verdict maps:
// addr . proto . port : goto Chain. Addr is unset in the NodePort maps,
// keyed proto . port (the address is any of the node's own).
type MapElement struct {
	Addr  netip.Addr
	Proto Proto
	Port  uint16
	// Chain is the chain to go to; empty in the no-endpoint maps, whose
	// elements all lead to the reject chain.
	Chain string
}

func (e MapElement) String() string {
	s := e.Proto.String() + " . " + strconv.Itoa(int(e.Port))
	if e.Addr.IsValid() {
		s = e.Addr.String() + " . " + s
	}
	if e.Chain != "" {
		s += " : goto " + e.Chain
	}
	return s
}

// Compare orders elements by key: address, protocol, port (the order of
// a Ruleset's elements).
func (e MapElement) Compare(o MapElement) int {
	return cmp.Or(e.Addr.Compare(o.Addr), cmp.Compare(e.Proto, o.Proto), cmp.Compare(e.Port, o.Port))
}

// RuleOp is what a rule does.
type RuleOp uint8

// The rules of Service and external chains.
const (
	// OpMasquerade marks the packet for masquerade in postrouting.
	OpMasquerade RuleOp = iota + 1
	// OpGoto goes to Chain.
	OpGoto
	// OpDNAT rewrites the destination to To, for packets of protocol
	// Proto (after adding the source address to the affinity set
	// Remember, when there is one).
	OpDNAT
	// OpDrop drops the packet (NodePort traffic of a Service whose
	// externalTrafficPolicy is Local, on a node with no local endpoint).
	OpDrop
	// OpReturn leaves the chain (a nodePort's number reached on an address
	// that is not the node's own).
	OpReturn
)

// Rule is a rule of a chain: a match (every field unset matches all) and
// an operation.
type Rule struct {
	// SrcInSet: ip saddr @SrcInSet (a client that reached an endpoint
	// recently, sessionAffinity: ClientIP).
	SrcInSet string
	// SrcLocal: fib saddr type local (the packet comes from this node).
	SrcLocal bool
	// DstNotLocal: fib daddr type != local (the packet is not addressed to
	// this node).
	DstNotLocal bool
	// DstLoopback: ip daddr 127.0.0.0/8.
	DstLoopback bool
	// RandomMod: numgen random mod RandomMod == 0. The endpoint rules of a
	// chain of N endpoints: the i-th (from 0) matches with 1/(N-i), the
	// last always, so that each endpoint is picked with 1/N.
	RandomMod uint32

	Op    RuleOp
	Chain string
	// Remember is the affinity set the source address is added to (its
	// timer restarted) before OpDNAT.
	Remember string
	To       netip.AddrPort
	Proto    Proto
}

func (r Rule) String() string {
	var b strings.Builder
	if r.SrcInSet != "" {
		fmt.Fprintf(&b, "ip saddr @%s ", r.SrcInSet)
	}
	if r.SrcLocal {
		b.WriteString("fib saddr type local ")
	}
	if r.DstNotLocal {
		b.WriteString("fib daddr type != local ")
	}
	if r.DstLoopback {
		b.WriteString("ip daddr 127.0.0.0/8 ")
	}
	if r.RandomMod > 0 {
		fmt.Fprintf(&b, "numgen random mod %d == 0 ", r.RandomMod)
	}
	switch r.Op {
	case OpMasquerade:
		b.WriteString("jump mark-for-masquerade")
	case OpGoto:
		b.WriteString("goto " + r.Chain)
	case OpDNAT:
		fmt.Fprintf(&b, "meta l4proto %s ", r.Proto)
		if r.Remember != "" {
			fmt.Fprintf(&b, "update @%s { ip saddr } ", r.Remember)
		}
		fmt.Fprintf(&b, "dnat ip to %s", r.To)
	case OpDrop:
		b.WriteString("drop")
	case OpReturn:
		b.WriteString("return")
	}
	return b.String()
}

// Chain is a regular chain of the table.
type Chain struct {
	Name  string
	Rules []Rule
}

// AffinitySet is a set of client addresses with a timeout: those that
// reached one endpoint recently (sessionAffinity: ClientIP).
type AffinitySet struct {
	Name string
	// Timeout in seconds.
	Timeout uint32
}

// Ruleset is the changing part of the proxy's tables: what ProxyRules
// computes. Each Service's rules live in one of Shards tables (its shard);
// the no-endpoint sets in the one fixed table. The kernel checks a whole
// table at every commit that adds a rule or a verdict, so a change to one
// Service costs what its shard holds, not what the node holds.
type Ruleset struct {
	// Shards is the number of tables the Services are spread over: a power
	// of two, ProxyShards of the number of Services with rules.
	Shards int
	// Services are the rules of each Service that has any, sorted by
	// namespace and name.
	Services []*ServiceRules
}

// ServiceRules are the rules of one Service.
type ServiceRules struct {
	Service Key
	// Shard is the table the Service's chains, sets and map elements are
	// in: ProxyShard of its key.
	Shard int
	// ServiceIPs: ClusterIP . proto . port : goto the Service port's chain.
	ServiceIPs []MapElement
	// NodePorts: proto . nodePort : goto the Service port's external
	// chain, on every address of the node but loopback.
	NodePorts []MapElement
	// NoEndpointIPs and NoEndpointNodePorts: the Service ports with no
	// endpoint, whose new connections are refused (TCP reset, ICMP port
	// unreachable). Their Chain is empty.
	NoEndpointIPs       []MapElement
	NoEndpointNodePorts []MapElement
	// Chains are sorted by name.
	Chains []Chain
	// Sets are sorted by name.
	Sets []AffinitySet
	// Hairpin are the addresses of the Service's endpoints, sorted: a
	// connection from one of them DNATed to itself (an endpoint reaching
	// its own Service) is masqueraded, so that the answers come back
	// through the node.
	Hairpin []netip.Addr

	// from are the inputs the rules were computed from, so that
	// ProxyRulesFrom can reuse them.
	from proxyInputs
}

type proxyInputs struct {
	svc    *corev1.Service
	ip     ServiceIP
	eps    ServiceEndpoints
	opts   ProxyOptions
	shards int
}

// Equal reports whether a and b hold the same rules.
func (a *ServiceRules) Equal(b *ServiceRules) bool {
	if a == b {
		return true
	}
	return a.Service == b.Service && a.Shard == b.Shard &&
		slices.Equal(a.ServiceIPs, b.ServiceIPs) && slices.Equal(a.NodePorts, b.NodePorts) &&
		slices.Equal(a.NoEndpointIPs, b.NoEndpointIPs) && slices.Equal(a.NoEndpointNodePorts, b.NoEndpointNodePorts) &&
		slices.EqualFunc(a.Chains, b.Chains, Chain.Equal) && slices.Equal(a.Sets, b.Sets) && slices.Equal(a.Hairpin, b.Hairpin)
}

// Equal reports whether two chains have the same name and rules.
func (c Chain) Equal(o Chain) bool {
	return c.Name == o.Name && slices.EqualFunc(c.Rules, o.Rules, Rule.Equal)
}

// Equal reports whether two rules are the same.
func (r Rule) Equal(o Rule) bool {
	return r == o
}

// Equal reports whether a and b hold the same rules.
func (r *Ruleset) Equal(o *Ruleset) bool {
	return r.Shards == o.Shards && slices.EqualFunc(r.Services, o.Services, (*ServiceRules).Equal)
}

// ServiceIPs are the elements of every Service's ClusterIP map, sorted.
func (r *Ruleset) ServiceIPs() []MapElement {
	return r.elements(func(s *ServiceRules) []MapElement { return s.ServiceIPs })
}

// NodePorts are the elements of every Service's NodePort map, sorted.
func (r *Ruleset) NodePorts() []MapElement {
	return r.elements(func(s *ServiceRules) []MapElement { return s.NodePorts })
}

// NoEndpointIPs are the ClusterIP ports refused for want of an endpoint.
func (r *Ruleset) NoEndpointIPs() []MapElement {
	return r.elements(func(s *ServiceRules) []MapElement { return s.NoEndpointIPs })
}

// NoEndpointNodePorts are the nodePorts refused for want of an endpoint.
func (r *Ruleset) NoEndpointNodePorts() []MapElement {
	return r.elements(func(s *ServiceRules) []MapElement { return s.NoEndpointNodePorts })
}

func (r *Ruleset) elements(of func(*ServiceRules) []MapElement) []MapElement {
	var out []MapElement
	for _, s := range r.Services {
		out = append(out, of(s)...)
	}
	slices.SortFunc(out, MapElement.Compare)
	return out
}

// Chains are the chains of every Service, sorted by name.
func (r *Ruleset) Chains() []Chain {
	var out []Chain
	for _, s := range r.Services {
		out = append(out, s.Chains...)
	}
	slices.SortFunc(out, func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ChainCount is the number of chains of every Service.
func (r *Ruleset) ChainCount() int {
	n := 0
	for _, s := range r.Services {
		n += len(s.Chains)
	}
	return n
}

// Sets are the affinity sets of every Service, sorted by name.
func (r *Ruleset) Sets() []AffinitySet {
	var out []AffinitySet
	for _, s := range r.Services {
		out = append(out, s.Sets...)
	}
	slices.SortFunc(out, func(a, b AffinitySet) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Hairpin are the addresses of every Service's endpoints, sorted, each
// once.
func (r *Ruleset) Hairpin() []netip.Addr {
	var out []netip.Addr
	for _, s := range r.Services {
		out = append(out, s.Hairpin...)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Chain returns the chain named name, or nil.
func (r *Ruleset) Chain(name string) *Chain {
	for _, s := range r.Services {
		i, ok := slices.BinarySearchFunc(s.Chains, name, func(c Chain, n string) int { return strings.Compare(c.Name, n) })
		if ok {
			return &s.Chains[i]
		}
	}
	return nil
}

// String is the ruleset in nft's words, for tests and people (the shards
// left out).
func (r *Ruleset) String() string {
	var b strings.Builder
	for _, m := range []struct {
		name string
		els  []MapElement
	}{{"service-ips", r.ServiceIPs()}, {"service-nodeports", r.NodePorts()}, {"no-endpoint-services", r.NoEndpointIPs()}, {"no-endpoint-nodeports", r.NoEndpointNodePorts()}} {
		for _, e := range m.els {
			fmt.Fprintf(&b, "%s: %s\n", m.name, e)
		}
	}
	for _, s := range r.Sets() {
		fmt.Fprintf(&b, "set %s timeout %ds\n", s.Name, s.Timeout)
	}
	for _, a := range r.Hairpin() {
		fmt.Fprintf(&b, "hairpin: %s . %s\n", a, a)
	}
	for _, c := range r.Chains() {
		fmt.Fprintf(&b, "chain %s\n", c.Name)
		for _, rule := range c.Rules {
			fmt.Fprintf(&b, "\t%s\n", rule)
		}
	}
	return b.String()
}

// ProxyShardSize is about how many Services one table of the proxy holds
// at most: ProxyShards doubles the tables when there are more.
const ProxyShardSize = 512

// MaxProxyShards is the most tables the proxy spreads Services over. Each
// is one more map lookup for a new connection that no Service of the
// tables before it takes.
const MaxProxyShards = 64

// ProxyShards is the number of tables for n Services: the smallest power
// of two that keeps them at ProxyShardSize a table or fewer, at most
// MaxProxyShards.
func ProxyShards(n int) int {
	s := 1
	for s < MaxProxyShards && n > s*ProxyShardSize {
		s *= 2
	}
	return s
}

// ProxyShard is the table, of shards, that holds the Service k's rules.
func ProxyShard(k Key, shards int) int {
	if shards <= 1 {
		return 0
	}
	return int(mix(hashString(k.Namespace+"/"+k.Name), 0) % uint64(shards))
}

// The prefixes of the changing chains' and sets' names. A name is at most
// 256 bytes in nftables; namespace and name (63 bytes each), the protocol,
// a port name (15) and an endpoint (21) fit. Names use only characters nft
// reads unquoted (letters, digits, "/", "_", ".", "-"), so that
// `nft list` output can be fed back to nft.
const (
	serviceChainPrefix  = "svc-"
	externalChainPrefix = "ext-"
	affinitySetPrefix   = "aff-"
)

// DefaultAffinityTimeout is sessionAffinityConfig.clientIP.timeoutSeconds
// when unset, as Kubernetes': three hours.
const DefaultAffinityTimeout = 10800

// ProxyRules is the ruleset of one node for services, with their
// ClusterIPs (ips, from AllocateClusterIPs) and NodePorts (from
// AllocateNodePorts) set, and their endpoints eps (from Endpoints):
//
//   - A ClusterIP port with endpoints is an element of ServiceIPs going to
//     its Service chain, which DNATs to an endpoint picked at random (to
//     the client's remembered endpoint first, for ClientIP affinity). An
//     endpoint's address is in Hairpin: the endpoint reaching its own
//     Service is masqueraded. There is no chain per endpoint: every chain
//     costs the kernel time at each commit, whatever changed.
//   - A nodePort in the range is an element of NodePorts going to the
//     external chain of the port: it returns unless the packet is
//     addressed to one of the node's own addresses but loopback, marks the
//     traffic for masquerade and goes to the Service chain; with
//     externalTrafficPolicy Local only traffic from the node itself does,
//     other traffic picks among this node's endpoints, unmasqueraded (the
//     client's address is kept), and is dropped where there is none.
//   - A port with no endpoint is an element of the no-endpoint sets.
//   - Headless and ExternalName Services, IPv6 addresses and protocols
//     other than TCP and UDP have no rules.
//   - The Services are spread over ProxyShards(len(services)) tables by
//     ProxyShard.
//
// The result depends only on its arguments, whatever their order.
func ProxyRules(services []*corev1.Service, ips []ServiceIP, eps []ServiceEndpoints, opts ProxyOptions) Ruleset {
	return ProxyRulesFrom(nil, services, ips, eps, opts)
}

// ProxyRulesFrom is ProxyRules, reusing the rules of prev (a result of
// ProxyRules or ProxyRulesFrom) for every Service whose object, address,
// endpoints and options are those prev's rules were computed from: the
// result is the same, and a Service that did not change keeps the same
// *ServiceRules, which a writer can skip without looking into it.
func ProxyRulesFrom(prev *Ruleset, services []*corev1.Service, ips []ServiceIP, eps []ServiceEndpoints, opts ProxyOptions) Ruleset {
	return NewProxyServices(services, ips).Rules(prev, eps, opts)
}

// ProxyServices are the Services of a revision that can have rules, with
// their ClusterIPs: what the ruleset needs of the revision, computed once
// for it (the endpoints change far more often than the Services).
type ProxyServices struct {
	in []proxyService
	// shared: two Services have a port of one key (ClusterIP, protocol
	// and port, or protocol and nodePort), so Rules must see which keeps
	// it.
	shared bool
}

type proxyService struct {
	svc  *corev1.Service
	ip   ServiceIP
	key  Key
	addr netip.Addr
}

// NewProxyServices are the Services of services with an IPv4 ClusterIP in
// ips (from AllocateClusterIPs): neither headless nor ExternalName.
func NewProxyServices(services []*corev1.Service, ips []ServiceIP) *ProxyServices {
	svcs := services
	byKey := func(a, b *corev1.Service) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	}
	if !slices.IsSortedFunc(svcs, byKey) {
		svcs = slices.Clone(services)
		slices.SortFunc(svcs, byKey)
	}
	if !slices.IsSortedFunc(ips, func(a, b ServiceIP) int { return a.Key().Compare(b.Key()) }) {
		ips = slices.Clone(ips)
		slices.SortFunc(ips, func(a, b ServiceIP) int { return a.Key().Compare(b.Key()) })
	}
	// Both are sorted by key: a cursor walks ips along svcs.
	ps := &ProxyServices{in: make([]proxyService, 0, len(svcs))}
	for i, s := range svcs {
		if i > 0 && byKey(svcs[i-1], s) == 0 {
			continue // the same Service twice: the first counts
		}
		for len(ips) > 0 && cmp.Or(strings.Compare(ips[0].Namespace, s.Namespace), strings.Compare(ips[0].Name, s.Name)) < 0 {
			ips = ips[1:]
		}
		if len(ips) == 0 || ips[0].Namespace != s.Namespace || ips[0].Name != s.Name {
			continue
		}
		ip := ips[0]
		if ip.Headless || ip.ClusterIP == "" || s.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		addr, err := netip.ParseAddr(ip.ClusterIP)
		if err != nil || !addr.Is4() {
			continue
		}
		ps.in = append(ps.in, proxyService{svc: s, ip: ip, key: Key{s.Namespace, s.Name}, addr: addr})
	}
	// Every key a Service's ports can have, whatever the node port range
	// and the endpoints: if no two Services share one, no two elements
	// ever collide.
	var keys []uint64
	for _, x := range ps.in {
		var own []uint64
		for _, sp := range x.svc.Spec.Ports {
			proto, ok := proxyProto(sp.Protocol)
			if !ok {
				continue
			}
			own = append(own, MapElement{Addr: x.addr, Proto: proto, Port: uint16(sp.Port)}.key())
			if sp.NodePort != 0 {
				own = append(own, MapElement{Proto: proto, Port: uint16(sp.NodePort)}.key())
			}
		}
		slices.Sort(own)
		keys = append(keys, slices.Compact(own)...)
	}
	slices.Sort(keys)
	ps.shared = len(slices.Compact(keys)) < len(keys)
	return ps
}

// Rules is ProxyRulesFrom(prev, the Services and addresses of ps, eps,
// opts).
func (ps *ProxyServices) Rules(prev *Ruleset, eps []ServiceEndpoints, opts ProxyOptions) Ruleset {
	if !slices.IsSortedFunc(eps, func(a, b ServiceEndpoints) int { return a.Key().Compare(b.Key()) }) {
		eps = slices.Clone(eps)
		slices.SortFunc(eps, func(a, b ServiceEndpoints) int { return a.Key().Compare(b.Key()) })
	}
	in := ps.in
	r := Ruleset{Shards: ProxyShards(len(in)), Services: make([]*ServiceRules, 0, len(in))}
	var old []*ServiceRules
	if prev != nil {
		old = prev.Services
	}
	for i := range in {
		x := &in[i]
		k := x.key
		for len(eps) > 0 && eps[0].Key().Compare(k) < 0 {
			eps = eps[1:]
		}
		var se *ServiceEndpoints
		if len(eps) > 0 && eps[0].Namespace == k.Namespace && eps[0].Name == k.Name {
			se = &eps[0]
		}
		// The last rules of the same object are those of this Service:
		// found without comparing keys, as long as the Services are those
		// of the last ruleset.
		for len(old) > 0 && old[0].from.svc != x.svc && old[0].Service.Compare(k) < 0 {
			old = old[1:]
		}
		var sr *ServiceRules
		if len(old) > 0 && (old[0].from.svc == x.svc || old[0].Service == k) && old[0].from.same(x.svc, &x.ip, se, &opts, r.Shards) {
			sr = old[0]
		} else {
			var e ServiceEndpoints
			if se != nil {
				e = *se
			}
			sr = serviceRules(x.svc, x.addr, e, opts, r.Shards)
			sr.from = proxyInputs{svc: x.svc, ip: x.ip, eps: e, opts: opts, shards: r.Shards}
		}
		r.Services = append(r.Services, sr)
	}
	// A key two Services claim (two Services on one nodePort or one
	// ClusterIP, refused by validation) is the first Service's.
	if ps.shared {
		claimed := make(map[uint64]bool, len(r.Services))
		kept := r.Services[:0]
		for _, sr := range r.Services {
			if sr = claim(sr, claimed); sr != nil {
				kept = append(kept, sr)
			}
		}
		r.Services = kept
	}
	return r
}

// same reports whether the rules were computed from these inputs (se nil:
// no endpoints).
func (a *proxyInputs) same(svc *corev1.Service, ip *ServiceIP, se *ServiceEndpoints, opts *ProxyOptions, shards int) bool {
	if a.svc != svc || a.ip != *ip || a.opts != *opts || a.shards != shards {
		return false
	}
	if se == nil {
		return a.eps.Namespace == "" && a.eps.Pods == nil && a.eps.Ports == nil
	}
	return a.eps.equal(se)
}

// sameSlice reports whether a and b are one slice: equal without looking.
func sameSlice[T any](a, b []T) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }

// claim marks the map keys of s as taken and returns s, or a copy of s
// without the keys another Service took first.
func claim(s *ServiceRules, claimed map[uint64]bool) *ServiceRules {
	var taken bool
	for _, els := range [][]MapElement{s.ServiceIPs, s.NodePorts, s.NoEndpointIPs, s.NoEndpointNodePorts} {
		for _, e := range els {
			if claimed[e.key()] {
				taken = true
			}
		}
	}
	if !taken {
		for _, els := range [][]MapElement{s.ServiceIPs, s.NodePorts, s.NoEndpointIPs, s.NoEndpointNodePorts} {
			for _, e := range els {
				claimed[e.key()] = true
			}
		}
		return s
	}
	c := *s
	c.from = proxyInputs{} // never reused: what it lacks depends on the others
	keep := func(els []MapElement) []MapElement {
		var out []MapElement
		for _, e := range els {
			if !claimed[e.key()] {
				claimed[e.key()] = true
				out = append(out, e)
			}
		}
		return out
	}
	c.ServiceIPs, c.NodePorts = keep(s.ServiceIPs), keep(s.NodePorts)
	c.NoEndpointIPs, c.NoEndpointNodePorts = keep(s.NoEndpointIPs), keep(s.NoEndpointNodePorts)
	// Chains no element leads to any more go with them.
	reached := map[string]bool{}
	for _, els := range [][]MapElement{c.ServiceIPs, c.NodePorts} {
		for _, e := range els {
			reached[e.Chain] = true
		}
	}
	for _, ch := range s.Chains {
		if reached[ch.Name] {
			for _, rule := range ch.Rules {
				reached[rule.Chain] = true
			}
		}
	}
	c.Chains = slices.DeleteFunc(slices.Clone(s.Chains), func(ch Chain) bool { return !reached[ch.Name] })
	c.Sets = slices.DeleteFunc(slices.Clone(s.Sets), func(a AffinitySet) bool {
		return !slices.ContainsFunc(c.Chains, func(ch Chain) bool {
			return slices.ContainsFunc(ch.Rules, func(r Rule) bool { return r.Remember == a.Name || r.SrcInSet == a.Name })
		})
	})
	if len(c.ServiceIPs)+len(c.NodePorts)+len(c.NoEndpointIPs)+len(c.NoEndpointNodePorts) == 0 {
		return nil
	}
	return &c
}

// key is what makes two elements collide, whether they serve the port or
// refuse it: address (IPv4, or none), protocol and port.
func (e MapElement) key() uint64 {
	k := uint64(e.Proto)<<16 | uint64(e.Port)
	if e.Addr.Is4() {
		a := e.Addr.As4()
		return k | uint64(a[0])<<56 | uint64(a[1])<<48 | uint64(a[2])<<40 | uint64(a[3])<<32
	}
	return k | 1<<24
}

// serviceRules are the rules of the Service s at addr with endpoints se.
func serviceRules(s *corev1.Service, addr netip.Addr, se ServiceEndpoints, opts ProxyOptions, shards int) *ServiceRules {
	k := Key{s.Namespace, s.Name}
	r := &ServiceRules{Service: k, Shard: ProxyShard(k, shards)}
	timeout := uint32(0)
	if s.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		timeout = DefaultAffinityTimeout
		if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
			timeout = uint32(*c.ClientIP.TimeoutSeconds)
		}
	}
	nodePorts := s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer
	local := s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	for pi, sp := range s.Spec.Ports {
		proto, ok := proxyProto(sp.Protocol)
		if !ok {
			continue
		}
		var pe PortEndpoints
		if pi < len(se.Ports) && se.Ports[pi].Port == sp.Port && se.Ports[pi].Protocol == protocol(sp.Protocol) {
			pe = se.Ports[pi]
		}
		var endpoints []PortEndpoint
		for _, e := range pe.Endpoints {
			if e.IP.Is4() {
				endpoints = append(endpoints, e)
			}
		}
		portName := sp.Name
		if portName == "" {
			portName = strconv.Itoa(int(sp.Port))
		}
		base := s.Namespace + "/" + s.Name + "/" + proto.String() + "/" + portName
		np := nodePorts && sp.NodePort != 0 && opts.NodePortRange.Contains(sp.NodePort)
		if len(endpoints) == 0 {
			r.NoEndpointIPs = append(r.NoEndpointIPs, MapElement{Addr: addr, Proto: proto, Port: uint16(sp.Port)})
			if np {
				r.NoEndpointNodePorts = append(r.NoEndpointNodePorts, MapElement{Proto: proto, Port: uint16(sp.NodePort)})
			}
			continue
		}
		svcChain := serviceChainPrefix + base
		r.ServiceIPs = append(r.ServiceIPs, MapElement{Addr: addr, Proto: proto, Port: uint16(sp.Port), Chain: svcChain})
		svc := Chain{Name: svcChain}
		var all, mine []Rule
		for _, e := range endpoints {
			to := netip.AddrPortFrom(e.IP, uint16(e.TargetPort))
			r.Hairpin = append(r.Hairpin, e.IP)
			dnat := Rule{Op: OpDNAT, To: to, Proto: proto}
			if timeout > 0 {
				// kube-proxy's form, "__ip/port": nft accepts it unquoted.
				set := affinitySetPrefix + base + "__" + e.IP.String() + "/" + strconv.Itoa(int(e.TargetPort))
				r.Sets = append(r.Sets, AffinitySet{Name: set, Timeout: timeout})
				dnat.Remember = set
				svc.Rules = append(svc.Rules, Rule{SrcInSet: set, Op: OpDNAT, To: to, Proto: proto, Remember: set})
			}
			all = append(all, dnat)
			if e.Node == opts.Node {
				mine = append(mine, dnat)
			}
		}
		svc.Rules = append(svc.Rules, pick(all)...)
		r.Chains = append(r.Chains, svc)
		if !np {
			continue
		}
		ext := Chain{Name: externalChainPrefix + base, Rules: []Rule{{DstNotLocal: true, Op: OpReturn}, {DstLoopback: true, Op: OpReturn}}}
		switch {
		case !local:
			ext.Rules = append(ext.Rules, Rule{Op: OpMasquerade}, Rule{Op: OpGoto, Chain: svcChain})
		default:
			ext.Rules = append(ext.Rules, Rule{SrcLocal: true, Op: OpMasquerade}, Rule{SrcLocal: true, Op: OpGoto, Chain: svcChain})
			if len(mine) > 0 {
				ext.Rules = append(ext.Rules, pick(mine)...)
			} else {
				ext.Rules = append(ext.Rules, Rule{Op: OpDrop})
			}
		}
		r.Chains = append(r.Chains, ext)
		r.NodePorts = append(r.NodePorts, MapElement{Proto: proto, Port: uint16(sp.NodePort), Chain: ext.Name})
	}
	sortElements := func(els []MapElement) []MapElement {
		slices.SortFunc(els, MapElement.Compare)
		// Two ports of one Service on one key: the first port's.
		return slices.CompactFunc(els, func(a, b MapElement) bool { return a.Compare(b) == 0 })
	}
	r.ServiceIPs = sortElements(r.ServiceIPs)
	r.NodePorts = sortElements(r.NodePorts)
	r.NoEndpointIPs = sortElements(r.NoEndpointIPs)
	r.NoEndpointNodePorts = sortElements(r.NoEndpointNodePorts)
	slices.SortFunc(r.Chains, func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
	r.Chains = slices.CompactFunc(r.Chains, func(a, b Chain) bool { return a.Name == b.Name })
	slices.SortFunc(r.Sets, func(a, b AffinitySet) int { return strings.Compare(a.Name, b.Name) })
	r.Sets = slices.CompactFunc(r.Sets, func(a, b AffinitySet) bool { return a.Name == b.Name })
	slices.SortFunc(r.Hairpin, netip.Addr.Compare)
	r.Hairpin = slices.Compact(r.Hairpin)
	return r
}

// proxyProto is the protocol of a Service port, if the proxy serves it.
func proxyProto(p corev1.Protocol) (Proto, bool) {
	switch protocol(p) {
	case corev1.ProtocolTCP:
		return TCP, true
	case corev1.ProtocolUDP:
		return UDP, true
	}
	return 0, false
}

// pick are the rules that DNAT to one of the targets of dnats, each with
// the same probability (kube-proxy's numgen random mod N vmap, written as
// one rule per endpoint, see docs/services.md).
func pick(dnats []Rule) []Rule {
	out := slices.Clone(dnats)
	for i := range out[:len(out)-1] {
		out[i].RandomMod = uint32(len(out) - i)
	}
	return out
}

// AllocateNodePorts sets the nodePort of every port of a NodePort or
// LoadBalancer Service that has none, as a pure function of the Services:
// ports that name a nodePort keep it; the others, in namespace/name order,
// take the port at hash(namespace/name/port index) in r, or the next free
// one (per protocol: TCP and UDP may share a number). It returns copies of
// the Services it changed and the others as they are, sorted by
// namespace/name; a port that finds r full keeps 0.
func AllocateNodePorts(services []*corev1.Service, r PortRange) []*corev1.Service {
	out := slices.Clone(services)
	slices.SortFunc(out, func(a, b *corev1.Service) int { return Key{a.Namespace, a.Name}.Compare(Key{b.Namespace, b.Name}) })
	type use struct {
		proto corev1.Protocol
		port  int32
	}
	used := map[use]bool{}
	wants := func(s *corev1.Service) bool {
		return s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer
	}
	for _, s := range out {
		for _, p := range s.Spec.Ports {
			if p.NodePort != 0 {
				used[use{protocol(p.Protocol), p.NodePort}] = true
			}
		}
	}
	size := uint64(r.Max - r.Min + 1)
	for i, s := range out {
		if !wants(s) || !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.NodePort == 0 }) {
			continue
		}
		c := s.DeepCopy()
		for pi := range c.Spec.Ports {
			p := &c.Spec.Ports[pi]
			if p.NodePort != 0 {
				continue
			}
			off := mix(hashString(fmt.Sprintf("%s/%s/%d", s.Namespace, s.Name, pi)), 0) % size
			for probe := uint64(0); probe < size; probe++ {
				port := r.Min + int32((off+probe)%size)
				if u := (use{protocol(p.Protocol), port}); !used[u] {
					used[u] = true
					p.NodePort = port
					break
				}
			}
		}
		out[i] = c
	}
	return out
}
