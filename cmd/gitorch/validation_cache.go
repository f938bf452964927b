package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gitorch/gitorch/pkg/schema"
)

// validationCacheFile is where, under the data directory, validate and plan
// keep what validating each file of a repository found, so that a run
// after a commit validates only the files the commit changed.
const validationCacheFile = "validate/cache.gob"

// validation is the cache the loads of one command share (plan loads two
// trees, often mostly the same files). When the command reads a Git
// repository, the cache is restored from the data directory and saved
// back when the command is done.
func (a *app) validation() *schema.Cache {
	if a.vcache == nil {
		a.vcache = schema.NewCache(0)
	}
	return a.vcache
}

// restoreValidation reads the saved cache of dataDir, once. A missing or
// unreadable cache is an empty one: it is only a cache.
func (a *app) restoreValidation(dataDir string) {
	if a.vcacheFile != "" {
		return
	}
	a.vcacheFile = filepath.Join(dataDir, filepath.FromSlash(validationCacheFile))
	f, err := os.Open(a.vcacheFile)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(a.stderr, "gitorch: note: validation cache not read: %v\n", err)
		}
		return
	}
	defer f.Close()
	if err := a.validation().Restore(bufio.NewReader(f)); err != nil {
		fmt.Fprintf(a.stderr, "gitorch: note: validation cache not used: %v\n", err)
	}
}

// saveValidation writes the cache back when it was restored, atomically
// (another run may read it meanwhile). Failing to save is only noted.
func (a *app) saveValidation() {
	if a.vcacheFile == "" || a.vcache == nil {
		return
	}
	if err := writeCache(a.vcacheFile, a.vcache); err != nil {
		fmt.Fprintf(a.stderr, "gitorch: note: validation cache not saved: %v\n", err)
	}
}

func writeCache(file string, c *schema.Cache) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".cache-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	if err := c.Save(w); err != nil {
		tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
