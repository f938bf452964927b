package plan

import (
	"slices"
	"time"
)

// PeerPod is what another node reports of one of its pods.
type PeerPod struct {
	Ready        bool
	TemplateHash string
	// Held: the peer holds the pod and never started it (ReasonHeld).
	Held bool
}

// Peer is another node as Handoff sees it: its membership and the pods it
// reports running (or starting).
type Peer struct {
	Member
	Pods map[Key]PeerPod
}

// HandoffPolicy is how pods change hands.
type HandoffPolicy struct {
	// Fence: a dead node's StatefulSet pods start elsewhere only DeadGrace
	// plus Fence plus the pod's grace period after it was declared dead. A
	// node cut off from the majority stops them once it declared the
	// others dead and DeadGrace passed (Quorum), which takes it about as
	// long as the others took to declare it dead: Fence is the margin for
	// that difference, and the stop takes at most the grace period.
	Fence     time.Duration
	DeadGrace time.Duration
	// Settle: a node that lost quorum and regained it starts no
	// StatefulSet pod for this long after, while its view of the others
	// catches up (the members' RejoinSettle).
	Settle time.Duration
}

// Handoff is what Handoff decides.
type Handoff struct {
	// Share is the node's share with the pods it keeps while they move,
	// and holds on the StatefulSet pods it may not start yet.
	Share NodeShare
	// Released are the moving pods the node stops now.
	Released []Key
	// Wake is when a hold ends without any event; zero when only an
	// event can change the decision.
	Wake time.Time
}

// HandOff adjusts a node's share (from NodePods) for pods that change
// nodes, so that a move never costs availability and a StatefulSet pod
// never runs twice:
//
//   - a pod moving away (Leaving) keeps running here until its new node
//     reports it ready with the same template (make-before-break); a
//     StatefulSet pod is released at once (break-before-make);
//   - a StatefulSet pod placed here is held while another node may still
//     run it: one that is alive or suspect and reports it, or one that
//     reports it and died less than DeadGrace plus Fence plus the pod's
//     grace period ago. A pod the peer reports held (never started) counts
//     too: the peer may not have heard of this node yet, still place the
//     pod on itself, and start it once its own hold ends. It stops
//     reporting it as soon as its placement moves the pod away;
//   - without quorum (the node sees no majority of the members it knows)
//     every StatefulSet pod of the node is released: the node may be the
//     one cut off, and the majority will start them once fenced;
//   - for Settle after it regained quorum (regained; zero if it never lost
//     it), the node holds its StatefulSet pods: what it knows of the
//     others may be from before the partition.
func HandOff(share NodeShare, peers []Peer, quorum bool, regained time.Time, p HandoffPolicy, now time.Time) Handoff {
	out := Handoff{Share: NodeShare{Revision: share.Revision, Unplaceable: share.Unplaceable, Placement: share.Placement, Pods: map[Key]*DesiredPod{}}}
	wake := func(t time.Time) {
		if out.Wake.IsZero() || t.Before(out.Wake) {
			out.Wake = t
		}
	}
	byName := map[string]*Peer{}
	for i := range peers {
		byName[peers[i].Name] = &peers[i]
	}
	for k, d := range share.Leaving {
		if d.StatefulSet() || readyOn(byName[d.MovingTo], k, d.TemplateHash) {
			out.Released = append(out.Released, k)
			continue
		}
		out.Share.Pods[k] = d
	}
	for k, d := range share.Pods {
		if !d.StatefulSet() {
			out.Share.Pods[k] = d
			continue
		}
		if !quorum {
			out.Released = append(out.Released, k)
			continue
		}
		if until := regained.Add(p.Settle); !regained.IsZero() && now.Before(until) {
			held := *d
			held.Hold = "quorum regained: waiting for news of the other nodes"
			out.Share.Pods[k] = &held
			wake(until)
			continue
		}
		if reason, until := runsElsewhere(peers, k, GracePeriod(d.Pod), p.DeadGrace+p.Fence, now); reason != "" {
			held := *d
			held.Hold = reason
			out.Share.Pods[k] = &held
			if !until.IsZero() {
				wake(until)
			}
			continue
		}
		out.Share.Pods[k] = d
	}
	slices.SortFunc(out.Released, Key.Compare)
	return out
}

func readyOn(peer *Peer, k Key, hash string) bool {
	if peer == nil || (peer.State != MemberAlive && peer.State != MemberSuspect) {
		return false
	}
	p, ok := peer.Pods[k]
	return ok && p.Ready && p.TemplateHash == hash
}

// runsElsewhere says why pod k may still run on another node, and until
// when that holds without news (zero: until the peer reports otherwise).
func runsElsewhere(peers []Peer, k Key, grace, fence time.Duration, now time.Time) (string, time.Time) {
	for _, peer := range peers {
		if _, ok := peer.Pods[k]; !ok {
			continue
		}
		switch peer.State {
		case MemberAlive, MemberSuspect:
			if peer.Pods[k].Held {
				return "waiting for " + peer.Name + " to drop it (held there, not started)", time.Time{}
			}
			return "waiting for " + peer.Name + " to stop it", time.Time{}
		case MemberDead:
			if until := peer.Since.Add(fence + grace); now.Before(until) {
				return "waiting for the fence of dead node " + peer.Name, until
			}
		}
	}
	return "", time.Time{}
}
