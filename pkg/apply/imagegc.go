package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"golang.org/x/sys/unix"
)

// DefaultImageFS is where Debian's containerd keeps images and snapshots.
const DefaultImageFS = "/var/lib/containerd"

// ImageGCPolicy says when unused images are removed, as kubelet's image
// garbage collection: above HighThresholdPercent of the image
// filesystem's capacity in use, unused images go, oldest first, until
// usage is below LowThresholdPercent.
type ImageGCPolicy struct {
	HighThresholdPercent int // default 85
	LowThresholdPercent  int // default 80
	// MinAge keeps images younger than this (default 2 minutes), so that
	// an image just pulled for a pod that is about to start stays.
	MinAge time.Duration
	// Path is a directory on the filesystem holding containerd's content
	// and snapshots (its root, default /var/lib/containerd).
	Path string
	// Usage measures that filesystem: bytes used and its size. The default
	// is statfs(Path).
	Usage func() (used, total uint64, err error)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// GCReport is what CollectImages did.
type GCReport struct {
	// UsedBefore and UsedAfter are percentages of the image filesystem.
	UsedBefore, UsedAfter int
	// Removed lists the images removed, in order.
	Removed []string
	// Freed is the sum of the removed images' sizes (layers shared with
	// other images included, so it may overstate what was freed).
	Freed int64
}

// CollectImages removes unused images while the image filesystem is
// fuller than the policy allows. An image is unused when no container of
// the runtime's namespace, running or not, was made from it. Images go
// oldest first, by when they were pulled or imported (containerd keeps
// no time of last use), each deleted synchronously so that containerd's
// garbage collector frees its content and snapshots before usage is
// measured again.
func (r *Containerd) CollectImages(ctx context.Context, p ImageGCPolicy) (GCReport, error) {
	ctx = r.ctx(ctx)
	if p.HighThresholdPercent <= 0 {
		p.HighThresholdPercent = 85
	}
	if p.LowThresholdPercent <= 0 {
		p.LowThresholdPercent = 80
	}
	if p.LowThresholdPercent > p.HighThresholdPercent {
		return GCReport{}, fmt.Errorf("image GC: low threshold %d%% above high threshold %d%%", p.LowThresholdPercent, p.HighThresholdPercent)
	}
	if p.MinAge == 0 {
		p.MinAge = 2 * time.Minute
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Usage == nil {
		path := p.Path
		if path == "" {
			path = DefaultImageFS
		}
		p.Usage = func() (uint64, uint64, error) { return statfsUsage(path) }
	}
	percent := func() (int, error) {
		used, total, err := p.Usage()
		if err != nil {
			return 0, fmt.Errorf("image GC: disk usage: %w", err)
		}
		if total == 0 {
			return 0, errors.New("image GC: the image filesystem reports no size")
		}
		return int(used * 100 / total), nil
	}
	var rep GCReport
	var err error
	if rep.UsedBefore, err = percent(); err != nil {
		return rep, err
	}
	rep.UsedAfter = rep.UsedBefore
	if rep.UsedBefore < p.HighThresholdPercent {
		return rep, nil
	}
	ctrs, err := r.cfg.Client.Containers(ctx)
	if err != nil {
		return rep, err
	}
	inUse := map[string]bool{}
	for _, c := range ctrs {
		info, err := c.Info(ctx)
		if err != nil {
			return rep, err
		}
		inUse[info.Image] = true
	}
	store := r.cfg.Client.ImageService()
	all, err := store.List(ctx)
	if err != nil {
		return rep, err
	}
	now := p.Now()
	var candidates []images.Image
	for _, img := range all {
		if !inUse[img.Name] && now.Sub(img.CreatedAt) >= p.MinAge {
			candidates = append(candidates, img)
		}
	}
	slices.SortFunc(candidates, func(a, b images.Image) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for _, img := range candidates {
		if rep.UsedAfter < p.LowThresholdPercent {
			break
		}
		size, _ := img.Size(ctx, r.cfg.Client.ContentStore(), platforms.Default())
		if err := store.Delete(ctx, img.Name, images.SynchronousDelete()); err != nil {
			return rep, fmt.Errorf("image GC: remove %s: %w", img.Name, err)
		}
		r.log.Info("removed unused image", "image", img.Name, "size", size, "usage%", rep.UsedAfter)
		rep.Removed = append(rep.Removed, img.Name)
		rep.Freed += size
		if rep.UsedAfter, err = percent(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// statfsUsage is the used and total bytes of the filesystem holding path.
func statfsUsage(path string) (used, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	total = st.Blocks * uint64(st.Bsize)
	free := st.Bfree * uint64(st.Bsize)
	return total - free, total, nil
}
