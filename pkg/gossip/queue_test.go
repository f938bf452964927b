package gossip

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// msgOf is a message of n bytes named name, starting with tag.
func msgOf(name, tag string, n int) *broadcast {
	b := make([]byte, n)
	copy(b, tag)
	return &broadcast{name: name, msg: b}
}

// sentTags drains q, one packet of room bytes at a time, and counts how
// often each message was handed out, by its tag.
func sentTags(q *queue, room int, tags ...string) map[string]int {
	got := map[string]int{}
	for range 1000 {
		msgs := q.get(2, room)
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			for _, n := range tags {
				if string(m[:len(n)]) == n {
					got[n]++
				}
			}
		}
	}
	return got
}

func TestQueueLosesNoMessage(t *testing.T) {
	// The sequence that makes memberlist's TransmitLimitedQueue drop a
	// message: the only message queued is replaced (the queue is empty
	// for a moment), then more messages of the same length follow.
	q := newQueue(4, func() int { return 3 })
	limit := q.transmitLimit()
	q.add(msgOf("a", "a1", 100))
	q.add(msgOf("a", "a2", 100)) // a's newer state
	for _, n := range []string{"b", "c", "d", "e"} {
		q.add(msgOf(n, n, 100))
	}
	got := sentTags(q, 250, "a1", "a2", "b", "c", "d", "e")
	for _, n := range []string{"a2", "b", "c", "d", "e"} {
		if got[n] != limit {
			t.Errorf("%s sent %d times, want %d (all: %v)", n, got[n], limit, got)
		}
	}
	if got["a1"] != 0 {
		t.Errorf("the replaced message was sent %d times", got["a1"])
	}
}

func TestQueueReplacesByName(t *testing.T) {
	q := newQueue(4, func() int { return 3 })
	done := make(chan struct{})
	old := msgOf("x", "x1", 10)
	old.done = done
	q.add(old)
	q.add(msgOf("x", "x2", 12))
	select {
	case <-done:
	default:
		t.Fatal("a replaced message is not finished")
	}
	if q.len() != 1 {
		t.Fatalf("%d messages queued, want 1", q.len())
	}
	if m := q.get(2, 100); len(m) != 1 || len(m[0]) != 12 {
		t.Fatalf("got %d messages, want the newer one", len(m))
	}
}

func TestQueueSendsLeastSentFirstAndWhatFits(t *testing.T) {
	q := newQueue(1, func() int { return 3 }) // limit 1: one send each
	q.add(msgOf("big", "big", 300))
	q.add(msgOf("small", "small", 50))
	// 100 bytes of room: the big one does not fit and stays.
	if m := q.get(2, 100); len(m) != 1 || string(m[0][:5]) != "small" {
		t.Fatalf("got %d messages, want only the small one", len(m))
	}
	if q.len() != 1 {
		t.Fatalf("%d messages queued, want the big one left", q.len())
	}
	q = newQueue(4, func() int { return 3 })
	q.add(msgOf("first", "first", 50))
	q.get(2, 60) // first sent once
	q.add(msgOf("second", "second", 50))
	if m := q.get(2, 60); len(m) != 1 || string(m[0][:6]) != "second" {
		t.Fatalf("got %q, want the message sent fewer times first", m)
	}
}

// Random sequences of additions and packets: every message that was not
// replaced is sent exactly transmitLimit times, never more.
func TestQueueRandomSequences(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		q := newQueue(1+r.IntN(4), func() int { return 7 })
		limit := q.transmitLimit()
		live := map[string]*broadcast{} // name -> latest message
		sent := map[*byte]int{}
		var all []*broadcast
		for step := range 300 {
			if r.IntN(3) > 0 {
				name := fmt.Sprintf("m%d", r.IntN(12))
				b := msgOf(name, name, 20+r.IntN(3)*10)
				b.msg[len(b.msg)-1] = byte(step)
				live[b.name] = b
				all = append(all, b)
				q.add(b)
				continue
			}
			for _, m := range q.get(2, 20+r.IntN(200)) {
				sent[&m[0]]++
			}
		}
		for range 10_000 {
			msgs := q.get(2, 1400)
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				sent[&m[0]]++
			}
		}
		for _, b := range all {
			n := sent[&b.msg[0]]
			switch {
			case live[b.name] == b && n != limit:
				t.Fatalf("seed %d: message %s (latest) sent %d times, want %d", seed, b.name, n, limit)
			case n > limit:
				t.Fatalf("seed %d: message %s sent %d times, over the limit %d", seed, b.name, n, limit)
			}
		}
	}
}
