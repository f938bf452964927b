package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the gossip port (TCP and UDP) when none is configured.
const DefaultPort = 7946

// KeySize is the size in bytes of a gossip encryption key (AES-256).
const KeySize = 32

// DefaultClusterName labels every packet when Config.ClusterName is empty.
const DefaultClusterName = "gitorch"

// Config says how a node takes part in the cluster. New checks it.
type Config struct {
	// NodeName is this node's name, unique in the cluster. Required.
	NodeName string
	// ClusterName labels every packet and stream (memberlist's Label, also
	// authenticated by the encryption), so that two clusters on one network
	// never merge. Empty means DefaultClusterName. At most 255 bytes.
	ClusterName string

	// BindAddr and BindPort are where the node listens, on both TCP and
	// UDP; the default is 0.0.0.0:7946.
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what the node tells its peers to
	// use; empty and 0 mean the bind address (or the first private address
	// when binding to 0.0.0.0) and the bind port.
	AdvertiseAddr string
	AdvertisePort int

	// Join lists peers to join, as HOST or HOST:PORT (the port defaults to
	// BindPort). It may name this node itself. Empty makes a cluster of one
	// that others can join.
	Join []string

	// Keys are the AES-256 keys (KeySize bytes each) of the gossip keyring:
	// the first encrypts, all are tried to decrypt, which lets a cluster
	// rotate its key without downtime. Required unless Insecure.
	Keys [][]byte
	// Insecure allows running without keys. Anyone who can reach the port
	// can then read the gossip and forge membership.
	Insecure bool

	// Meta is the node's initial metadata (see SetMeta).
	Meta Meta

	// Timing sets memberlist's intervals. The zero value means LANTiming().
	Timing Timing

	// Logger receives the package's logs and memberlist's (at debug level,
	// except refused peers, which are warnings). Nil discards them.
	Logger *slog.Logger

	// OnChange is called, from a goroutine of its own and never twice at
	// once, after membership, a member's metadata or any node's state
	// changed. Changes that happen while it runs are coalesced into one
	// more call. It must not block for long.
	OnChange func()

	// wrapTransport, when set (by this package's tests), wraps the network
	// transport, to drop or delay packets.
	wrapTransport func(memberlist.Transport) memberlist.Transport
}

// Timing holds memberlist's failure detection and dissemination intervals.
type Timing struct {
	// ProbeInterval is how often a random member is probed; ProbeTimeout
	// how long to wait for its ack before probing it indirectly.
	ProbeInterval, ProbeTimeout time.Duration
	// SuspicionMult scales how long a node stays suspect before it is
	// declared dead: SuspicionMult × max(1, log10(N)) × ProbeInterval at
	// the least, up to 6 times that when no other node confirms.
	SuspicionMult int
	// GossipInterval is how often queued messages go to GossipNodes random
	// members.
	GossipInterval time.Duration
	GossipNodes    int
	// RetransmitMult: each message is sent RetransmitMult × log10(N+1)
	// times by every node that relays it.
	RetransmitMult int
	// PushPullInterval is how often the full state (membership and every
	// node's state) is exchanged with one random member over TCP.
	PushPullInterval time.Duration
	// GossipToTheDead is how long memberlist keeps gossiping to a dead node
	// before forgetting it.
	GossipToTheDead time.Duration
	// TCPTimeout bounds a push/pull exchange.
	TCPTimeout time.Duration
	// Retain is how long Members keeps a dead or left node (and States its
	// last state) after the state began.
	Retain time.Duration
	// JoinBackoffMax caps the delay between join attempts.
	JoinBackoffMax time.Duration
}

// LANTiming is memberlist's LAN profile (DefaultLANConfig): probe every 1 s
// with a 500 ms timeout, suspicion multiplier 4, gossip every 200 ms to 3
// nodes; but push/pull every 10 s, not 30 s. Dead nodes are kept in Members for an hour.
func LANTiming() Timing {
	c := memberlist.DefaultLANConfig()
	return Timing{
		ProbeInterval:  c.ProbeInterval,
		ProbeTimeout:   c.ProbeTimeout,
		SuspicionMult:  c.SuspicionMult,
		GossipInterval: c.GossipInterval,
		GossipNodes:    c.GossipNodes,
		RetransmitMult: c.RetransmitMult,
		// memberlist's 30 s: a pod status whose broadcast missed a node
		// reaches it at the next full exchange. gitorch's state is small
		// (tens of bytes a pod), so it exchanges every 10 s.
		PushPullInterval: 10 * time.Second,
		GossipToTheDead:  c.GossipToTheDeadTime,
		TCPTimeout:       c.TCPTimeout,
		Retain:           time.Hour,
		JoinBackoffMax:   30 * time.Second,
	}
}

// LocalTiming is a fast profile for clusters inside one process or one
// machine (tests): probe every 200 ms, gossip every 20 ms, push/pull every
// 2 s. Too eager for a real network.
func LocalTiming() Timing {
	return Timing{
		ProbeInterval:    200 * time.Millisecond,
		ProbeTimeout:     100 * time.Millisecond,
		SuspicionMult:    3,
		GossipInterval:   20 * time.Millisecond,
		GossipNodes:      3,
		RetransmitMult:   4,
		PushPullInterval: 2 * time.Second,
		GossipToTheDead:  5 * time.Second,
		TCPTimeout:       2 * time.Second,
		Retain:           10 * time.Minute,
		JoinBackoffMax:   time.Second,
	}
}

// withDefaults fills the zero fields of t from LANTiming.
func (t Timing) withDefaults() Timing {
	d := LANTiming()
	set := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	set(&t.ProbeInterval, d.ProbeInterval)
	set(&t.ProbeTimeout, d.ProbeTimeout)
	set(&t.GossipInterval, d.GossipInterval)
	set(&t.PushPullInterval, d.PushPullInterval)
	set(&t.GossipToTheDead, d.GossipToTheDead)
	set(&t.TCPTimeout, d.TCPTimeout)
	set(&t.Retain, d.Retain)
	set(&t.JoinBackoffMax, d.JoinBackoffMax)
	if t.SuspicionMult <= 0 {
		t.SuspicionMult = d.SuspicionMult
	}
	if t.GossipNodes <= 0 {
		t.GossipNodes = d.GossipNodes
	}
	if t.RetransmitMult <= 0 {
		t.RetransmitMult = d.RetransmitMult
	}
	return t
}

// ErrNoKeys is returned by New when no key is configured and Insecure is
// not set.
var ErrNoKeys = errors.New("gossip: no encryption key configured (generate one with 'gitorch gossip keygen', or allow unencrypted gossip explicitly)")

func (c *Config) validate() error {
	if c.NodeName == "" {
		return errors.New("gossip: node name is required")
	}
	if len(c.NodeName) > maxNameLen {
		return fmt.Errorf("gossip: node name is %d bytes, the limit is %d", len(c.NodeName), maxNameLen)
	}
	if c.ClusterName == "" {
		c.ClusterName = DefaultClusterName
	}
	if len(c.ClusterName) > memberlist.LabelMaxSize {
		return fmt.Errorf("gossip: cluster name is %d bytes, the limit is %d", len(c.ClusterName), memberlist.LabelMaxSize)
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.BindPort == 0 {
		c.BindPort = DefaultPort
	}
	if c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return fmt.Errorf("gossip: port out of range (bind %d, advertise %d)", c.BindPort, c.AdvertisePort)
	}
	if c.AdvertiseAddr != "" {
		if _, err := netip.ParseAddr(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("gossip: advertise address %q is not an IP address", c.AdvertiseAddr)
		}
	}
	if len(c.Keys) == 0 && !c.Insecure {
		return ErrNoKeys
	}
	for i, k := range c.Keys {
		if len(k) != KeySize {
			return fmt.Errorf("gossip: key %d is %d bytes, want %d", i+1, len(k), KeySize)
		}
	}
	if _, err := encodeMeta(c.Meta); err != nil {
		return err
	}
	c.Timing = c.Timing.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
