package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/pkg/apply"
)

// addContainerdFlags adds the flags that say which containerd to use.
func addContainerdFlags(cmd *cobra.Command) {
	cmd.Flags().String("containerd-address", apply.DefaultAddress, "containerd's gRPC socket")
	cmd.Flags().String("containerd-namespace", apply.DefaultNamespace, "containerd namespace for gitorch's images and containers")
	cmd.Flags().String("snapshotter", "", "containerd snapshotter to unpack images into (default: containerd's default)")
}

func (a *app) imageCommand() *cobra.Command {
	image := &cobra.Command{
		Use:   "image",
		Short: "Manage the node's container images",
		Example: `  # Load an image archive on a node without registry access
  gitorch image import app.tar`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	image.AddCommand(a.imageImportCommand())
	return image
}

func (a *app) imageImportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import FILE.tar",
		Short: "Import an OCI or docker image archive into containerd",
		Long: `Import reads an image archive (an OCI image layout or a 'docker save'
archive, as a tar file; - for standard input) into gitorch's containerd
namespace and unpacks it, so that pods using the image start without a
pull. It is how air-gapped nodes get their images: give the pods
imagePullPolicy IfNotPresent or Never.

An OCI layout must name its images with a full reference (such as
example.com/app:1.0) in the org.opencontainers.image.ref.name annotation.`,
		Example: `  # Import an archive made by 'docker save' or a build tool
  gitorch image import app.tar

  # Into the containerd of a test setup
  gitorch image import --containerd-address /tmp/c/c.sock --containerd-namespace dev app.tar`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(fmt.Errorf("image import takes one archive, got %d arguments", len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			addr := a.cfg.GetString("containerd-address")
			ns := a.cfg.GetString("containerd-namespace")
			c, err := client.New(addr, client.WithTimeout(10*time.Second))
			if err != nil {
				return fmt.Errorf("connect to containerd at %s: %w", addr, err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Minute)
			defer cancel()
			names, err := apply.ImportImage(ctx, c, ns, a.cfg.GetString("snapshotter"), r)
			for _, n := range names {
				fmt.Fprintf(a.stdout, "imported %s\n", n)
			}
			return err
		},
	}
	addContainerdFlags(cmd)
	return cmd
}
