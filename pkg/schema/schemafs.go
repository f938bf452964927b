package schema

import (
	"io/fs"
	"sync"

	"github.com/gitorch/gitorch/schemas"
)

// schemaFS holds the CUE definitions documents are checked against. Tests
// may set another tree; it must be of a comparable type (compiled
// validators and the Cache's version are tied to the tree by ==).
var schemaFS fs.FS = schemas.FS

// validators keeps compiled schemas between calls of Load: compiling them
// costs more than validating a small tree.
var validators validatorPool

// validatorUses bounds how many documents one validator checks before it is
// dropped: a cue.Context keeps what was built in it, so a long-running
// daemon must not use one forever.
const validatorUses = 20000

type validatorPool struct {
	mu   sync.Mutex
	idle []*validator
}

func (p *validatorPool) get() (*validator, error) {
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		v := p.idle[n-1]
		p.idle = p.idle[:n-1]
		if v.schemas == schemaFS {
			p.mu.Unlock()
			return v, nil
		}
	}
	p.mu.Unlock()
	return newValidator(schemaFS)
}

func (p *validatorPool) put(v *validator) {
	if v.uses >= validatorUses {
		return
	}
	p.mu.Lock()
	p.idle = append(p.idle, v)
	p.mu.Unlock()
}
