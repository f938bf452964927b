package plan

import (
	"slices"
	"time"
)

// MemberState is what gossip says of a member.
type MemberState string

// The states of a member, as memberlist has them.
const (
	MemberAlive   MemberState = "alive"
	MemberSuspect MemberState = "suspect"
	MemberDead    MemberState = "dead"
	MemberLeft    MemberState = "left"
)

// Member is one node of the cluster as gossip reports it.
type Member struct {
	Node
	State MemberState
	// Since is when this node saw the member enter State.
	Since time.Time
}

// MembershipPolicy is how placement follows membership.
type MembershipPolicy struct {
	// DeadGrace: a dead member keeps its pods (nobody else starts them)
	// until it has been dead this long, so that an agent restarted within
	// it moves nothing.
	DeadGrace time.Duration
	// RejoinSettle: a member that lost its pods (dead past the grace, or
	// left) gets pods again only after it has been up this long, so that
	// a flapping node does not make pods bounce.
	RejoinSettle time.Duration
}

// MemberRecord is what a node remembers of a member between passes.
type MemberRecord struct {
	// Excluded: the member lost its pods and has not settled since.
	Excluded bool `json:"excluded,omitempty"`
	// UpSince is when an excluded member was last seen coming back up.
	UpSince time.Time `json:"upSince,omitzero"`
	// Left: the member left gracefully; it no longer counts for Quorum.
	Left bool `json:"left,omitempty"`
}

// MemberHistory is a node's memory of the membership, by member name:
// every member it has seen, also those gossip has since forgotten (a
// dead member is reaped after a while), so that Quorum still counts them.
// The agent keeps it on disk.
type MemberHistory map[string]MemberRecord

// Membership is what Eligible decides.
type Membership struct {
	// Nodes are the members placement uses, sorted by name.
	Nodes []Node
	// History to keep for the next pass.
	History MemberHistory
	// Wake is when the decision may change without a membership event
	// (a grace or a settle time ends); zero when only an event can.
	Wake time.Time
	// Waiting are members that are up but still settling, with the time
	// they get pods again.
	Waiting map[string]time.Time
}

// Eligible decides which members take pods, from what gossip reports
// (members), what this node remembered (hist) and the time. It is the
// same rule on every node; nodes may disagree for as long as their
// gossip views differ (a second or two), which make-before-break moves
// (Handoff) absorb.
//
//   - alive and suspect members take pods: a suspect one may be alive,
//     and a suspicion that is refuted must not move anything;
//   - a dead member keeps its pods until it has been dead for DeadGrace
//     (an agent restarting within it moves nothing), then loses them;
//   - a member that left loses its pods at once;
//   - a member that lost its pods takes pods again only once it has been
//     up (alive or suspect) for RejoinSettle without dying again.
//
// self is always eligible: a node never schedules itself out.
func Eligible(members []Member, self string, hist MemberHistory, p MembershipPolicy, now time.Time) Membership {
	out := Membership{History: MemberHistory{}, Waiting: map[string]time.Time{}}
	for name, rec := range hist {
		out.History[name] = rec // members gossip no longer reports
	}
	wake := func(t time.Time) {
		if out.Wake.IsZero() || t.Before(out.Wake) {
			out.Wake = t
		}
	}
	for _, m := range members {
		rec := hist[m.Name]
		rec.Left = false
		eligible := false
		switch {
		case m.Name == self:
			rec, eligible = MemberRecord{}, true
		case m.State == MemberAlive || m.State == MemberSuspect:
			if !rec.Excluded {
				eligible = true
				break
			}
			if rec.UpSince.IsZero() {
				rec.UpSince = now
			}
			if settled := rec.UpSince.Add(p.RejoinSettle); !now.Before(settled) {
				rec, eligible = MemberRecord{}, true
			} else {
				out.Waiting[m.Name] = settled
				wake(settled)
			}
		case m.State == MemberDead:
			rec.UpSince = time.Time{}
			if rec.Excluded {
				break
			}
			if end := m.Since.Add(p.DeadGrace); now.Before(end) {
				eligible = true
				wake(end)
			} else {
				rec.Excluded = true
			}
		default: // left
			rec = MemberRecord{Excluded: true, Left: true}
		}
		out.History[m.Name] = rec
		if eligible {
			out.Nodes = append(out.Nodes, m.Node)
		}
	}
	slices.SortFunc(out.Nodes, func(a, b Node) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Quorum reports whether a node sees a majority of the members it knows:
// those gossip reports and those its history remembers, but for members
// gone by a graceful leave. Dead members count, since a node cannot tell
// a dead member from one on the far side of a partition. Seen are the
// alive and suspect ones, itself among them, and those dead for less than
// grace (as in Eligible, a member is not lost before its grace ends). A
// member the history remembers but gossip does not report (yet, after a
// restart of this node) counts as dead since start.
func Quorum(members []Member, hist MemberHistory, grace time.Duration, start, now time.Time) bool {
	known, seen := 0, 0
	reported := map[string]bool{}
	for _, m := range members {
		reported[m.Name] = true
		switch {
		case m.State == MemberLeft:
			continue
		case m.State == MemberAlive, m.State == MemberSuspect:
			seen++
		case m.State == MemberDead && now.Before(m.Since.Add(grace)):
			seen++
		}
		known++
	}
	for name, rec := range hist {
		if reported[name] || rec.Left {
			continue
		}
		known++
		if now.Before(start.Add(grace)) {
			seen++
		}
	}
	return 2*seen > known
}

// Rejoining says until when a node started at start, whose view of the
// cluster is members, should touch no pod: while members its history
// remembers (but for those that left) are not back in its view, for at
// most grace after its start. It may be alone only because it has not
// rejoined yet: taking that for a partition would stop its StatefulSet
// pods, taking it for a cluster of one would start pods others run. Zero
// when it need not wait.
func Rejoining(members []Member, self string, hist MemberHistory, start time.Time, grace time.Duration, now time.Time) time.Time {
	end := start.Add(grace)
	if !now.Before(end) {
		return time.Time{}
	}
	reported := map[string]bool{}
	for _, m := range members {
		reported[m.Name] = true
	}
	for name, rec := range hist {
		if name != self && !rec.Left && !reported[name] {
			return end
		}
	}
	return time.Time{}
}
