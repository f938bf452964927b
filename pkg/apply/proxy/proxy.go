// Package proxy writes the Service proxy's rules into the kernel: the
// nftables table "inet gitorch", through netlink (github.com/google/nftables;
// no nft binary). It carries out what plan.ProxyRules decides: the fixed
// part of the table (hooks, the dispatch through verdict maps, masquerade,
// reject) is built here, the changing part is the plan.Ruleset it is given.
//
// Every Sync is one netlink transaction, atomic in the kernel. The first
// Sync of a Proxy rebuilds the whole table (deleted and made again in that
// one transaction, so there is no moment without rules); later ones send
// only what changed since the last one that succeeded. Only the table
// gitorch owns is ever read or written.
package proxy

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/gitorch/gitorch/pkg/plan"
)

// DefaultTable is the name of gitorch's table, of family inet.
const DefaultTable = "gitorch"

// MasqueradeMark is the packet mark bit that says "masquerade this in
// postrouting". It is gitorch's own bit, not kube-proxy's 0x4000.
const MasqueradeMark = 0x00400000

// Names of the fixed sets and chains.
const (
	mapServiceIPs          = "service-ips"
	mapNodePorts           = "service-nodeports"
	mapNoEndpointServices  = "no-endpoint-services"
	mapNoEndpointNodePorts = "no-endpoint-nodeports"
	chainServices          = "services"
	chainMarkMasq          = "mark-for-masquerade"
	chainMasquerading      = "masquerading"
	chainEndpointsCheck    = "endpoints-check"
	chainReject            = "reject-chain"
)

// Config says where the proxy works.
type Config struct {
	// NetNS is the path of the network namespace whose rules to write
	// (/run/netns/NAME, /proc/PID/ns/net); empty: the process's own.
	NetNS string
	// Table is the name of the inet table; DefaultTable when empty.
	Table string
}

// Proxy writes rulesets into one table. Its methods are safe to call from
// several goroutines; syncs are serialised.
type Proxy struct {
	mu     sync.Mutex
	cfg    Config
	nsFile *os.File
	table  *nftables.Table
	// applied is the ruleset of the last Sync that succeeded; nil until
	// then, and after a failure (the next Sync rebuilds the table).
	applied *plan.Ruleset
	maps    map[string]*nftables.Set
	// nl is the netlink connection, kept from one Sync to the next:
	// closing a netlink socket costs the kernel milliseconds.
	nl *nftables.Conn
}

// New returns a proxy for the table cfg names. It touches nothing until
// the first Sync.
func New(cfg Config) (*Proxy, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	p := &Proxy{cfg: cfg, table: &nftables.Table{Family: nftables.TableFamilyINet, Name: cfg.Table}}
	if cfg.NetNS != "" {
		f, err := os.Open(cfg.NetNS)
		if err != nil {
			return nil, fmt.Errorf("proxy: network namespace: %w", err)
		}
		p.nsFile = f
	}
	p.maps = map[string]*nftables.Set{
		mapServiceIPs:          {Table: p.table, Name: mapServiceIPs, IsMap: true, Concatenation: true, KeyType: ipProtoPort, DataType: nftables.TypeVerdict},
		mapNodePorts:           {Table: p.table, Name: mapNodePorts, IsMap: true, Concatenation: true, KeyType: protoPort, DataType: nftables.TypeVerdict},
		mapNoEndpointServices:  {Table: p.table, Name: mapNoEndpointServices, IsMap: true, Concatenation: true, KeyType: ipProtoPort, DataType: nftables.TypeVerdict},
		mapNoEndpointNodePorts: {Table: p.table, Name: mapNoEndpointNodePorts, IsMap: true, Concatenation: true, KeyType: protoPort, DataType: nftables.TypeVerdict},
	}
	return p, nil
}

// Close releases the netlink connection and the namespace; the rules stay.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropConn()
	if p.nsFile != nil {
		return p.nsFile.Close()
	}
	return nil
}

var (
	ipProtoPort = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	protoPort   = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
)

// bufferSize is the socket buffers' size for a transaction: a full sync of
// 10,000 Services is tens of megabytes, and every message is acknowledged.
const bufferSize = 1 << 28

// conn is the connection of the proxy, made on first use.
func (p *Proxy) conn() (*nftables.Conn, error) {
	if p.nl != nil {
		return p.nl, nil
	}
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			// As root, lift the limits of net.core.[rw]mem_max; else keep
			// what the system allows.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bufferSize) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, bufferSize)
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bufferSize) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, bufferSize)
			}
		}); err != nil {
			serr = err
		}
		return serr
	})}
	if p.nsFile != nil {
		opts = append(opts, nftables.WithNetNSFd(int(p.nsFile.Fd())))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, err
	}
	p.nl = c
	return c, nil
}

// dropConn closes the connection; the next use makes a new one. After a
// failed transaction the socket may still hold the kernel's answers to it.
func (p *Proxy) dropConn() {
	if p.nl != nil {
		_ = p.nl.CloseLasting()
		p.nl = nil
	}
}

// Sync makes the table hold r, in one transaction: the whole table on the
// first call (or after a failed one), the difference to the last ruleset
// otherwise. On error nothing of the transaction is applied.
func (p *Proxy) Sync(r plan.Ruleset) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.conn()
	if err != nil {
		return fmt.Errorf("proxy: netlink: %w", err)
	}
	b := &batch{p: p, c: c, chains: map[string]*nftables.Chain{}}
	if p.applied == nil {
		err = b.full(&r)
	} else {
		err = b.partial(p.applied, &r)
	}
	if err == nil {
		err = c.Flush()
	}
	if err != nil {
		p.applied = nil
		p.dropConn()
		return fmt.Errorf("proxy: sync table inet %s: %w", p.cfg.Table, err)
	}
	p.applied = &r
	return nil
}

// Delete removes the table, if there is one.
func (p *Proxy) Delete() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.conn()
	if err != nil {
		return fmt.Errorf("proxy: netlink: %w", err)
	}
	c.AddTable(p.table)
	c.DelTable(p.table)
	p.applied = nil
	if err := c.Flush(); err != nil {
		p.dropConn()
		return fmt.Errorf("proxy: delete table inet %s: %w", p.cfg.Table, err)
	}
	return nil
}

// batch is one transaction being built.
type batch struct {
	p      *Proxy
	c      *nftables.Conn
	chains map[string]*nftables.Chain
	err    error
}

// setElements adds (or deletes) els in the map named name, in messages of
// a few hundred elements (a netlink message is at most 64 KiB).
func (b *batch) setElements(name string, els []nftables.SetElement, add bool) {
	set := b.p.maps[name]
	const perMessage = 512
	for len(els) > 0 {
		n := min(len(els), perMessage)
		if add {
			b.fail(b.c.SetAddElements(set, els[:n]))
		} else {
			b.fail(b.c.SetDeleteElements(set, els[:n]))
		}
		els = els[n:]
	}
}

func (b *batch) chain(name string) *nftables.Chain {
	ch := b.chains[name]
	if ch == nil {
		ch = &nftables.Chain{Table: b.p.table, Name: name}
		b.chains[name] = ch
	}
	return ch
}

func (b *batch) fail(err error) {
	if b.err == nil && err != nil {
		b.err = err
	}
}

// full deletes the table and makes it again with r.
func (b *batch) full(r *plan.Ruleset) error {
	c, t := b.c, b.p.table
	c.AddTable(t) // so that the deletion finds one
	c.DelTable(t)
	c.AddTable(t)
	for _, name := range []string{mapServiceIPs, mapNodePorts, mapNoEndpointServices, mapNoEndpointNodePorts} {
		s := b.p.maps[name]
		s.ID = 0 // a new set in this transaction
		b.fail(c.AddSet(s, nil))
	}
	b.base()
	for _, s := range r.Sets {
		b.addSet(s)
	}
	for i := range r.Chains {
		c.AddChain(b.chain(r.Chains[i].Name))
	}
	for i := range r.Chains {
		b.rules(&r.Chains[i])
	}
	b.elements(mapServiceIPs, r.ServiceIPs, true)
	b.elements(mapNodePorts, r.NodePorts, true)
	b.elements(mapNoEndpointServices, r.NoEndpointIPs, true)
	b.elements(mapNoEndpointNodePorts, r.NoEndpointNodePorts, true)
	return b.err
}

// partial sends what changed from old to r.
func (b *batch) partial(old, r *plan.Ruleset) error {
	c := b.c
	// Both rulesets' chains and sets are sorted by name: one merge finds
	// what went, what came and what changed, without indexing them all.
	var gone, came, changed []*plan.Chain
	for i, j := 0, 0; i < len(old.Chains) || j < len(r.Chains); {
		switch {
		case j == len(r.Chains) || i < len(old.Chains) && old.Chains[i].Name < r.Chains[j].Name:
			gone = append(gone, &old.Chains[i])
			i++
		case i == len(old.Chains) || r.Chains[j].Name < old.Chains[i].Name:
			came = append(came, &r.Chains[j])
			j++
		default:
			if !slices.EqualFunc(old.Chains[i].Rules, r.Chains[j].Rules, ruleEqual) {
				changed = append(changed, &r.Chains[j])
			}
			i++
			j++
		}
	}
	var setsGone, setsCame []plan.AffinitySet
	for i, j := 0, 0; i < len(old.Sets) || j < len(r.Sets); {
		switch {
		case j == len(r.Sets) || i < len(old.Sets) && old.Sets[i].Name < r.Sets[j].Name:
			setsGone = append(setsGone, old.Sets[i])
			i++
		case i == len(old.Sets) || r.Sets[j].Name < old.Sets[i].Name:
			setsCame = append(setsCame, r.Sets[j])
			j++
		default:
			if old.Sets[i].Timeout != r.Sets[j].Timeout {
				setsGone, setsCame = append(setsGone, old.Sets[i]), append(setsCame, r.Sets[j])
			}
			i++
			j++
		}
	}
	// 1. Empty the chains that change or go, so that nothing refers to
	// what is removed next.
	for _, ch := range append(slices.Clip(gone), changed...) {
		c.FlushChain(b.chain(ch.Name))
	}
	// 2. Remove map elements that go or change.
	maps := []struct {
		name     string
		old, new []plan.MapElement
	}{
		{mapServiceIPs, old.ServiceIPs, r.ServiceIPs},
		{mapNodePorts, old.NodePorts, r.NodePorts},
		{mapNoEndpointServices, old.NoEndpointIPs, r.NoEndpointIPs},
		{mapNoEndpointNodePorts, old.NoEndpointNodePorts, r.NoEndpointNodePorts},
	}
	for _, m := range maps {
		gone, _ := diffElements(m.old, m.new)
		b.elements(m.name, gone, false)
	}
	// 3. Remove the chains and sets that go (or whose timeout changes).
	for _, ch := range gone {
		c.DelChain(b.chain(ch.Name))
	}
	for _, s := range setsGone {
		c.DelSet(&nftables.Set{Table: b.p.table, Name: s.Name})
	}
	// 4. Add the sets and chains that come, then fill the chains that
	// came or changed, then the map elements.
	for _, s := range setsCame {
		b.addSet(s)
	}
	for _, ch := range came {
		c.AddChain(b.chain(ch.Name))
	}
	for _, ch := range append(came, changed...) {
		b.rules(ch)
	}
	for _, m := range maps {
		_, come := diffElements(m.old, m.new)
		b.elements(m.name, come, true)
	}
	return b.err
}

func ruleEqual(a, b plan.Rule) bool {
	return a.SrcAddr == b.SrcAddr && a.SrcInSet == b.SrcInSet && a.SrcLocal == b.SrcLocal && a.Op == b.Op &&
		a.Chain == b.Chain && slices.Equal(a.Chains, b.Chains) && a.Set == b.Set && a.To == b.To && a.Proto == b.Proto
}

// diffElements are the elements of old that are not in new (or lead
// elsewhere), and those of new that are not in old (or lead elsewhere).
// Both lists are sorted by key.
func diffElements(old, new []plan.MapElement) (gone, come []plan.MapElement) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || i < len(old) && elementLess(old[i], new[j]):
			gone = append(gone, old[i])
			i++
		case i == len(old) || elementLess(new[j], old[i]):
			come = append(come, new[j])
			j++
		default:
			if old[i].Chain != new[j].Chain {
				gone, come = append(gone, old[i]), append(come, new[j])
			}
			i++
			j++
		}
	}
	return gone, come
}

func elementLess(a, b plan.MapElement) bool {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c < 0
	}
	if a.Proto != b.Proto {
		return a.Proto < b.Proto
	}
	return a.Port < b.Port
}

func (b *batch) addSet(s plan.AffinitySet) {
	b.fail(b.c.AddSet(&nftables.Set{
		Table: b.p.table, Name: s.Name, KeyType: nftables.TypeIPAddr,
		HasTimeout: true, Dynamic: true, Timeout: time.Duration(s.Timeout) * time.Second,
	}, nil))
}

// elements adds (or deletes) els to the map named name.
func (b *batch) elements(name string, els []plan.MapElement, add bool) {
	if len(els) == 0 {
		return
	}
	withAddr := name == mapServiceIPs || name == mapNoEndpointServices
	out := make([]nftables.SetElement, len(els))
	for i, e := range els {
		var key []byte
		if withAddr {
			a := e.Addr.As4()
			key = append(key, a[:]...)
		}
		key = append(key, byte(e.Proto), 0, 0, 0, byte(e.Port>>8), byte(e.Port), 0, 0)
		v := &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.Chain}
		if e.Chain == "" {
			v.Chain = chainReject
		}
		out[i] = nftables.SetElement{Key: key, VerdictData: v}
	}
	b.setElements(name, out, add)
}

// base adds the fixed chains.
func (b *batch) base() {
	c, t := b.c, b.p.table
	hooked := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio int32) *nftables.Chain {
		ch := c.AddChain(&nftables.Chain{Table: t, Name: name, Type: typ, Hooknum: hook, Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio))})
		b.chains[name] = ch
		return ch
	}
	for _, name := range []string{chainServices, chainMarkMasq, chainMasquerading, chainEndpointsCheck, chainReject} {
		c.AddChain(b.chain(name))
	}
	natPre := hooked("nat-prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, -100)
	natOut := hooked("nat-output", nftables.ChainTypeNAT, nftables.ChainHookOutput, -100)
	natPost := hooked("nat-postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, 100)
	filters := []*nftables.Chain{
		hooked("filter-input", nftables.ChainTypeFilter, nftables.ChainHookInput, -110),
		hooked("filter-forward", nftables.ChainTypeFilter, nftables.ChainHookForward, -110),
		hooked("filter-output", nftables.ChainTypeFilter, nftables.ChainHookOutput, -110),
	}
	add := func(ch *nftables.Chain, exprs ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	for _, ch := range []*nftables.Chain{natPre, natOut} {
		add(ch, verdict(expr.VerdictJump, chainServices))
	}
	add(natPost, verdict(expr.VerdictJump, chainMasquerading))
	for _, ch := range filters {
		add(ch, append(ctNew(), verdict(expr.VerdictJump, chainEndpointsCheck))...)
	}
	// services and endpoints-check: the ClusterIP map, then the NodePort
	// map for any of the node's addresses but loopback.
	for _, m := range [][2]string{{chainServices, mapServiceIPs}, {chainEndpointsCheck, mapNoEndpointServices}} {
		add(b.chain(m[0]), append(ipv4(), &expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
			&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 8, SetName: m[1], DestRegister: 0, IsDestRegSet: true})...)
	}
	for _, m := range [][2]string{{chainServices, mapNodePorts}, {chainEndpointsCheck, mapNoEndpointNodePorts}} {
		add(b.chain(m[0]), append(ipv4(),
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{127, 0, 0, 0}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
			&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 9, SetName: m[1], DestRegister: 0, IsDestRegSet: true})...)
	}
	mark := make([]byte, 4)
	binary.NativeEndian.PutUint32(mark, MasqueradeMark)
	zero := []byte{0, 0, 0, 0}
	// mark-for-masquerade: meta mark set meta mark | MARK
	add(b.chain(chainMarkMasq),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: invert(mark), Xor: mark},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	// masquerading: return unless marked; clear the mark; masquerade.
	add(b.chain(chainMasquerading),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mark, Xor: zero},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: zero},
		&expr.Verdict{Kind: expr.VerdictReturn})
	add(b.chain(chainMasquerading),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 255, 255}, Xor: mark},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	add(b.chain(chainMasquerading), &expr.Masq{FullyRandom: true})
	// reject-chain: TCP reset for TCP, ICMP port unreachable otherwise.
	add(b.chain(chainReject),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	add(b.chain(chainReject), &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH})
}

func invert(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[i] = ^b[i]
	}
	return out
}

// ipv4 matches IPv4 packets (meta nfproto ipv4), as the inet family needs
// before reading an IPv4 header.
func ipv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// ctNew matches the first packet of a connection.
func ctNew() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

func verdict(kind expr.VerdictKind, chain string) *expr.Verdict {
	return &expr.Verdict{Kind: kind, Chain: chain}
}

// rules adds the rules of ch, which exists (and is empty) in the batch.
func (b *batch) rules(ch *plan.Chain) {
	nch := b.chain(ch.Name)
	for _, r := range ch.Rules {
		var ex []expr.Any
		if r.SrcAddr.IsValid() {
			a := r.SrcAddr.As4()
			ex = append(ex, srcAddr(), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]})
		}
		if r.SrcInSet != "" {
			ex = append(ex, srcAddr(), &expr.Lookup{SourceRegister: 1, SetName: r.SrcInSet})
		}
		if r.SrcLocal {
			ex = append(ex, &expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
		}
		switch r.Op {
		case plan.OpMasquerade:
			ex = append(ex, verdict(expr.VerdictJump, chainMarkMasq))
		case plan.OpGoto:
			ex = append(ex, verdict(expr.VerdictGoto, r.Chain))
		case plan.OpDrop:
			ex = append(ex, &expr.Verdict{Kind: expr.VerdictDrop})
		case plan.OpRemember:
			ex = append(ex, srcAddr(), &expr.Dynset{SrcRegKey: 1, SetName: r.Set, Operation: unix.NFT_DYNSET_OP_UPDATE})
		case plan.OpDNAT:
			a := r.To.Addr().As4()
			ex = append(ex,
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(r.Proto)}},
				&expr.Immediate{Register: 1, Data: a[:]},
				&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(r.To.Port())},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true})
		case plan.OpPick:
			b.pick(nch, ex, r.Chains)
			continue
		default:
			b.fail(fmt.Errorf("chain %s: unknown rule op %d", ch.Name, r.Op))
			continue
		}
		b.c.AddRule(&nftables.Rule{Table: b.p.table, Chain: nch, Exprs: ex})
	}
}

func srcAddr() *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

// pick goes to one of chains, each with probability 1/N: the i-th of N
// rules goes to chains[i] when numgen random mod (N-i) is 0, the last
// always. One map lookup (kube-proxy's numgen random mod N vmap { ... })
// would be a single rule, but the kernel checks every element of a map
// each time it validates a rule that looks into it: an anonymous map per
// Service makes the kernel walk every set of the table to name and find
// each one, and one map shared by all Services is walked whole for each
// Service at every commit. Both made a full sync quadratic in the number
// of Services; these rules keep it linear.
func (b *batch) pick(ch *nftables.Chain, match []expr.Any, chains []string) {
	n := len(chains)
	for i, to := range chains {
		ex := slices.Clone(match)
		if i < n-1 {
			ex = append(ex,
				&expr.Numgen{Register: 1, Modulus: uint32(n - i), Type: unix.NFT_NG_RANDOM},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}})
		}
		ex = append(ex, verdict(expr.VerdictGoto, to))
		b.c.AddRule(&nftables.Rule{Table: b.p.table, Chain: ch, Exprs: ex})
	}
}
