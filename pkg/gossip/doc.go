// Package gossip is the cluster's membership and state exchange, on
// hashicorp/memberlist. It knows nothing about containers: the daemon gives
// it this node's metadata and state, and reads the members and every
// node's state back.
//
//	g, err := gossip.New(gossip.Config{NodeName: "n1", Keys: keys, Join: peers, Meta: meta, OnChange: wake})
//	err = g.Start(ctx)            // binds the port; joins in the background
//	g.SetLocalState(state)        // this node's revision and pods
//	g.Members(); g.States()       // the cluster as seen from here
//	g.Leave(5 * time.Second); g.Shutdown()
//
// Membership. Members lists every node known here with its state (alive,
// suspect, dead, left) and when that state began, so that the caller can
// wait out a grace after a death and a settle time after a rejoin.
// memberlist announces deaths and rejoins but neither suspicions nor
// refutations: a member is shown suspect from when this node's probes of it
// failed until memberlist reports it dead or alive, it answers a ping or a
// probe, or the longest suspicion memberlist can hold has passed without a
// death (so it refuted). Suspect is never a reason to move pods. Dead and
// left members stay listed for Timing.Retain (an hour with LANTiming).
// OnChange is called, coalesced, on every change of membership, metadata or
// state. Start joins cfg.Join in the background, retrying with back-off for
// as long as no other member is alive, so nodes may start in any order and
// Join may name the node itself.
//
// Security. Gossip is encrypted (AES-GCM) with a keyring built from
// Config.Keys: the first key encrypts, all decrypt, so a key is rotated by
// adding the new key second everywhere, then moving it first, then
// removing the old one. New refuses to run without keys unless Insecure.
// The cluster name is memberlist's label, sent in front of every packet and
// authenticated by the encryption: a node with another cluster name or a
// wrong key is never a member, and the refusal is logged as a warning with
// the peer's address.
//
// Metadata (Meta: API address, pod CIDR, labels, allocatable resources,
// revision) is encoded in a compact binary form that must fit in
// memberlist's 512 bytes (SetMeta returns ErrMetaTooLarge beyond). A node
// whose pod CIDR overlaps an alive member's is refused, both when its alive
// message arrives and when it tries to join (merge).
//
// State. Every node's NodeState reaches every node: a change is sent at
// once (the whole state when it fits in a packet, else one message per
// changed pod), straight to every member and by gossip, relayed by each
// node that found it new; the full state of all nodes is exchanged by
// memberlist's periodic push/pull. The gossip queue is this package's own
// (queue.go says why not memberlist's). Versions
// start at the wall clock in nanoseconds when the process starts and grow
// by one per change, so old messages never overwrite new ones and a
// restarted node is not ignored; see state.go for how deletions propagate.
// Messages from the network are decoded by bounded, fuzzed decoders.
//
// Mass restarts. memberlist can keep a restarted node dead in a peer's view
// when the peer holds it dead at a higher incarnation than the new process
// announces (hashicorp/memberlist#311). A member held dead whose state
// still arrives with new versions is synced with directly, which makes it
// refute its death.
package gossip
