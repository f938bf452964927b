package apply

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// RotateLogs keeps every container log file of the node under maxBytes:
// a larger one is copied to FILE.1 (older copies move to FILE.2 and so on,
// keeping at most keep copies) and truncated in place.
//
// The containerd shim holds the log open and writes with O_APPEND, so
// after the truncation its writes go to the start of the file again. A
// line written between the copy and the truncation is lost: the file://
// log of the shim cannot be reopened, which is what a rename would need.
func (r *Containerd) RotateLogs(maxBytes int64, keep int) error {
	if maxBytes <= 0 || keep < 1 {
		return fmt.Errorf("rotate logs: need maxBytes > 0 and keep >= 1")
	}
	files, err := filepath.Glob(filepath.Join(r.cfg.DataDir, "pods", "*", "logs", "*", "*.log"))
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range files {
		if err := rotate(f, maxBytes, keep); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func rotate(path string, maxBytes int64, keep int) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // its pod went away meanwhile
		}
		return err
	}
	if fi.Size() <= maxBytes {
		return nil
	}
	_ = os.Remove(path + "." + strconv.Itoa(keep))
	for i := keep - 1; i >= 1; i-- {
		if err := os.Rename(path+"."+strconv.Itoa(i), path+"."+strconv.Itoa(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	src, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(path+".1", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("copy %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return src.Truncate(0)
}
