package plan

import (
	"slices"
	"testing"
	"time"
)

func member(name string, st MemberState, since time.Duration) Member {
	return Member{Node: Node{Name: name}, State: st, Since: t0.Add(since)}
}

func nodeNames(nodes []Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

var policy = MembershipPolicy{DeadGrace: 3 * time.Second, RejoinSettle: 30 * time.Second}

func TestEligible(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []Member
		hist    MemberHistory
		at      time.Duration
		want    []string
		wake    time.Duration // 0: none
	}{
		{"alive and suspect take pods", []Member{member("a", MemberAlive, 0), member("b", MemberSuspect, 0), member("self", MemberAlive, 0)}, nil, 10 * time.Second, []string{"a", "b", "self"}, 0},
		{"a dead member keeps its pods through the grace", []Member{member("a", MemberDead, 0), member("self", MemberAlive, 0)}, nil, 2 * time.Second, []string{"a", "self"}, 3 * time.Second},
		{"a dead member loses them after the grace", []Member{member("a", MemberDead, 0), member("self", MemberAlive, 0)}, nil, 3 * time.Second, []string{"self"}, 0},
		{"a member that left loses them at once", []Member{member("a", MemberLeft, 0), member("self", MemberAlive, 0)}, nil, 0, []string{"self"}, 0},
		{"an excluded member settles before it gets pods", []Member{member("a", MemberAlive, 0), member("self", MemberAlive, 0)}, MemberHistory{"a": {Excluded: true, UpSince: t0}}, 29 * time.Second, []string{"self"}, 30 * time.Second},
		{"and gets them once settled", []Member{member("a", MemberAlive, 0), member("self", MemberAlive, 0)}, MemberHistory{"a": {Excluded: true, UpSince: t0}}, 30 * time.Second, []string{"a", "self"}, 0},
		{"self is always eligible", []Member{member("self", MemberAlive, 0)}, MemberHistory{"self": {Excluded: true}}, 0, []string{"self"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Eligible(tc.members, "self", tc.hist, policy, t0.Add(tc.at))
			if !slices.Equal(nodeNames(got.Nodes), tc.want) {
				t.Fatalf("nodes %v, want %v", nodeNames(got.Nodes), tc.want)
			}
			var wantWake time.Time
			if tc.wake != 0 {
				wantWake = t0.Add(tc.wake)
			}
			if !got.Wake.Equal(wantWake) {
				t.Fatalf("wake %v, want %v", got.Wake, wantWake)
			}
		})
	}
}

// A member that flaps (dies past the grace, comes back, dies again)
// gets pods only after it stayed up for the settle time in one go.
func TestFlappingMemberGetsNoPodsUntilItSettles(t *testing.T) {
	self := member("self", MemberAlive, 0)
	var hist MemberHistory
	step := func(st MemberState, since, at time.Duration) []string {
		m := Eligible([]Member{member("a", st, since), self}, "self", hist, policy, t0.Add(at))
		hist = m.History
		return nodeNames(m.Nodes)
	}
	if got := step(MemberAlive, 0, 0); !slices.Equal(got, []string{"a", "self"}) {
		t.Fatalf("new member: %v", got)
	}
	step(MemberDead, 10*time.Second, 10*time.Second)
	if got := step(MemberDead, 10*time.Second, 14*time.Second); !slices.Equal(got, []string{"self"}) {
		t.Fatalf("dead past the grace: %v", got)
	}
	for cycle := range 5 {
		base := time.Duration(20+cycle*20) * time.Second
		if got := step(MemberAlive, base, base); !slices.Equal(got, []string{"self"}) {
			t.Fatalf("cycle %d: back up: %v", cycle, got)
		}
		if got := step(MemberAlive, base, base+10*time.Second); !slices.Equal(got, []string{"self"}) {
			t.Fatalf("cycle %d: up 10 s: %v", cycle, got)
		}
		step(MemberDead, base+11*time.Second, base+11*time.Second)
	}
	step(MemberAlive, 200*time.Second, 200*time.Second)
	if got := step(MemberAlive, 200*time.Second, 230*time.Second); !slices.Equal(got, []string{"a", "self"}) {
		t.Fatalf("settled: %v", got)
	}
}

// A restart within the grace moves nothing: dead for a moment, then alive.
func TestQuickRestartKeepsThePods(t *testing.T) {
	self := member("self", MemberAlive, 0)
	m := Eligible([]Member{member("a", MemberDead, 0), self}, "self", nil, policy, t0.Add(time.Second))
	m = Eligible([]Member{member("a", MemberAlive, 2*time.Second), self}, "self", m.History, policy, t0.Add(2*time.Second))
	if !slices.Equal(nodeNames(m.Nodes), []string{"a", "self"}) {
		t.Fatalf("nodes %v", nodeNames(m.Nodes))
	}
}

func TestQuorum(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []Member
		hist    MemberHistory
		want    bool
	}{
		{"all alive", []Member{member("a", MemberAlive, 0), member("b", MemberAlive, 0), member("c", MemberAlive, 0)}, nil, true},
		{"one of three dead", []Member{member("a", MemberAlive, 0), member("b", MemberAlive, 0), member("c", MemberDead, 0)}, nil, true},
		{"cut off from two of three", []Member{member("a", MemberAlive, 0), member("b", MemberDead, 0), member("c", MemberDead, 0)}, nil, false},
		{"suspects count as seen", []Member{member("a", MemberAlive, 0), member("b", MemberSuspect, 0), member("c", MemberDead, 0)}, nil, true},
		{"two of four is no majority", []Member{member("a", MemberAlive, 0), member("b", MemberAlive, 0), member("c", MemberDead, 0), member("d", MemberDead, 0)}, nil, false},
		{"members that left do not count", []Member{member("a", MemberAlive, 0), member("b", MemberLeft, 0), member("c", MemberLeft, 0)}, nil, true},
		{"members gossip forgot still count", []Member{member("a", MemberAlive, 0)}, MemberHistory{"b": {}, "c": {}}, false},
		{"unless they left", []Member{member("a", MemberAlive, 0)}, MemberHistory{"b": {Left: true}}, true},
		{"a member dead within its grace is not lost yet", []Member{member("a", MemberAlive, 0), member("b", MemberDead, 9*time.Second), member("c", MemberDead, 9*time.Second)}, nil, true},
	} {
		if got := Quorum(tc.members, tc.hist, 3*time.Second, t0, t0.Add(10*time.Second)); got != tc.want {
			t.Errorf("%s: quorum %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A node restarted while its peers are still being joined does not think
// it lost the cluster: the members it remembers count as seen for the
// grace after its start.
func TestQuorumAfterARestart(t *testing.T) {
	hist := MemberHistory{"a": {}, "b": {}, "c": {}}
	self := []Member{member("a", MemberAlive, 0)}
	if !Quorum(self, hist, 3*time.Second, t0, t0.Add(time.Second)) {
		t.Fatal("no quorum a second after the start")
	}
	if Quorum(self, hist, 3*time.Second, t0, t0.Add(3*time.Second)) {
		t.Fatal("quorum with the peers still unseen after the grace")
	}
}

func TestRejoining(t *testing.T) {
	hist := MemberHistory{"a": {}, "b": {}, "c": {Left: true}}
	self := []Member{member("a", MemberAlive, 0)}
	all := append(self, member("b", MemberAlive, 0))
	end := t0.Add(2 * time.Second)
	for _, tc := range []struct {
		name    string
		members []Member
		hist    MemberHistory
		at      time.Duration
		want    time.Time
	}{
		{"alone, a remembered peer not back yet: wait", self, hist, time.Second, end},
		{"the peer is back: go on", all, hist, time.Second, time.Time{}},
		{"past the grace: go on alone", self, hist, 2 * time.Second, time.Time{}},
		{"a peer that left is not waited for", self, MemberHistory{"c": {Left: true}}, time.Second, time.Time{}},
		{"a first start knows nobody", self, nil, 0, time.Time{}},
	} {
		if got := Rejoining(tc.members, "a", tc.hist, t0, 2*time.Second, t0.Add(tc.at)); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
