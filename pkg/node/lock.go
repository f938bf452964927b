package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrDataDirInUse is wrapped by LockDataDir's error when another process
// holds the lock: an agent runs on the directory.
var ErrDataDirInUse = errors.New("an agent is running on this data directory")

// LockFile is the file in the data directory an agent holds a lock on
// (flock) for as long as it runs.
const LockFile = "agent.lock"

// LockDataDir takes the agent's lock on dir, creating dir if needed, so
// that no second agent and no 'gitorch node reset' works on it at the
// same time. The lock goes with the process; unlock releases it sooner.
func LockDataDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrDataDirInUse)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pid, for whoever wonders which process holds it.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
