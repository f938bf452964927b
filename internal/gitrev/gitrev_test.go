package gitrev_test

import (
	"testing"

	"github.com/gitorch/gitorch/internal/gitrev"
)

func TestShort(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"a full SHA-1 is cut to 12", "0123456789abcdef0123456789abcdef01234567", "0123456789ab"},
		{"a SHA-256 is cut to 12", "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100", "ffeeddccbbaa"},
		{"exactly 12 stays", "0123456789ab", "0123456789ab"},
		{"shorter stays whole", "v1.2", "v1.2"},
		{"empty stays empty", "", ""},
		{"a trailing newline from git is dropped", "0123456789abcdef\n", "0123456789ab"},
		{"space around a short one is dropped", " abc\n", "abc"},
	} {
		if got := gitrev.Short(c.in); got != c.want {
			t.Errorf("%s: Short(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}
