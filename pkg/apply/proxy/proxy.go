// Package proxy writes the Service proxy's rules into the kernel: nftables
// tables of family inet, through netlink (github.com/google/nftables; no
// nft binary). It carries out what plan.ProxyRules decides: the fixed part
// of the tables (hooks, the dispatch through verdict maps, masquerade,
// reject) is built here, the changing part is the plan.Ruleset it is given.
//
// The table "gitorch" holds what is the same for every Service: the
// refusal of Service ports without endpoints and the masquerade. The
// Services' chains are spread over the tables "gitorch-0", "gitorch-1", ...
// (plan.Ruleset.Shards of them), each with its own hooks and maps: the
// kernel checks every chain of a table at each commit that adds a rule or
// a verdict to it, so a sync that changes one Service costs what one table
// holds, not what the node holds.
//
// Every Sync is one netlink transaction, atomic in the kernel. The first
// Sync of a Proxy rebuilds all the tables (deleted and made again in that
// one transaction, so there is no moment without rules); later ones send
// only what changed since the last one that succeeded. Only the tables
// gitorch owns are ever read or written.
package proxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/gitorch/gitorch/pkg/plan"
)

// DefaultTable is the name of gitorch's fixed table, of family inet; the
// Services' tables are named after it (ShardTable).
const DefaultTable = "gitorch"

// MasqueradeMark is the packet mark bit that says "masquerade this in
// postrouting". It is gitorch's own bit, not kube-proxy's 0x4000.
const MasqueradeMark = 0x00400000

// ShardTable is the name of the table that holds the Services of shard i.
func ShardTable(table string, i int) string { return table + "-" + strconv.Itoa(i) }

// IsTable reports whether name is the fixed table or one of the Services'
// tables named after table.
func IsTable(table, name string) bool {
	if name == table {
		return true
	}
	rest, ok := strings.CutPrefix(name, table+"-")
	if !ok {
		return false
	}
	i, err := strconv.Atoi(rest)
	return err == nil && i >= 0 && i < plan.MaxProxyShards && strconv.Itoa(i) == rest
}

// Names of the fixed sets and chains.
const (
	mapServiceIPs          = "service-ips"
	mapNodePorts           = "service-nodeports"
	setNoEndpointServices  = "no-endpoint-services"
	setNoEndpointNodePorts = "no-endpoint-nodeports"
	setHairpin             = "hairpin"
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
	// Table is the name of the fixed inet table; DefaultTable when empty.
	Table string
}

// Proxy writes rulesets into its tables. Its methods are safe to call from
// several goroutines; syncs are serialised.
type Proxy struct {
	mu     sync.Mutex
	cfg    Config
	nsFile *os.File
	// applied is the ruleset of the last Sync that succeeded; nil until
	// then, and after a failure (the next Sync rebuilds the tables).
	applied *plan.Ruleset
	// nl is the netlink connection, kept from one Sync to the next:
	// closing a netlink socket costs the kernel milliseconds.
	nl *nftables.Conn
	// hairpin counts, for each endpoint address in set hairpin, the
	// Services of applied that have it.
	hairpin map[netip.Addr]int
}

// New returns a proxy for the tables cfg names. It touches nothing until
// the first Sync.
func New(cfg Config) (*Proxy, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	p := &Proxy{cfg: cfg}
	if cfg.NetNS != "" {
		f, err := os.Open(cfg.NetNS)
		if err != nil {
			return nil, fmt.Errorf("proxy: network namespace: %w", err)
		}
		p.nsFile = f
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
	ipIP        = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr)
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

// Sync makes the tables hold r, in one transaction: all of them on the
// first call (or after a failed one, or when the number of tables
// changes), the difference to the last ruleset otherwise. On error nothing
// of the transaction is applied.
func (p *Proxy) Sync(r plan.Ruleset) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.conn()
	if err != nil {
		return fmt.Errorf("proxy: netlink: %w", err)
	}
	if r.Shards < 1 || r.Shards > plan.MaxProxyShards {
		return fmt.Errorf("proxy: %d tables: want 1 to %d", r.Shards, plan.MaxProxyShards)
	}
	b := p.newBatch(c)
	full := p.applied == nil || p.applied.Shards != r.Shards
	if full {
		err = b.full(&r)
	} else {
		err = b.partial(p.applied, &r)
	}
	if err == nil {
		err = c.Flush()
	}
	if err != nil {
		p.applied, p.hairpin = nil, nil
		p.dropConn()
		return fmt.Errorf("proxy: sync tables inet %s: %w", p.cfg.Table, err)
	}
	p.applied = &r
	if full {
		p.hairpin = b.hairpin
	} else {
		for a, d := range b.hairpin {
			if n := p.hairpin[a] + d; n > 0 {
				p.hairpin[a] = n
			} else {
				delete(p.hairpin, a)
			}
		}
	}
	return nil
}

// Delete removes the tables, those there are.
func (p *Proxy) Delete() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.conn()
	if err != nil {
		return fmt.Errorf("proxy: netlink: %w", err)
	}
	p.newBatch(c).deleteTables()
	p.applied = nil
	if err := c.Flush(); err != nil {
		p.dropConn()
		return fmt.Errorf("proxy: delete tables inet %s: %w", p.cfg.Table, err)
	}
	return nil
}

// fixed is the index of the fixed table among a batch's tables; the
// Services' tables are 0, 1, ...
const fixed = -1

type chainKey struct {
	table int
	name  string
}

// batch is one transaction being built.
type batch struct {
	p      *Proxy
	c      *nftables.Conn
	tables map[int]*nftables.Table
	chains map[chainKey]*nftables.Chain
	sets   map[chainKey]*nftables.Set
	// hairpin: the counts of the hairpin addresses after a full sync, their
	// changes after a partial one.
	hairpin map[netip.Addr]int
	err     error
}

func (p *Proxy) newBatch(c *nftables.Conn) *batch {
	return &batch{p: p, c: c, tables: map[int]*nftables.Table{}, chains: map[chainKey]*nftables.Chain{},
		sets: map[chainKey]*nftables.Set{}, hairpin: map[netip.Addr]int{}}
}

// table is the fixed table (fixed) or the Services' table i.
func (b *batch) table(i int) *nftables.Table {
	t := b.tables[i]
	if t == nil {
		name := b.p.cfg.Table
		if i != fixed {
			name = ShardTable(name, i)
		}
		t = &nftables.Table{Family: nftables.TableFamilyINet, Name: name}
		b.tables[i] = t
	}
	return t
}

func (b *batch) chain(table int, name string) *nftables.Chain {
	k := chainKey{table, name}
	ch := b.chains[k]
	if ch == nil {
		ch = &nftables.Chain{Table: b.table(table), Name: name}
		b.chains[k] = ch
	}
	return ch
}

// set is one of the fixed maps and sets of a table, as the batch knows it.
func (b *batch) set(table int, name string) *nftables.Set {
	k := chainKey{table, name}
	s := b.sets[k]
	if s == nil {
		s = &nftables.Set{Table: b.table(table), Name: name, Concatenation: true}
		switch name {
		case mapServiceIPs:
			s.IsMap, s.KeyType, s.DataType = true, ipProtoPort, nftables.TypeVerdict
		case mapNodePorts:
			s.IsMap, s.KeyType, s.DataType = true, protoPort, nftables.TypeVerdict
		case setNoEndpointServices:
			s.KeyType = ipProtoPort
		case setNoEndpointNodePorts:
			s.KeyType = protoPort
		case setHairpin:
			s.KeyType = ipIP
		}
		b.sets[k] = s
	}
	return s
}

// setElements adds (or deletes) els in the set named name of table, in
// messages of a few hundred elements (a netlink message is at most 64 KiB).
func (b *batch) setElements(table int, name string, els []nftables.SetElement, add bool) {
	set := b.set(table, name)
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

func (b *batch) fail(err error) {
	if b.err == nil && err != nil {
		b.err = err
	}
}

// deleteTables deletes the fixed table and every table a Service can be
// in, those there are.
func (b *batch) deleteTables() {
	for i := fixed; i < plan.MaxProxyShards; i++ {
		t := b.table(i)
		b.c.AddTable(t) // so that the deletion finds one
		b.c.DelTable(t)
	}
}

// full deletes the tables and makes them again with r.
func (b *batch) full(r *plan.Ruleset) error {
	c := b.c
	b.deleteTables()
	c.AddTable(b.table(fixed))
	for _, name := range []string{setNoEndpointServices, setNoEndpointNodePorts, setHairpin} {
		b.fail(c.AddSet(b.set(fixed, name), nil))
	}
	b.fixedBase()
	for i := range r.Shards {
		c.AddTable(b.table(i))
		for _, name := range []string{mapServiceIPs, mapNodePorts} {
			b.fail(c.AddSet(b.set(i, name), nil))
		}
		b.shardBase(i)
	}
	for _, s := range r.Services {
		for _, set := range s.Sets {
			b.addSet(s.Shard, set)
		}
		for i := range s.Chains {
			c.AddChain(b.chain(s.Shard, s.Chains[i].Name))
		}
	}
	for _, s := range r.Services {
		for i := range s.Chains {
			b.rules(s.Shard, &s.Chains[i])
		}
	}
	b.allElements(r, func(s *plan.ServiceRules) [4][]plan.MapElement {
		return [4][]plan.MapElement{s.ServiceIPs, s.NodePorts, s.NoEndpointIPs, s.NoEndpointNodePorts}
	}, true)
	var hairpin []netip.Addr
	for _, s := range r.Services {
		for _, a := range s.Hairpin {
			if b.hairpin[a]++; b.hairpin[a] == 1 {
				hairpin = append(hairpin, a)
			}
		}
	}
	b.setElements(fixed, setHairpin, hairpinElements(hairpin), true)
	return b.err
}

// hairpinElements are the elements a . a of the set hairpin.
func hairpinElements(addrs []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(addrs))
	for _, a := range addrs {
		a4 := a.As4()
		out = append(out, nftables.SetElement{Key: append(a4[:], a4[:]...)})
	}
	return out
}

// allElements adds (or deletes) the elements of every Service's four
// kinds of element.
func (b *batch) allElements(r *plan.Ruleset, of func(*plan.ServiceRules) [4][]plan.MapElement, add bool) {
	var out elementsOut
	for _, s := range r.Services {
		out.gather(s.Shard, of(s))
	}
	b.writeElements(&out, add)
}

// elementsOut are the elements a transaction adds (or deletes), by set.
type elementsOut struct {
	// shards: service-ips and service-nodeports of each table.
	shards map[int]*[2][]nftables.SetElement
	// refused: no-endpoint-services and no-endpoint-nodeports.
	refused [2][]nftables.SetElement
}

// gather takes the ClusterIP, NodePort, refused ClusterIP and refused
// NodePort elements of a Service of table shard.
func (o *elementsOut) gather(shard int, els [4][]plan.MapElement) {
	if o.shards == nil {
		o.shards = map[int]*[2][]nftables.SetElement{}
	}
	ps := o.shards[shard]
	if ps == nil {
		ps = &[2][]nftables.SetElement{}
		o.shards[shard] = ps
	}
	ps[0] = appendElements(ps[0], els[0], true)
	ps[1] = appendElements(ps[1], els[1], false)
	o.refused[0] = appendElements(o.refused[0], els[2], true)
	o.refused[1] = appendElements(o.refused[1], els[3], false)
}

// writeElements adds (or deletes) what o gathered, in as few messages as
// there can be.
func (b *batch) writeElements(o *elementsOut, add bool) {
	for i, ps := range o.shards {
		b.setElements(i, mapServiceIPs, ps[0], add)
		b.setElements(i, mapNodePorts, ps[1], add)
	}
	b.setElements(fixed, setNoEndpointServices, o.refused[0], add)
	b.setElements(fixed, setNoEndpointNodePorts, o.refused[1], add)
}

// serviceDiff is what changed in one Service's rules.
type serviceDiff struct {
	shard                      int
	gone, came, changed        []*plan.Chain
	setsGone, setsCame         []plan.AffinitySet
	elementsGone, elementsCame [4][]plan.MapElement
	hairpinGone, hairpinCame   []netip.Addr
}

// partial sends what changed from old to r, which have as many tables.
func (b *batch) partial(old, r *plan.Ruleset) error {
	c := b.c
	// Both rulesets' Services are sorted: one merge finds what went, what
	// came and what changed; a Service whose rules were reused is skipped
	// without looking into it.
	var diffs []serviceDiff
	none := &plan.ServiceRules{}
	for i, j := 0, 0; i < len(old.Services) || j < len(r.Services); {
		var o, n *plan.ServiceRules
		switch {
		case i < len(old.Services) && j < len(r.Services) && old.Services[i] == r.Services[j]:
			// Reused: the same Service, unchanged, without reading its key.
			i++
			j++
			continue
		case j == len(r.Services) || i < len(old.Services) && old.Services[i].Service.Compare(r.Services[j].Service) < 0:
			o, n = old.Services[i], none
			i++
		case i == len(old.Services) || r.Services[j].Service.Compare(old.Services[i].Service) < 0:
			o, n = none, r.Services[j]
			j++
		default:
			o, n = old.Services[i], r.Services[j]
			i++
			j++
		}
		if o == n {
			continue
		}
		shard := n.Shard
		if n == none {
			shard = o.Shard
		}
		if d := diffService(o, n, shard); d != nil {
			diffs = append(diffs, *d)
		}
	}
	// 1. Empty the chains that change or go, so that nothing refers to
	// what is removed next.
	for _, d := range diffs {
		for _, ch := range append(slices.Clip(d.gone), d.changed...) {
			c.FlushChain(b.chain(d.shard, ch.Name))
		}
	}
	// The hairpin addresses no Service has any more go, those only new
	// Services have come.
	for _, d := range diffs {
		for _, a := range d.hairpinGone {
			b.hairpin[a]--
		}
		for _, a := range d.hairpinCame {
			b.hairpin[a]++
		}
	}
	var hairpinGone, hairpinCame []netip.Addr
	for a, delta := range b.hairpin {
		was := b.p.hairpin[a]
		switch now := was + delta; {
		case was > 0 && now <= 0:
			hairpinGone = append(hairpinGone, a)
		case was <= 0 && now > 0:
			hairpinCame = append(hairpinCame, a)
		}
	}
	// 2. Remove map and set elements that go or change.
	b.diffElements(diffs, false)
	b.setElements(fixed, setHairpin, hairpinElements(hairpinGone), false)
	// 3. Remove the chains and sets that go (or whose timeout changes).
	for _, d := range diffs {
		for _, ch := range d.gone {
			c.DelChain(b.chain(d.shard, ch.Name))
		}
		for _, s := range d.setsGone {
			c.DelSet(&nftables.Set{Table: b.table(d.shard), Name: s.Name})
		}
	}
	// 4. Add the sets and chains that come, then fill the chains that
	// came or changed, then the elements.
	for _, d := range diffs {
		for _, s := range d.setsCame {
			b.addSet(d.shard, s)
		}
		for _, ch := range d.came {
			c.AddChain(b.chain(d.shard, ch.Name))
		}
	}
	for _, d := range diffs {
		for _, ch := range append(slices.Clip(d.came), d.changed...) {
			b.rules(d.shard, ch)
		}
	}
	b.diffElements(diffs, true)
	b.setElements(fixed, setHairpin, hairpinElements(hairpinCame), true)
	return b.err
}

// diffElements deletes (or adds) the elements that go (come) in diffs.
func (b *batch) diffElements(diffs []serviceDiff, add bool) {
	var out elementsOut
	for _, d := range diffs {
		if add {
			out.gather(d.shard, d.elementsCame)
		} else {
			out.gather(d.shard, d.elementsGone)
		}
	}
	b.writeElements(&out, add)
}

// diffService is what changes from o to n (either may be empty), or nil
// when nothing does.
func diffService(o, n *plan.ServiceRules, shard int) *serviceDiff {
	d := &serviceDiff{shard: shard}
	// Chains and sets are sorted by name.
	for i, j := 0, 0; i < len(o.Chains) || j < len(n.Chains); {
		switch {
		case j == len(n.Chains) || i < len(o.Chains) && o.Chains[i].Name < n.Chains[j].Name:
			d.gone = append(d.gone, &o.Chains[i])
			i++
		case i == len(o.Chains) || n.Chains[j].Name < o.Chains[i].Name:
			d.came = append(d.came, &n.Chains[j])
			j++
		default:
			if !slices.EqualFunc(o.Chains[i].Rules, n.Chains[j].Rules, plan.Rule.Equal) {
				d.changed = append(d.changed, &n.Chains[j])
			}
			i++
			j++
		}
	}
	for i, j := 0, 0; i < len(o.Sets) || j < len(n.Sets); {
		switch {
		case j == len(n.Sets) || i < len(o.Sets) && o.Sets[i].Name < n.Sets[j].Name:
			d.setsGone = append(d.setsGone, o.Sets[i])
			i++
		case i == len(o.Sets) || n.Sets[j].Name < o.Sets[i].Name:
			d.setsCame = append(d.setsCame, n.Sets[j])
			j++
		default:
			if o.Sets[i].Timeout != n.Sets[j].Timeout {
				d.setsGone, d.setsCame = append(d.setsGone, o.Sets[i]), append(d.setsCame, n.Sets[j])
			}
			i++
			j++
		}
	}
	oe := [4][]plan.MapElement{o.ServiceIPs, o.NodePorts, o.NoEndpointIPs, o.NoEndpointNodePorts}
	ne := [4][]plan.MapElement{n.ServiceIPs, n.NodePorts, n.NoEndpointIPs, n.NoEndpointNodePorts}
	for i, j := 0, 0; i < len(o.Hairpin) || j < len(n.Hairpin); {
		switch {
		case j == len(n.Hairpin) || i < len(o.Hairpin) && o.Hairpin[i].Less(n.Hairpin[j]):
			d.hairpinGone = append(d.hairpinGone, o.Hairpin[i])
			i++
		case i == len(o.Hairpin) || n.Hairpin[j].Less(o.Hairpin[i]):
			d.hairpinCame = append(d.hairpinCame, n.Hairpin[j])
			j++
		default:
			i++
			j++
		}
	}
	changed := len(d.gone)+len(d.came)+len(d.changed)+len(d.setsGone)+len(d.setsCame)+len(d.hairpinGone)+len(d.hairpinCame) > 0
	for k := range oe {
		d.elementsGone[k], d.elementsCame[k] = elementsDiff(oe[k], ne[k])
		changed = changed || len(d.elementsGone[k])+len(d.elementsCame[k]) > 0
	}
	if !changed {
		return nil
	}
	return d
}

// elementsDiff are the elements of old that are not in new (or lead
// elsewhere), and those of new that are not in old (or lead elsewhere).
// Both lists are sorted by key.
func elementsDiff(old, new []plan.MapElement) (gone, come []plan.MapElement) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || i < len(old) && old[i].Compare(new[j]) < 0:
			gone = append(gone, old[i])
			i++
		case i == len(old) || new[j].Compare(old[i]) < 0:
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

func (b *batch) addSet(table int, s plan.AffinitySet) {
	b.fail(b.c.AddSet(&nftables.Set{
		Table: b.table(table), Name: s.Name, KeyType: nftables.TypeIPAddr,
		HasTimeout: true, Dynamic: true, Timeout: time.Duration(s.Timeout) * time.Second,
	}, nil))
}

// appendElements appends els as set elements: keyed addr . proto . port
// (withAddr) or proto . port, going to their chain (or, for the
// no-endpoint sets, with no verdict).
func appendElements(out []nftables.SetElement, els []plan.MapElement, withAddr bool) []nftables.SetElement {
	for _, e := range els {
		key := make([]byte, 0, 12)
		if withAddr {
			a := e.Addr.As4()
			key = append(key, a[:]...)
		}
		key = append(key, byte(e.Proto), 0, 0, 0, byte(e.Port>>8), byte(e.Port), 0, 0)
		el := nftables.SetElement{Key: key}
		if e.Chain != "" {
			el.VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.Chain}
		}
		out = append(out, el)
	}
	return out
}

func (b *batch) hooked(table int, name string, typ nftables.ChainType, hook *nftables.ChainHook, prio int32) *nftables.Chain {
	ch := b.c.AddChain(&nftables.Chain{Table: b.table(table), Name: name, Type: typ, Hooknum: hook, Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio))})
	b.chains[chainKey{table, name}] = ch
	return ch
}

func (b *batch) add(ch *nftables.Chain, exprs ...expr.Any) {
	b.c.AddRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: exprs})
}

// fixedBase adds the fixed table's chains: new connections to a Service
// port without endpoints are refused, marked traffic is masqueraded.
func (b *batch) fixedBase() {
	for _, name := range []string{chainMasquerading, chainEndpointsCheck, chainReject} {
		b.c.AddChain(b.chain(fixed, name))
	}
	natPost := b.hooked(fixed, "nat-postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, 100)
	filters := []*nftables.Chain{
		b.hooked(fixed, "filter-input", nftables.ChainTypeFilter, nftables.ChainHookInput, -110),
		b.hooked(fixed, "filter-forward", nftables.ChainTypeFilter, nftables.ChainHookForward, -110),
		b.hooked(fixed, "filter-output", nftables.ChainTypeFilter, nftables.ChainHookOutput, -110),
	}
	b.add(natPost, verdict(expr.VerdictJump, chainMasquerading))
	for _, ch := range filters {
		b.add(ch, append(ctNew(), verdict(expr.VerdictJump, chainEndpointsCheck))...)
	}
	// endpoints-check: the refused ClusterIP ports, then the refused
	// nodePorts on any of the node's addresses but loopback. Plain sets:
	// their elements hold no verdict, and changing them makes the kernel
	// check nothing at commit.
	check := b.chain(fixed, chainEndpointsCheck)
	b.add(check, append(ipv4(), &expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
		&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 8, SetName: setNoEndpointServices},
		verdict(expr.VerdictGoto, chainReject))...)
	b.add(check, append(ipv4(), append(localNotLoopback(),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
		&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 9, SetName: setNoEndpointNodePorts},
		verdict(expr.VerdictGoto, chainReject))...)...)
	mark := make([]byte, 4)
	binary.NativeEndian.PutUint32(mark, MasqueradeMark)
	zero := []byte{0, 0, 0, 0}
	// masquerading: an endpoint DNATed to itself (ip saddr . ip daddr
	// @hairpin) is masqueraded; other traffic returns unless marked; the
	// mark is cleared; masquerade.
	masq := b.chain(fixed, chainMasquerading)
	b.add(masq, append(ipv4(),
		&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 8, SetName: setHairpin},
		&expr.Masq{FullyRandom: true})...)
	b.add(masq,
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mark, Xor: zero},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: zero},
		&expr.Verdict{Kind: expr.VerdictReturn})
	b.add(masq,
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 255, 255}, Xor: mark},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	b.add(masq, &expr.Masq{FullyRandom: true})
	// reject-chain: TCP reset for TCP, ICMP port unreachable otherwise.
	reject := b.chain(fixed, chainReject)
	b.add(reject,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	b.add(reject, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH})
}

// shardBase adds the fixed chains of the Services' table i: new
// connections are looked up in its ClusterIP map, then (by protocol and
// port only: the external chains check the address) in its NodePort map.
func (b *batch) shardBase(i int) {
	for _, name := range []string{chainServices, chainMarkMasq} {
		b.c.AddChain(b.chain(i, name))
	}
	for _, ch := range []*nftables.Chain{
		b.hooked(i, "nat-prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, -100),
		b.hooked(i, "nat-output", nftables.ChainTypeNAT, nftables.ChainHookOutput, -100),
	} {
		b.add(ch, verdict(expr.VerdictJump, chainServices))
	}
	services := b.chain(i, chainServices)
	b.add(services, append(ipv4(), &expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
		&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 8, SetName: mapServiceIPs, DestRegister: 0, IsDestRegSet: true})...)
	b.add(services, append(ipv4(),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
		&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 9, SetName: mapNodePorts, DestRegister: 0, IsDestRegSet: true})...)
	mark := make([]byte, 4)
	binary.NativeEndian.PutUint32(mark, MasqueradeMark)
	// mark-for-masquerade: meta mark set meta mark | MARK
	b.add(b.chain(i, chainMarkMasq),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: invert(mark), Xor: mark},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
}

// localNotLoopback matches packets addressed to one of the node's own
// addresses but loopback's.
func localNotLoopback() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{127, 0, 0, 0}},
	}
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

// rules adds the rules of ch, which exists (and is empty) in table.
func (b *batch) rules(table int, ch *plan.Chain) {
	nch := b.chain(table, ch.Name)
	for _, r := range ch.Rules {
		var ex []expr.Any
		if r.SrcInSet != "" {
			ex = append(ex, srcAddr(), &expr.Lookup{SourceRegister: 1, SetName: r.SrcInSet})
		}
		if r.SrcLocal {
			ex = append(ex, &expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
		}
		if r.DstNotLocal {
			ex = append(ex, &expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
		}
		if r.DstLoopback {
			ex = append(ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127, 0, 0, 0}})
		}
		if r.RandomMod > 0 {
			ex = append(ex,
				&expr.Numgen{Register: 1, Modulus: r.RandomMod, Type: unix.NFT_NG_RANDOM},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}})
		}
		switch r.Op {
		case plan.OpMasquerade:
			ex = append(ex, verdict(expr.VerdictJump, chainMarkMasq))
		case plan.OpGoto:
			ex = append(ex, verdict(expr.VerdictGoto, r.Chain))
		case plan.OpDrop:
			ex = append(ex, &expr.Verdict{Kind: expr.VerdictDrop})
		case plan.OpReturn:
			ex = append(ex, &expr.Verdict{Kind: expr.VerdictReturn})
		case plan.OpDNAT:
			a := r.To.Addr().As4()
			ex = append(ex,
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(r.Proto)}})
			if r.Remember != "" {
				ex = append(ex, srcAddr(), &expr.Dynset{SrcRegKey: 1, SetName: r.Remember, Operation: unix.NFT_DYNSET_OP_UPDATE})
			}
			ex = append(ex,
				&expr.Immediate{Register: 1, Data: a[:]},
				&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(r.To.Port())},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true})
		default:
			b.fail(fmt.Errorf("chain %s: unknown rule op %d", ch.Name, r.Op))
			continue
		}
		b.c.AddRule(&nftables.Rule{Table: nch.Table, Chain: nch, Exprs: ex})
	}
}

func srcAddr() *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}
