// Package source fetches the Git repository that gitorch deploys from and
// hands out read-only snapshots of one revision.
//
// It owns: the per-remote cache under the data directory (a bare clone,
// fetched incrementally, its packs merged as they accumulate, re-cloned
// when found corrupt), the transports
// and their credentials (local paths, file://, git://, smart HTTP(S) with
// basic auth, tokens and custom CAs, SSH with private keys and known_hosts),
// resolving a branch, tag or commit to a full SHA, commit ancestry, the
// commits that touched a path, optional commit signature verification
// (OpenPGP and SSH signatures), and Retry with a back-off for callers.
//
// A Snapshot's FS reads Git's object store directly: nothing is ever checked
// out to disk, so a concurrent fetch cannot tear a snapshot and repository
// content cannot write outside the data directory. Symbolic links and
// submodules in the repository are never followed; they are left out of the
// FS and listed in Snapshot.Skipped.
//
// It must not know about manifests: it hands out files, and deciding what
// they mean belongs to pkg/schema. It never logs or returns credentials:
// URLs in messages have their user information removed.
package source
