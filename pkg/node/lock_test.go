package node_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/gitorch/gitorch/pkg/node"
)

func TestLockDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	unlock, err := node.LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.LockDataDir(dir); !errors.Is(err, node.ErrDataDirInUse) {
		t.Fatalf("second lock: %v, want ErrDataDirInUse", err)
	}
	unlock()
	again, err := node.LockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
}
