package gossip

import (
	"cmp"
	"math"
	"slices"
	"sync"
)

// queue holds the state messages waiting to be piggybacked on memberlist's
// gossip, each sent a limited number of times (RetransmitMult ×
// ceil(log10(N+1)), as memberlist sends its own), the least sent first and,
// among those, the newest first. A message replaces the queued one of the
// same name (a newer state of the same node, pod or header).
//
// It does what memberlist's TransmitLimitedQueue does, without its fault:
// that queue keeps its messages in a B-tree ordered by (transmits, length,
// id) and resets the id counter whenever it is empty for a moment (when a
// message replaces the only one queued, or when the only one is being
// sent), after which a new message can get the id of one still queued; two
// messages of the same length and the same transmit count then compare
// equal and the newer silently replaces the older, which is never sent
// (hashicorp/memberlist#263, #322, still so in v0.7.0). A node's state
// messages all have about the same length, so a pod status change was lost
// that way, on every peer at once, until the next push/pull.
type queue struct {
	numNodes func() int
	mult     int

	mu     sync.Mutex
	seq    uint64
	byName map[string]*queued
}

type queued struct {
	b         *broadcast
	transmits int
	seq       uint64 // order of queueing, to send the newest first
}

func newQueue(mult int, numNodes func() int) *queue {
	return &queue{numNodes: numNodes, mult: mult, byName: map[string]*queued{}}
}

// add queues b, replacing (and finishing) the message of the same name.
func (q *queue) add(b *broadcast) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if old := q.byName[b.name]; old != nil {
		old.b.Finished()
	}
	q.seq++
	q.byName[b.name] = &queued{b: b, seq: q.seq}
}

// len is the number of messages queued.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.byName)
}

// transmitLimit is how many times each message is sent (memberlist's
// retransmitLimit).
func (q *queue) transmitLimit() int {
	n := max(q.numNodes(), 1)
	return q.mult * int(math.Ceil(math.Log10(float64(n+1))))
}

// get returns messages to send in one packet, each costing overhead bytes
// besides its length, at most limit bytes in all; those sent their last
// time leave the queue.
func (q *queue) get(overhead, limit int) [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.byName) == 0 {
		return nil
	}
	// Order by transmits, then newest first. The queue is small (a node's
	// changes since the last few gossip rounds, and those it relays), so
	// sorting on each call is cheap.
	items := make([]*queued, 0, len(q.byName))
	for _, it := range q.byName {
		items = append(items, it)
	}
	sortQueued(items)
	limitTx := q.transmitLimit()
	var out [][]byte
	free := limit
	for _, it := range items {
		if free < overhead+1 {
			break
		}
		n := overhead + len(it.b.msg)
		if n > free {
			continue
		}
		free -= n
		out = append(out, it.b.msg)
		it.transmits++
		if it.transmits >= limitTx {
			delete(q.byName, it.b.name)
			it.b.Finished()
		}
	}
	return out
}

func sortQueued(items []*queued) {
	slices.SortFunc(items, func(a, b *queued) int {
		return cmp.Or(cmp.Compare(a.transmits, b.transmits), cmp.Compare(b.seq, a.seq))
	})
}
