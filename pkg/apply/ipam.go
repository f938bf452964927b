package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrPoolExhausted is returned when every address of the pod CIDR is in use.
var ErrPoolExhausted = errors.New("pod CIDR exhausted")

// IPAM hands out the addresses of a node's pod CIDR, one per pod, and
// keeps its state in a file so that no address is handed out twice across
// restarts of gitorch. The network address, the gateway (the first host
// address, on the bridge) and the broadcast address are never handed out.
//
// Addresses are handed out round-robin from the last one given, so that an
// address freed by a deleted pod is not reused at once by the next pod
// (connections to the old pod then fail instead of reaching a stranger).
type IPAM struct {
	path   string
	prefix netip.Prefix

	mu    sync.Mutex
	state ipamState
}

type ipamState struct {
	CIDR string `json:"cidr"`
	// Last is the address most recently handed out.
	Last string `json:"last,omitempty"`
	// Allocations maps a pod key to its address.
	Allocations map[string]string `json:"allocations"`
}

// OpenIPAM loads the allocator's state from path (creating it if missing)
// for the IPv4 pod CIDR prefix. The file must have been written for the
// same CIDR: changing a node's pod CIDR under running pods is refused.
func OpenIPAM(path string, prefix netip.Prefix) (*IPAM, error) {
	prefix = prefix.Masked()
	if !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return nil, fmt.Errorf("pod CIDR %s: need an IPv4 prefix of /30 or larger", prefix)
	}
	a := &IPAM{path: path, prefix: prefix, state: ipamState{CIDR: prefix.String(), Allocations: map[string]string{}}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		return a, a.save()
	case err != nil:
		return nil, err
	}
	var st ipamState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.CIDR != prefix.String() {
		return nil, fmt.Errorf("%s was written for pod CIDR %s, not %s", path, st.CIDR, prefix)
	}
	if st.Allocations == nil {
		st.Allocations = map[string]string{}
	}
	a.state = st
	return a, nil
}

// Prefix is the pod CIDR.
func (a *IPAM) Prefix() netip.Prefix { return a.prefix }

// Gateway is the address the node's bridge holds: the first host address.
func (a *IPAM) Gateway() netip.Addr { return a.prefix.Addr().Next() }

// Allocate returns key's address, handing out a new one if key has none.
// The allocation is on disk (fsync'd) before Allocate returns.
func (a *IPAM) Allocate(key string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.state.Allocations[key]; ok {
		return netip.ParseAddr(s)
	}
	used := map[netip.Addr]bool{}
	for _, s := range a.state.Allocations {
		if ip, err := netip.ParseAddr(s); err == nil {
			used[ip] = true
		}
	}
	first := a.Gateway().Next()
	last := lastAddr(a.prefix).Prev() // the broadcast address is not handed out
	start := first
	if l, err := netip.ParseAddr(a.state.Last); err == nil && a.prefix.Contains(l) && l.Less(last) && !l.Less(first) {
		start = l.Next()
	}
	ip := start
	for {
		if !used[ip] {
			break
		}
		if ip == last {
			ip = first
		} else {
			ip = ip.Next()
		}
		if ip == start {
			return netip.Addr{}, fmt.Errorf("%w: %s has no free address", ErrPoolExhausted, a.prefix)
		}
	}
	prev := a.state.Last
	a.state.Allocations[key] = ip.String()
	a.state.Last = ip.String()
	if err := a.save(); err != nil {
		delete(a.state.Allocations, key)
		a.state.Last = prev
		return netip.Addr{}, err
	}
	return ip, nil
}

// Lookup returns key's address, if it has one.
func (a *IPAM) Lookup(key string) (netip.Addr, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.state.Allocations[key]
	if !ok {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(s)
	return ip, err == nil
}

// Release frees key's address. Releasing a key with no address is not an
// error.
func (a *IPAM) Release(key string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.state.Allocations[key]
	if !ok {
		return nil
	}
	delete(a.state.Allocations, key)
	if err := a.save(); err != nil {
		a.state.Allocations[key] = s
		return err
	}
	return nil
}

// Keys returns the keys that hold an address, sorted.
func (a *IPAM) Keys() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	keys := make([]string, 0, len(a.state.Allocations))
	for k := range a.state.Allocations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (a *IPAM) save() error {
	b, err := json.MarshalIndent(a.state, "", "  ")
	if err != nil {
		return err
	}
	return writeFileSync(a.path, b, 0o600)
}

// lastAddr is the highest address of p (its broadcast address for IPv4).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// writeFileSync replaces path with data atomically and durably: a
// temporary file is written and fsync'd, renamed over path, and the
// directory fsync'd, so a crash leaves either the old or the new content.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}
