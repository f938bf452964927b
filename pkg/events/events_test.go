package events

import (
	"fmt"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/plan"
)

func TestRingKeepsTheLastEvents(t *testing.T) {
	r := NewRing(3)
	for i := range 5 {
		r.Add(Event{Message: fmt.Sprint(i)})
	}
	got, _ := r.Events(0)
	if len(got) != 3 || got[0].Seq != 3 || got[2].Seq != 5 || got[0].Message != "2" {
		t.Fatalf("ring holds %+v, want events 3..5", got)
	}
	after, _ := r.Events(4)
	if len(after) != 1 || after[0].Seq != 5 {
		t.Fatalf("Events(4) = %+v, want event 5 alone", after)
	}
	if none, _ := r.Events(5); len(none) != 0 {
		t.Fatalf("Events(5) = %+v, want none", none)
	}
}

func TestRingSignalsTheNextEvent(t *testing.T) {
	r := NewRing(0)
	_, changed := r.Events(0)
	select {
	case <-changed:
		t.Fatal("signalled before any event")
	default:
	}
	r.Add(Event{})
	select {
	case <-changed:
	default:
		t.Fatal("not signalled after an event")
	}
}

func TestMergeOrdersByTimeThenNode(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := []Event{{Seq: 1, Node: "b", Time: t0}, {Seq: 2, Node: "b", Time: t0.Add(2 * time.Second)}}
	b := []Event{{Seq: 1, Node: "a", Time: t0}, {Seq: 2, Node: "a", Time: t0.Add(time.Second)}}
	got := Merge(a, b)
	want := []string{"a1", "b1", "a2", "b2"}
	for i, e := range got {
		if s := fmt.Sprintf("%s%d", e.Node, e.Seq); s != want[i] {
			t.Fatalf("merged order %v..., want %v", got, want)
		}
	}
}

func TestForPod(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	pod := func(cs ...plan.ContainerStatus) *plan.PodStatus {
		return &plan.PodStatus{Namespace: "default", Name: "web-1", Containers: cs}
	}
	running := plan.ContainerStatus{Name: "app", Image: "nginx", State: plan.StateRunning, StartedAt: t0, Ready: true}
	restarted := running
	restarted.StartedAt, restarted.Restarts = t1, 1
	restarted.LastTermination = &plan.Termination{Reason: plan.ReasonError, ExitCode: 2, FinishedAt: t1}
	oom := restarted
	oom.LastTermination = &plan.Termination{Reason: plan.ReasonOOMKilled, ExitCode: 137, FinishedAt: t1}
	crashLoop := plan.ContainerStatus{Name: "app", Image: "nginx", State: plan.StateWaiting, Reason: plan.ReasonCrashLoopBackOff,
		LastTermination: &plan.Termination{Reason: plan.ReasonError, ExitCode: 1, FinishedAt: t1}}
	exited := plan.ContainerStatus{Name: "app", State: plan.StateTerminated, Reason: plan.ReasonError, ExitCode: 1, FinishedAt: t1}
	pullFail := plan.ContainerStatus{Name: "app", Image: "nope:1", State: plan.StateWaiting, Reason: plan.ReasonErrImagePull, Message: "not found"}
	pullBack := pullFail
	pullBack.Reason = plan.ReasonImagePullBackOff
	unready := running
	unready.Ready = false
	for _, tc := range []struct {
		name     string
		old, cur *plan.PodStatus
		want     []string // Type/Reason
	}{
		{"a new running container started", nil, pod(running), []string{"Normal/Started"}},
		{"nothing changed, nothing told", pod(running), pod(running), nil},
		{"a restart after a crash is a failure and a start", pod(running), pod(restarted), []string{"Normal/Started", "Warning/Failed"}},
		{"an out-of-memory kill is told as such", pod(running), pod(oom), []string{"Normal/Started", "Warning/OOMKilled"}},
		{"an exit seen, then the back-off", pod(running), pod(exited), []string{"Warning/Failed"}},
		{"the exit already told is not told again", pod(exited), pod(crashLoop), []string{"Warning/BackOff"}},
		{"a failed pull", nil, pod(pullFail), []string{"Warning/Failed"}},
		{"a pull in back-off", pod(pullFail), pod(pullBack), []string{"Warning/BackOff"}},
		{"readiness lost is a failed probe", pod(running), pod(unready), []string{"Warning/Unhealthy"}},
		{"an adopted pod's past is not news", nil, pod(restarted), []string{"Normal/Started"}},
		{"a pod gone tells nothing here", pod(running), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range ForPod(tc.old, tc.cur) {
				got = append(got, e.Type+"/"+e.Reason)
				if e.Object != "Pod/default/web-1" || e.Message == "" {
					t.Errorf("event %+v: want object Pod/default/web-1 and a message", e)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
		})
	}
}

func BenchmarkRingAddFull(b *testing.B) {
	r := NewRing(DefaultSize)
	e := Event{Type: Warning, Reason: ReasonBackOff, Object: "Pod/default/web-1", Message: "Back-off restarting failed container app in pod web-1"}
	for range DefaultSize {
		r.Add(e)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Add(e)
	}
}

func BenchmarkRingEventsAll(b *testing.B) {
	r := NewRing(DefaultSize)
	for range DefaultSize {
		r.Add(Event{Message: "m"})
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Events(0)
	}
}
