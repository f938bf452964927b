// Package events owns the events a node records of what happened to it,
// the way kubectl get events shows them: a bounded ring of recent events,
// their types and reasons, the pure function that reads the events of a
// pod out of two successive statuses, and the merge of several nodes'
// lists. It does no I/O and reads no clock: times are given.
package events

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Types of events, as Kubernetes has them.
const (
	Normal  = "Normal"
	Warning = "Warning"
)

// Reasons, in kubectl's words where Kubernetes has one.
const (
	ReasonStarted   = "Started"   // a container started
	ReasonKilling   = "Killing"   // a container or pod is stopped
	ReasonBackOff   = "BackOff"   // a crashed container, or an image pull, waits to be retried
	ReasonOOMKilled = "OOMKilled" // a container ran out of memory
	ReasonFailed    = "Failed"    // an image pull or a container creation failed
	ReasonUnhealthy = "Unhealthy" // a probe failed
	// Revisions.
	ReasonApplied = "Applied" // a revision was validated and runs
	ReasonRefused = "Refused" // a revision was refused; the last good one keeps running
	// Nodes, from the membership this node sees.
	ReasonJoined  = "NodeJoined"
	ReasonSuspect = "NodeSuspect"
	ReasonDead    = "NodeDead"
	ReasonLeft    = "NodeLeft"
	ReasonAlive   = "NodeAlive" // a suspect or dead node answers again
	// ReasonWebhook: a webhook delivery was received.
	ReasonWebhook = "WebhookReceived"
)

// Event is one thing that happened on a node.
type Event struct {
	// Seq orders the events of one node (1 for its first); it is what
	// a follower asks for events after.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Node is the node that recorded the event.
	Node   string `json:"node"`
	Type   string `json:"type"`
	Reason string `json:"reason"`
	// Object is what the event is about: Pod/NAMESPACE/NAME, Node/NAME,
	// Revision/SHA or Webhook/PROVIDER.
	Object  string `json:"object"`
	Message string `json:"message"`
}

// Objects of events.
func Pod(namespace, name string) string { return "Pod/" + namespace + "/" + name }
func Node(name string) string           { return "Node/" + name }
func Revision(commit string) string     { return "Revision/" + commit }
func Webhook(provider string) string    { return "Webhook/" + provider }

// DefaultSize is how many events a node keeps unless told.
const DefaultSize = 1000

// Ring keeps the last events of a node; the oldest are forgotten first.
// It is safe for concurrent use.
type Ring struct {
	mu      sync.Mutex
	buf     []Event // in order of Seq, at most size
	size    int
	seq     uint64
	changed chan struct{}
}

// NewRing keeps the last size events (DefaultSize when size ≤ 0).
func NewRing(size int) *Ring {
	if size <= 0 {
		size = DefaultSize
	}
	return &Ring{size: size, changed: make(chan struct{})}
}

// Add records e, numbering it, and returns it as recorded.
func (r *Ring) Add(e Event) Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	e.Seq = r.seq
	if len(r.buf) == r.size {
		// Shift rather than wrap: the ring is small and read in order far
		// more often than written.
		copy(r.buf, r.buf[1:])
		r.buf = r.buf[:len(r.buf)-1]
	}
	r.buf = append(r.buf, e)
	close(r.changed)
	r.changed = make(chan struct{})
	return e
}

// Events returns the events numbered above seq, oldest first (all of them
// for 0), and a channel closed when the next event is added.
func (r *Ring) Events(seq uint64) ([]Event, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, _ := slices.BinarySearchFunc(r.buf, seq+1, func(e Event, s uint64) int { return cmp.Compare(e.Seq, s) })
	return slices.Clone(r.buf[i:]), r.changed
}

// Merge sorts the events of several nodes into one list by time (then
// node and sequence, so that the order is the same on every call).
func Merge(lists ...[]Event) []Event {
	var out []Event
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortStableFunc(out, func(a, b Event) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	return out
}

// List is the answer of GET /v1/events: the events, and the nodes whose
// events are missing from it because they did not answer.
type List struct {
	Events      []Event       `json:"events"`
	Unreachable []Unreachable `json:"unreachable,omitempty"`
}

// Unreachable is a node that was asked for its events and did not give
// them.
type Unreachable struct {
	Node  string `json:"node"`
	Error string `json:"error"`
}
