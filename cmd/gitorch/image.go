package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
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
  gitorch image import app.tar

  # The node's images and the containers using them
  gitorch image ls`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	image.AddCommand(a.imageImportCommand(), a.imageListCommand())
	return image
}

// connectContainerd connects to the containerd of --containerd-address.
func (a *app) connectContainerd() (*client.Client, error) {
	addr := a.cfg.GetString("containerd-address")
	c, err := client.New(addr, client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", addr, err)
	}
	return c, nil
}

func (a *app) imageListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the node's images and the containers using them",
		Long: `ls lists the images of gitorch's containerd namespace: the name pods
find them by, the digest of the manifest, the size of the content (for this
platform) and the containers made from them, running or exited, as
NAMESPACE/POD/CONTAINER. An image is in use when a container was made from
it or from another name of the same content; an image in use by nothing
shows "-" and is what image garbage collection may remove.`,
		Example: `  gitorch image ls

  # For scripts
  gitorch image ls -o json | jq -r '.[] | select(.usedBy == []) | .name'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := a.textOrJSON()
			if err != nil {
				return err
			}
			c, err := a.connectContainerd()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			infos, err := apply.ListImages(ctx, c, a.cfg.GetString("containerd-namespace"))
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(infos)
			}
			return writeImages(a.stdout, infos)
		},
	}
	addContainerdFlags(cmd)
	cmd.Flags().StringP("output", "o", "text", "output format: text or json")
	return cmd
}

// writeImages prints images as a table.
func writeImages(w io.Writer, infos []apply.ImageInfo) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDIGEST\tSIZE\tIN USE BY")
	for _, im := range infos {
		users := "-"
		if len(im.UsedBy) > 0 {
			users = strings.Join(im.UsedBy, ",")
		}
		d := im.Digest
		if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
			d = d[:i+13]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", im.Name, d, humanSize(im.Size), users)
	}
	return tw.Flush()
}

// humanSize writes n bytes with three significant digits in decimal units,
// as docker images and crictl images do: 4.2MB, 123kB, 512B.
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	v, u := float64(n), 0
	for v >= 999.5 && u < len(units)-1 { // 999.5 would round to 1e+03

		v /= 1000
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return strconv.FormatFloat(v, 'g', 3, 64) + units[u]
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
example.com/app:1.0) in the io.containerd.image.name or the
org.opencontainers.image.ref.name annotation. Every image is stored, and
printed, under the name a pod's image: is looked up by: local/app:1 is
docker.io/local/app:1, busybox is docker.io/library/busybox:latest.`,
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
			ns := a.cfg.GetString("containerd-namespace")
			c, err := a.connectContainerd()
			if err != nil {
				return err
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
