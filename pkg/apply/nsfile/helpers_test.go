package nsfile

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func lockAndJoinUTS(t *testing.T, path string, out chan<- string) {
	runtime.LockOSThread()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Error(err)
		out <- ""
		return
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWUTS); err != nil {
		t.Error(err)
		out <- ""
		return
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Error(err)
		out <- ""
		return
	}
	out <- unix.ByteSliceToString(u.Nodename[:])
}
