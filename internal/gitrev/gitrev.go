// Package gitrev shows Git revisions to people. It imports nothing, so
// that every layer (the CLI, the agent, and pkg/plan, which must not import
// pkg/source) abbreviates a commit the same way.
package gitrev

import "strings"

// ShortLen is how many hex digits of a commit are shown: Git's own default
// abbreviation grows with the repository, so a fixed length keeps columns
// aligned and names stable across nodes.
const ShortLen = 12

// Short returns the first ShortLen characters of a commit SHA (surrounding
// space removed); a shorter string, such as a tag or "", is returned whole.
func Short(sha string) string {
	sha = strings.TrimSpace(sha)
	if len(sha) > ShortLen {
		return sha[:ShortLen]
	}
	return sha
}
