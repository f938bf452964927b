package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/gitorch/gitorch/pkg/apply"
	"github.com/gitorch/gitorch/pkg/events"
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

// With -update, a cmp whose second file is in the script rewrites that
// file with what the command printed: review the diff before committing.
var update = flag.Bool("update", false, "rewrite the scripts' expected output with the actual one")

func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: *update,
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
// scripts:
//
//	fakeagent [-token TOKEN] [-cluster CLUSTER.json] [-env VAR] [-files DIR] [-events EVENTS.json] [-sync SYNC.json] STATUS.json LOGDIR
//
// serves the status.Node in STATUS.json and logs from
// LOGDIR/NAMESPACE_POD/CONTAINER.log (and CONTAINER.previous.log); its
// cluster is the status.Cluster in CLUSTER.json, where $VAR stands for
// the script's variable (another fake agent's address), or else the node
// alone. Times in both files are relative to 2000-01-01T00:00:00Z
// standing for now. With -token it requires that bearer token. It sets
// GITORCH_API_ADDRESS, or VAR, to its HOST:PORT. With -files it serves
// the files of DIR as its running revision's (for plan without --nodes).
// With -events it serves the events.Event list of EVENTS.json (times as
// in STATUS.json).
// With -sync it answers POST /v1/sync with the node.SyncResult in
// SYNC.json, or the error its "error" field says.
func fakeAgent(ts *testscript.TestScript, neg bool, args []string) {
	var opts node.APIOptions
	var clusterFile string
	env := "GITORCH_API_ADDRESS"
	for len(args) >= 2 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-token":
			opts.Token = args[1]
		case "-cluster":
			clusterFile = args[1]
		case "-env":
			env = args[1]
		case "-events":
			var evs []events.Event
			if err := json.Unmarshal([]byte(ts.ReadFile(args[1])), &evs); err != nil {
				ts.Fatalf("fakeagent: %s: %v", args[1], err)
			}
			opts.Events = fixedEvents(evs)
		case "-sync":
			file := ts.MkAbs(args[1])
			opts.Sync = func(context.Context) (node.SyncResult, error) {
				var res struct {
					node.SyncResult
					Error string `json:"error"`
				}
				b, err := os.ReadFile(file)
				if err == nil {
					err = json.Unmarshal(b, &res)
				}
				if err == nil && res.Error != "" {
					err = errors.New(res.Error)
				}
				return res.SyncResult, err
			}
		case "-files":
			dir := ts.MkAbs(args[1])
			// The files of DIR as an agent serves them.
			opts.RevisionFiles = func(_ context.Context, w io.Writer) (string, error) {
				return strings.Repeat("ab", 20), node.WriteRevisionFiles(w, os.DirFS(dir), time.Time{})
			}
		default:
			ts.Fatalf("fakeagent: unknown flag %s", args[0])
		}
		args = args[2:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fakeagent [-token TOKEN] [-cluster CLUSTER.json] [-env VAR] [-files DIR] [-events EVENTS.json] [-sync SYNC.json] STATUS.json LOGDIR")
	}
	var f fixedStatus
	if err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &f.node); err != nil {
		ts.Fatalf("fakeagent: %s: %v", args[0], err)
	}
	if clusterFile != "" {
		f.cluster = new(status.Cluster)
		if err := json.Unmarshal([]byte(os.Expand(ts.ReadFile(clusterFile), ts.Getenv)), f.cluster); err != nil {
			ts.Fatalf("fakeagent: %s: %v", clusterFile, err)
		}
	}
	srv := httptest.NewServer(node.NewAPI(f, dirLogs(ts.MkAbs(args[1])), opts))
	ts.Defer(srv.Close)
	ts.Setenv(env, strings.TrimPrefix(srv.URL, "http://"))
}

// fixedStatus is a status and a cluster view whose times are relative to
// 2000-01-01 as now: each answer moves them to the time of the request,
// so that the ages printed do not depend on how long the script took.
type fixedStatus struct {
	node    status.Node
	cluster *status.Cluster // nil: the node alone
}

func (f fixedStatus) Status() status.Node {
	var st status.Node
	nowish(f.node, &st)
	return st
}

func (f fixedStatus) Cluster() status.Cluster {
	if f.cluster == nil {
		return status.SingleNode(f.Status())
	}
	var c status.Cluster
	nowish(*f.cluster, &c)
	return c
}

// nowish copies v into dst (a deep copy, through JSON) with every time
// that is set moved by the time since 2000-01-01.
func nowish(v, dst any) {
	b, _ := json.Marshal(v)
	_ = json.Unmarshal(b, dst)
	shiftTimes(reflect.ValueOf(dst).Elem(), time.Since(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)))
}

// shiftTimes moves every time.Time under v that is set by d.
func shiftTimes(v reflect.Value, d time.Duration) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			shiftTimes(v.Elem(), d)
		}
	case reflect.Struct:
		if t, ok := v.Addr().Interface().(*time.Time); ok {
			if !t.IsZero() {
				*t = t.Add(d)
			}
			return
		}
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				shiftTimes(v.Field(i), d)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			shiftTimes(v.Index(i), d)
		}
	}
}

// fixedEvents are a node's events, with times relative to 2000-01-01 as
// now, as fixedStatus has them.
type fixedEvents []events.Event

func (f fixedEvents) Events(after uint64) ([]events.Event, <-chan struct{}) {
	var out []events.Event
	for _, e := range f {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	nowish(out, &out)
	return out, make(chan struct{})
}

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
