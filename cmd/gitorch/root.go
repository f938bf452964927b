package main

import (
	"errors"
	"fmt"
	"github.com/gitorch/gitorch/pkg/schema"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Exit codes shared by every command.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// exitCodeError carries a specific exit code out of a command. A nil err
// means the command has already printed what it had to say.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitCodeError) Unwrap() error { return e.err }

// usageError marks err as a mistake in how the command was called (exit 2).
func usageError(err error) error { return &exitCodeError{code: exitUsage, err: err} }

// app holds what every command shares: the configuration (flags, environment
// and config file, in that order of precedence) and the output streams.
type app struct {
	cfg    *viper.Viper
	stdout io.Writer
	stderr io.Writer

	// vcache is the validation cache of the command, kept in vcacheFile
	// once a repository is read (validation_cache.go).
	vcache     *schema.Cache
	vcacheFile string
}

// defaultConfigDirs are searched, in order, for gitorch.yaml when --config is
// not given.
var defaultConfigDirs = []string{".", "/etc/gitorch"}

func newApp(stdout, stderr io.Writer) *app {
	return &app{cfg: viper.New(), stdout: stdout, stderr: stderr}
}

func run(args []string, stdout, stderr io.Writer) int {
	a := newApp(stdout, stderr)
	return a.execute(a.rootCommand(), args)
}

// execute runs root with args and turns its error into an exit status.
func (a *app) execute(root *cobra.Command, args []string) int {
	stdout, stderr := a.stdout, a.stderr
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		if ec.err != nil {
			fmt.Fprintf(stderr, "gitorch: %v\n", ec.err)
		}
		return ec.code
	}
	fmt.Fprintf(stderr, "gitorch: %v\n", err)
	return exitError
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "gitorch",
		Short: "Masterless GitOps container orchestrator",
		Long: `gitorch runs Kubernetes-style manifests from a Git repository on a set of
nodes with no control plane: Git is the API server, gossip is the node
registry, and every node computes the same placement.

Configuration comes from flags, then GITORCH_* environment variables, then a
config file (--config, or gitorch.yaml in the working directory or
/etc/gitorch/), then defaults. A flag --data-dir is GITORCH_DATA_DIR in the
environment and data-dir in the config file.`,
		Example: `  # Check the manifests in a directory before committing them
  gitorch validate ./deploy

  # Show the version
  gitorch version`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.loadConfig(cmd)
		},
	}
	root.PersistentFlags().String("config", "", "config file (default: gitorch.yaml in the working directory or /etc/gitorch/)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.AddCommand(
		a.versionCommand(),
		a.validateCommand(),
		a.imageCommand(),
		a.planCommand(),
		a.agentCommand(),
		a.statusCommand(),
		a.logsCommand(),
		a.eventsCommand(),
		a.gossipCommand(),
		a.secretCommand(),
		a.nodeCommand(),
		a.syncCommand(),
		a.rolloutCommand(),
	)
	// An unknown command is a usage error, not a reason to print help and
	// succeed.
	root.Args = func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError(fmt.Errorf("unknown command %q; run 'gitorch --help' for the list", args[0]))
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return root
}

// loadConfig binds cmd's flags to the configuration and reads the config
// file, so that a.cfg answers with flag > env > file > default precedence.
func (a *app) loadConfig(cmd *cobra.Command) error {
	v := a.cfg
	v.SetEnvPrefix("GITORCH")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.AutomaticEnv()
	var bindErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" || f.Name == "help" {
			return
		}
		if err := v.BindPFlag(f.Name, f); err != nil && bindErr == nil {
			bindErr = err
		}
	})
	if bindErr != nil {
		return bindErr
	}
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = os.Getenv("GITORCH_CONFIG")
	}
	if path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return usageError(fmt.Errorf("read config %s: %w", path, err))
		}
		return nil
	}
	for _, dir := range defaultConfigDirs {
		p := filepath.Join(dir, "gitorch.yaml")
		if _, err := os.Stat(p); err != nil {
			continue
		}
		v.SetConfigFile(p)
		if err := v.ReadInConfig(); err != nil {
			return usageError(fmt.Errorf("read config %s: %w", p, err))
		}
		return nil
	}
	return nil
}

// noArgs refuses arguments as a usage error (exit 2), where cobra.NoArgs
// would make it a plain one.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return usageError(err)
	}
	return nil
}
