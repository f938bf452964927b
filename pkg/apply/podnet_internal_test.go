package apply

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func TestIntervalElements(t *testing.T) {
	tests := []struct {
		name     string
		prefixes []string
		want     []string // start, or end) for an interval end
	}{
		{"one prefix", []string{"10.88.1.0/24"}, []string{"10.88.1.0", "10.88.2.0)"}},
		{"sorted, whatever the order", []string{"10.96.0.0/12", "10.88.1.0/24"},
			[]string{"10.88.1.0", "10.88.2.0)", "10.96.0.0", "10.112.0.0)"}},
		{"a prefix held by another is left out", []string{"10.100.0.0/24", "10.96.0.0/12", "10.96.0.0/16"},
			[]string{"10.96.0.0", "10.112.0.0)"}},
		{"the end of the address space has no end element", []string{"255.255.255.0/24"}, []string{"255.255.255.0"}},
		{"everything", []string{"0.0.0.0/0", "10.0.0.0/8"}, []string{"0.0.0.0"}},
		{"IPv6 is left out", []string{"fd00::/64", "10.88.1.0/24"}, []string{"10.88.1.0", "10.88.2.0)"}},
		{"nothing", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in []netip.Prefix
			for _, p := range tt.prefixes {
				in = append(in, netip.MustParsePrefix(p))
			}
			var got []string
			for _, e := range intervalElements(in) {
				a, _ := netip.AddrFromSlice(e.Key)
				s := a.String()
				if e.IntervalEnd {
					s += ")"
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("elements = %s, want %s", fmt.Sprint(got), fmt.Sprint(tt.want))
			}
		})
	}
}
