package applytest

import (
	"sync"

	"github.com/gitorch/gitorch/pkg/plan"
)

// FakeProxy records the rulesets it is given, as the agent's Service proxy
// would write them, for fast tests of what drives the proxy. It keeps the
// real one's rule that a failed sync writes nothing.
type FakeProxy struct {
	mu    sync.Mutex
	last  plan.Ruleset
	syncs int
	fail  error
}

// Sync implements node.Proxy.
func (f *FakeProxy) Sync(r plan.Ruleset) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.last = r
	f.syncs++
	return nil
}

// Fail makes the following syncs fail with err (nil: succeed again).
func (f *FakeProxy) Fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// Ruleset is the last ruleset written, and how many syncs succeeded.
func (f *FakeProxy) Ruleset() (plan.Ruleset, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last, f.syncs
}
