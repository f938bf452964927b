package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/internal/gitrev"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of gitorch",
		Example: `  gitorch version`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.stdout, "gitorch %s (%s, %s/%s)\n", version, vcsRevision(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

// vcsRevision is the commit the binary was built from, when the Go toolchain
// recorded it.
func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown revision"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown revision"
	}
	rev = gitrev.Short(rev)
	if dirty {
		rev += "-dirty"
	}
	return rev
}
