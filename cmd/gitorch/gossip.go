package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gitorch/gitorch/pkg/gossip"
)

func (a *app) gossipCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gossip",
		Short: "Manage the cluster's gossip (membership) layer",
		Long: `Commands for the gossip layer that nodes use to find each other and
exchange status. Gossip is encrypted with a shared key; see docs/cluster.md.`,
		Example: `  # Make a key for a new cluster
  gitorch gossip keygen > /etc/gitorch/gossip.key`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.gossipKeygenCommand())
	return cmd
}

func (a *app) gossipKeygenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new gossip encryption key",
		Long: `keygen prints a new random gossip key: 32 bytes (AES-256) in base64, on
one line. Every node of a cluster needs the same key file. A key file holds
one key per line: the first encrypts, all decrypt, so a key is rotated by
adding the new key second on every node, then moving it first, then
removing the old one.`,
		Example: `  # A key file for a new cluster, readable by root only
  (umask 077; gitorch gossip keygen > /etc/gitorch/gossip.key)

  # Rotation, step one: add a new key after the current one on every node
  gitorch gossip keygen >> /etc/gitorch/gossip.key`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := gossip.GenerateKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, k)
			return nil
		},
	}
}
