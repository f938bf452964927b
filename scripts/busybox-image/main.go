// Command busybox-image writes an OCI image archive holding Debian's
// static busybox, for trying gitorch on a machine without registry
// access:
//
//	go run ./scripts/busybox-image -o busybox.tar -ref gitorch.local/busybox:1
//	gitorch image import busybox.tar
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/gitorch/gitorch/pkg/apply/applytest"
)

func main() {
	out := flag.String("o", "busybox.tar", "archive to write")
	ref := flag.String("ref", "gitorch.local/busybox:1", "name of the image in the archive")
	bin := flag.String("busybox", applytest.BusyboxPath, "static busybox binary (Debian package busybox-static)")
	flag.Parse()
	if err := run(*out, *ref, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "busybox-image:", err)
		os.Exit(1)
	}
}

func run(out, ref, bin string) error {
	img, err := applytest.BusyboxImage(bin)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := applytest.WriteOCIArchive(f, ref, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
