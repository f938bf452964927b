package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/node"
	"github.com/gitorch/gitorch/pkg/status"
)

// The CLI's behaviour — output, exit status — is pinned by the scripts in
// testdata/script, run with the gitorch binary built into this test.

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"gitorch": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "1")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"fakeagent": fakeAgent,
			// exits CODE PROGRAM ARGS... runs PROGRAM and checks its exit
			// status, keeping its output for stdout and stderr.
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exits CODE PROGRAM [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("exits: bad code %q", args[0])
				}
				code := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("exits: %v", err)
					}
					code = ee.ExitCode()
				}
				if code != want {
					ts.Fatalf("%s exited with %d, want %d", args[1], code, want)
				}
			},
		},
	})
}

// fakeAgent serves the agent's API from files, for status and logs
// scripts: "fakeagent [-token TOKEN] STATUS.json LOGDIR" serves the
// NodeStatus in STATUS.json, whose times are relative to
// 2000-01-01T00:00:00Z standing for now, and logs from
// LOGDIR/NAMESPACE_POD/CONTAINER.log (and CONTAINER.previous.log). With
// -token it requires that bearer token. It sets GITORCH_API_ADDRESS to its
// address.
func fakeAgent(ts *testscript.TestScript, neg bool, args []string) {
	var opts node.APIOptions
	if len(args) >= 2 && args[0] == "-token" {
		opts.Token, args = args[1], args[2:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fakeagent [-token TOKEN] STATUS.json LOGDIR")
	}
	var st status.Node
	if err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &st); err != nil {
		ts.Fatalf("fakeagent: %v", err)
	}
	srv := httptest.NewServer(node.NewAPI(fixedStatus(st), dirLogs(ts.MkAbs(args[1])), opts))
	ts.Defer(srv.Close)
	ts.Setenv("GITORCH_API_ADDRESS", strings.TrimPrefix(srv.URL, "http://"))
}

// fixedStatus is a status whose times are relative to 2000-01-01 as now:
// each answer moves them to the time of the request, so that the ages
// printed do not depend on how long the script took.
type fixedStatus status.Node

func (f fixedStatus) Status() status.Node {
	b, _ := json.Marshal(status.Node(f))
	var st status.Node
	_ = json.Unmarshal(b, &st)
	shiftTimes(&st, time.Since(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)))
	return st
}

// Cluster is the node alone.
func (f fixedStatus) Cluster() status.Cluster { return status.SingleNode(f.Status()) }

type dirLogs string

func (d dirLogs) LogFile(ns, pod, container string, previous bool) (string, error) {
	name := container + ".log"
	if previous {
		name = container + ".previous.log"
	}
	p := filepath.Join(string(d), ns+"_"+pod, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no log of %s: %w", container, apply.ErrNotFound)
	}
	return p, nil
}

// shiftTimes moves every time of st that is set by d.
func shiftTimes(st *status.Node, d time.Duration) {
	shift := func(t *time.Time) {
		if !t.IsZero() {
			*t = t.Add(d)
		}
	}
	for _, r := range []*status.Revision{st.Running, st.Refused} {
		if r != nil {
			shift(&r.Time)
			shift(&r.LoadedAt)
		}
	}
	shift(&st.Source.LastFetch)
	shift(&st.Source.NextRetry)
	for i := range st.Pods {
		p := &st.Pods[i]
		shift(&p.StartedAt)
		for j := range p.Containers {
			c := &p.Containers[j]
			shift(&c.StartedAt)
			shift(&c.FinishedAt)
			shift(&c.NextStart)
			if c.LastTermination != nil {
				shift(&c.LastTermination.FinishedAt)
			}
		}
	}
}
