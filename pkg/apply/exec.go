package apply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// ErrExecTimeout: a command run in a container did not finish in time
// (it is killed).
var ErrExecTimeout = errors.New("exec timed out")

// MaxExecOutput bounds the output Exec keeps, as kubelet bounds a probe's.
const MaxExecOutput = 10 << 10

// ExecResult is the outcome of a command run in a container.
type ExecResult struct {
	ExitCode uint32
	// Output is stdout and stderr interleaved, cut at MaxExecOutput.
	Output []byte
}

// Exec runs cmd in the running container (its namespaces, root, user and
// environment) and waits up to timeout for it, as exec probes and preStop
// exec hooks need.
func (r *Containerd) Exec(ctx context.Context, namespace, pod, container string, cmd []string, timeout time.Duration) (ExecResult, error) {
	ctx = r.ctx(ctx)
	if len(cmd) == 0 {
		return ExecResult{}, errors.New("exec: empty command")
	}
	ctr, err := r.cfg.Client.LoadContainer(ctx, containerID(namespace, pod, container))
	if err != nil {
		if errdefs.IsNotFound(err) {
			return ExecResult{}, fmt.Errorf("container %s of pod %s/%s: %w", container, namespace, pod, ErrNotFound)
		}
		return ExecResult{}, err
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return ExecResult{}, fmt.Errorf("container %s of pod %s/%s has no task: %w", container, namespace, pod, err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return ExecResult{}, err
	}
	if spec.Process == nil {
		return ExecResult{}, errors.New("exec: container spec has no process")
	}
	proc := *spec.Process
	proc.Args = cmd
	proc.Terminal = false
	out := &capWriter{max: MaxExecOutput}
	execID := "exec-" + randomID()
	p, err := task.Exec(ctx, execID, &proc, cio.NewCreator(cio.WithStreams(nil, out, out)))
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be done.
		dctx, cancel := context.WithTimeout(r.ctx(context.Background()), 10*time.Second)
		defer cancel()
		_, _ = p.Delete(dctx)
	}()
	exited, err := p.Wait(ctx)
	if err != nil {
		return ExecResult{}, err
	}
	if err := p.Start(ctx); err != nil {
		return ExecResult{}, fmt.Errorf("exec start: %w", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case st := <-exited:
		// The exit arrives before the output is drained: wait for the
		// copy to finish.
		p.IO().Wait()
		code, _, err := st.Result()
		if err != nil {
			return ExecResult{}, err
		}
		return ExecResult{ExitCode: code, Output: out.bytes()}, nil
	case <-t.C:
		_ = p.Kill(ctx, syscall.SIGKILL)
		<-exited
		return ExecResult{Output: out.bytes()}, fmt.Errorf("%w after %v: %q", ErrExecTimeout, timeout, cmd)
	case <-ctx.Done():
		_ = p.Kill(r.ctx(context.Background()), syscall.SIGKILL)
		return ExecResult{}, ctx.Err()
	}
}

// capWriter keeps the first max bytes written to it, from any goroutine.
type capWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - len(w.buf); room > 0 {
		if len(p) > room {
			w.buf = append(w.buf, p[:room]...)
		} else {
			w.buf = append(w.buf, p...)
		}
	}
	return len(p), nil
}

func (w *capWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]byte(nil), w.buf...)
}

func randomID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
