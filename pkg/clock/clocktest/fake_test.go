package clocktest

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestTimersFireInOrderWhenDue(t *testing.T) {
	c := New(t0)
	late, early := c.NewTimer(2*time.Second), c.NewTimer(time.Second)
	fired := make(chan string, 2)
	c.AfterFunc(1500*time.Millisecond, func() { fired <- "func" })
	c.Advance(999 * time.Millisecond)
	select {
	case <-early.C():
		t.Fatal("timer fired early")
	default:
	}
	c.Advance(time.Millisecond)
	if at := <-early.C(); !at.Equal(t0.Add(time.Second)) {
		t.Fatalf("fired at %v", at)
	}
	c.Advance(time.Second)
	<-late.C()
	if got := <-fired; got != "func" {
		t.Fatal(got)
	}
	if c.Timers() != 0 {
		t.Fatalf("%d timers left", c.Timers())
	}
	if !c.Now().Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("now %v", c.Now())
	}
}

func TestStopResetAndTicker(t *testing.T) {
	c := New(t0)
	tm := c.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}
	c.Advance(2 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	tm.Reset(time.Second)
	c.Advance(time.Second)
	<-tm.C()
	tk := c.NewTicker(time.Second)
	for i := 0; i < 3; i++ {
		c.Advance(time.Second)
		<-tk.C()
	}
	tk.Stop()
	if c.Timers() != 0 {
		t.Fatalf("%d timers left", c.Timers())
	}
}
