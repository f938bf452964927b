package plan

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func desired(name, workload, movingTo string) *DesiredPod {
	grace := int64(30)
	return &DesiredPod{
		Pod:          &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace}},
		Workload:     workload,
		TemplateHash: "h1",
		MovingTo:     movingTo,
	}
}

func peer(name string, st MemberState, since time.Duration, pods map[string]PeerPod) Peer {
	p := Peer{Member: member(name, st, since), Pods: map[Key]PeerPod{}}
	for n, pp := range pods {
		p.Pods[Key{"default", n}] = pp
	}
	return p
}

func keyNames(keys []Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Name)
	}
	return out
}

func TestHandOff(t *testing.T) {
	fence := HandoffPolicy{Fence: 12 * time.Second, DeadGrace: 3 * time.Second, Settle: 30 * time.Second}
	for _, tc := range []struct {
		name     string
		pods     []*DesiredPod
		leaving  []*DesiredPod
		peers    []Peer
		quorum   bool
		at       time.Duration
		kept     []string
		held     []string
		released []string
		wake     time.Duration
		regained time.Duration // 0: quorum never lost
		reason   string        // the hold of the held pods, if set
	}{
		{name: "a moving pod stays until ready on its new node",
			leaving: []*DesiredPod{desired("web-1", "Deployment/web", "b")},
			peers:   []Peer{peer("b", MemberAlive, 0, map[string]PeerPod{"web-1": {Ready: false, TemplateHash: "h1"}})},
			quorum:  true, kept: []string{"web-1"}},
		{name: "and is released once it is",
			leaving: []*DesiredPod{desired("web-1", "Deployment/web", "b")},
			peers:   []Peer{peer("b", MemberAlive, 0, map[string]PeerPod{"web-1": {Ready: true, TemplateHash: "h1"}})},
			quorum:  true, released: []string{"web-1"}},
		{name: "ready with another template does not count",
			leaving: []*DesiredPod{desired("web-1", "Deployment/web", "b")},
			peers:   []Peer{peer("b", MemberAlive, 0, map[string]PeerPod{"web-1": {Ready: true, TemplateHash: "h0"}})},
			quorum:  true, kept: []string{"web-1"}},
		{name: "a dead node's report does not count",
			leaving: []*DesiredPod{desired("web-1", "Deployment/web", "b")},
			peers:   []Peer{peer("b", MemberDead, 0, map[string]PeerPod{"web-1": {Ready: true, TemplateHash: "h1"}})},
			quorum:  true, kept: []string{"web-1"}},
		{name: "a StatefulSet pod moves break-before-make",
			leaving: []*DesiredPod{desired("db-0", "StatefulSet/db", "b")},
			quorum:  true, released: []string{"db-0"}},
		{name: "a StatefulSet pod another live node reports is held",
			pods:   []*DesiredPod{desired("db-0", "StatefulSet/db", "")},
			peers:  []Peer{peer("b", MemberAlive, 0, map[string]PeerPod{"db-0": {}})},
			quorum: true, held: []string{"db-0"}},
		{name: "a StatefulSet pod another live node reports held is held too: that node may not have heard of this one, and start it",
			pods:   []*DesiredPod{desired("db-1", "StatefulSet/db", "")},
			peers:  []Peer{peer("b", MemberAlive, 0, map[string]PeerPod{"db-1": {Held: true, TemplateHash: "h1"}})},
			quorum: true, held: []string{"db-1"}, reason: "waiting for b to drop it (held there, not started)"},
		{name: "the same from a suspect node",
			pods:   []*DesiredPod{desired("db-1", "StatefulSet/db", "")},
			peers:  []Peer{peer("b", MemberSuspect, 0, map[string]PeerPod{"db-1": {Held: true}})},
			quorum: true, held: []string{"db-1"}, reason: "waiting for b to drop it (held there, not started)"},
		{name: "once that node drops it from its reports, it starts",
			pods:   []*DesiredPod{desired("db-1", "StatefulSet/db", "")},
			peers:  []Peer{peer("b", MemberAlive, 0, map[string]PeerPod{"db-0": {Ready: true}})},
			quorum: true, kept: []string{"db-1"}},
		{name: "a dead node's held report waits for the fence as any other: it may have started it since",
			pods:   []*DesiredPod{desired("db-1", "StatefulSet/db", "")},
			peers:  []Peer{peer("b", MemberDead, 0, map[string]PeerPod{"db-1": {Held: true}})},
			quorum: true, at: 44 * time.Second, held: []string{"db-1"}, wake: 45 * time.Second, reason: "waiting for the fence of dead node b"},
		{name: "a live node that reports it started waits for it to stop",
			pods:   []*DesiredPod{desired("db-1", "StatefulSet/db", "")},
			peers:  []Peer{peer("b", MemberAlive, 0, map[string]PeerPod{"db-1": {}})},
			quorum: true, held: []string{"db-1"}, reason: "waiting for b to stop it"},
		{name: "and one a dead node reports until the fence and grace pass",
			pods:   []*DesiredPod{desired("db-0", "StatefulSet/db", "")},
			peers:  []Peer{peer("b", MemberDead, 0, map[string]PeerPod{"db-0": {}})},
			quorum: true, at: 44 * time.Second, held: []string{"db-0"}, wake: 45 * time.Second},
		{name: "then it starts",
			pods:   []*DesiredPod{desired("db-0", "StatefulSet/db", "")},
			peers:  []Peer{peer("b", MemberDead, 0, map[string]PeerPod{"db-0": {}})},
			quorum: true, at: 45 * time.Second, kept: []string{"db-0"}},
		{name: "a node that left stopped its pods",
			pods:   []*DesiredPod{desired("db-0", "StatefulSet/db", "")},
			peers:  []Peer{peer("b", MemberLeft, 0, map[string]PeerPod{"db-0": {}})},
			quorum: true, kept: []string{"db-0"}},
		{name: "after quorum came back, StatefulSet pods wait for the settle time",
			pods:   []*DesiredPod{desired("db-0", "StatefulSet/db", ""), desired("web-1", "Deployment/web", "")},
			quorum: true, regained: 10 * time.Second, at: 20 * time.Second, kept: []string{"web-1"}, held: []string{"db-0"}, wake: 40 * time.Second},
		{name: "then start",
			pods:   []*DesiredPod{desired("db-0", "StatefulSet/db", "")},
			quorum: true, regained: 10 * time.Second, at: 40 * time.Second, kept: []string{"db-0"}},
		{name: "without quorum StatefulSet pods stop, others stay",
			pods:   []*DesiredPod{desired("db-0", "StatefulSet/db", ""), desired("web-1", "Deployment/web", "")},
			quorum: false, kept: []string{"web-1"}, released: []string{"db-0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			share := NodeShare{Pods: map[Key]*DesiredPod{}, Leaving: map[Key]*DesiredPod{}}
			for _, d := range tc.pods {
				share.Pods[d.Key()] = d
			}
			for _, d := range tc.leaving {
				share.Leaving[d.Key()] = d
			}
			var regained time.Time
			if tc.regained != 0 {
				regained = t0.Add(tc.regained)
			}
			h := HandOff(share, tc.peers, tc.quorum, regained, fence, t0.Add(tc.at))
			var kept, held []string
			for k, d := range h.Share.Pods {
				if d.Hold != "" {
					held = append(held, k.Name)
					if tc.reason != "" && d.Hold != tc.reason {
						t.Errorf("%s held for %q, want %q", k.Name, d.Hold, tc.reason)
					}
				} else {
					kept = append(kept, k.Name)
				}
			}
			slices.Sort(kept)
			slices.Sort(held)
			if !slices.Equal(kept, tc.kept) || !slices.Equal(held, tc.held) || !slices.Equal(keyNames(h.Released), tc.released) {
				t.Fatalf("kept %v held %v released %v; want %v %v %v", kept, held, keyNames(h.Released), tc.kept, tc.held, tc.released)
			}
			var wantWake time.Time
			if tc.wake != 0 {
				wantWake = t0.Add(tc.wake)
			}
			if !h.Wake.Equal(wantWake) {
				t.Fatalf("wake %v, want %v", h.Wake, wantWake)
			}
			for _, d := range tc.pods {
				if d.Hold != "" {
					t.Fatal("HandOff modified its input")
				}
			}
		})
	}
}

func TestHeldPodDoesNotStart(t *testing.T) {
	pod := testPod(corev1.RestartPolicyAlways, nil, "app")
	pod.Hold = "waiting for b to stop it"
	d := DecidePod(pod, nil, PodMemory{}, nil, testBackoff, t0)
	if len(d.Actions) != 0 || d.Status.Reason != ReasonHeld || d.Status.Message != pod.Hold {
		t.Fatalf("actions %v status %s/%s", actions(d), d.Status.Reason, d.Status.Message)
	}
	// A held pod that runs keeps running.
	d = DecidePod(pod, observedPod(running("app", 0)), PodMemory{}, nil, testBackoff, t0)
	if len(d.Actions) != 0 || d.Status.Phase != PhaseRunning {
		t.Fatalf("running held pod: actions %v phase %s", actions(d), d.Status.Phase)
	}
}
