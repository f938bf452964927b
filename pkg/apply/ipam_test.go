package apply

import (
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
)

func TestIPAMHandsOutEachAddressOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.json")
	a, err := OpenIPAM(path, netip.MustParsePrefix("10.244.0.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	// A /29 has 8 addresses: network .0, gateway .1, broadcast .7, and
	// .2 to .6 for pods.
	seen := map[netip.Addr]string{}
	for _, key := range []string{"a", "b", "c", "d", "e"} {
		ip, err := a.Allocate(key)
		if err != nil {
			t.Fatalf("allocate %s: %v", key, err)
		}
		if other, dup := seen[ip]; dup {
			t.Fatalf("%s and %s both got %s", other, key, ip)
		}
		if !a.Prefix().Contains(ip) || ip == a.Gateway() || ip == netip.MustParseAddr("10.244.0.7") || ip == netip.MustParseAddr("10.244.0.0") {
			t.Fatalf("%s got reserved or foreign address %s", key, ip)
		}
		seen[ip] = key
	}
	if _, err := a.Allocate("f"); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("sixth allocation: err = %v, want ErrPoolExhausted", err)
	}
	again, err := a.Allocate("c")
	if err != nil || seen[again] != "c" {
		t.Fatalf("allocate c again = %s, %v; want its own address back", again, err)
	}
}

func TestIPAMSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.json")
	prefix := netip.MustParsePrefix("10.244.1.0/24")
	a, err := OpenIPAM(path, prefix)
	if err != nil {
		t.Fatal(err)
	}
	ipA, _ := a.Allocate("pod-a")
	ipB, _ := a.Allocate("pod-b")
	if err := a.Release("pod-a"); err != nil {
		t.Fatal(err)
	}

	b, err := OpenIPAM(path, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := b.Lookup("pod-b"); !ok || got != ipB {
		t.Fatalf("after reopen pod-b = %s %v, want %s", got, ok, ipB)
	}
	if _, ok := b.Lookup("pod-a"); ok {
		t.Fatal("released pod-a still holds an address after reopen")
	}
	ipC, err := b.Allocate("pod-c")
	if err != nil {
		t.Fatal(err)
	}
	if ipC == ipB || ipC == ipA {
		t.Fatalf("pod-c got %s, already handed out (a=%s b=%s)", ipC, ipA, ipB)
	}
}

func TestIPAMRefusesAnotherCIDR(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.json")
	if _, err := OpenIPAM(path, netip.MustParsePrefix("10.244.1.0/24")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenIPAM(path, netip.MustParsePrefix("10.244.2.0/24")); err == nil {
		t.Fatal("reopening with another pod CIDR succeeded")
	}
}

func TestIPAMWrapsAroundToFreedAddresses(t *testing.T) {
	a, err := OpenIPAM(filepath.Join(t.TempDir(), "ipam.json"), netip.MustParsePrefix("10.244.0.0/30"))
	if err != nil {
		t.Fatal(err)
	}
	// A /30 holds exactly one pod address, .2.
	ip, err := a.Allocate("x")
	if err != nil || ip != netip.MustParseAddr("10.244.0.2") {
		t.Fatalf("allocate x = %s, %v", ip, err)
	}
	if _, err := a.Allocate("y"); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("allocate y: %v, want exhausted", err)
	}
	if err := a.Release("x"); err != nil {
		t.Fatal(err)
	}
	if ip, err := a.Allocate("y"); err != nil || ip != netip.MustParseAddr("10.244.0.2") {
		t.Fatalf("allocate y after release = %s, %v", ip, err)
	}
}
