package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// DefaultImageFS is where Debian's containerd keeps images and snapshots.
const DefaultImageFS = "/var/lib/containerd"

// ImageGCPolicy says when unused images are removed, as kubelet's image
// garbage collection: above HighThresholdPercent of the image
// filesystem's capacity in use, unused images go, least recently used
// first, until usage is below LowThresholdPercent.
type ImageGCPolicy struct {
	HighThresholdPercent int // default 85
	LowThresholdPercent  int // default 80
	// MinAge keeps images used, pulled or imported less than this ago
	// (default 2 minutes), so that an image just pulled for a pod that
	// is about to start stays.
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

// LabelLastUsed is the image label where CollectImages records when a
// container last used the image (RFC 3339): containerd keeps no time of
// last use, and kubelet's, kept in memory, would be lost on restart.
const LabelLastUsed = "gitorch.io/last-used"

// GCReport is what CollectImages did.
type GCReport struct {
	// UsedBefore and UsedAfter are percentages of the image filesystem.
	UsedBefore, UsedAfter int
	// Removed lists the images removed, in order.
	Removed []string
	// Freed is the sum of the removed images' content sizes (compressed
	// layers, config and manifests for this platform): an estimate, as
	// it leaves out unpacked snapshots and counts layers shared with
	// images that stay.
	Freed int64
}

// CollectImages removes unused images while the image filesystem is
// fuller than the policy allows, least recently used first, as kubelet's
// image garbage collection does. It is meant to be called periodically.
//
// An image is in use when a container of the runtime's namespace, running
// or not, was made from it (by name, or by an image of the same digest).
// Every call stamps the images in use with LabelLastUsed, so an image's
// last use is known to within the interval between calls, across
// restarts. An image's last use is the latest of that stamp and its
// UpdatedAt (when it was pulled, imported or pulled again); an image
// whose last use is less than MinAge ago stays.
//
// Images are removed one by one, each deleted synchronously so that
// containerd's garbage collector frees its content and snapshots, and
// usage is measured again after each removal until it is below
// LowThresholdPercent.
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

	now := p.Now()
	set, err := r.stampImagesInUse(ctx, now)
	if err != nil {
		return GCReport{}, fmt.Errorf("image GC: %w", err)
	}
	var rep GCReport
	if rep.UsedBefore, err = percent(); err != nil {
		return rep, err
	}
	rep.UsedAfter = rep.UsedBefore
	if rep.UsedBefore < p.HighThresholdPercent {
		return rep, nil
	}
	store := r.cfg.Client.ImageService()
	for _, img := range set.collectable(now, p.MinAge) {
		if rep.UsedAfter < p.LowThresholdPercent {
			break
		}
		size, _ := img.Size(ctx, r.cfg.Client.ContentStore(), platforms.Default())
		err := store.Delete(ctx, img.Name, images.SynchronousDelete())
		if errdefs.IsNotFound(err) {
			continue // removed by someone else meanwhile
		}
		if err != nil {
			return rep, fmt.Errorf("image GC: remove %s: %w", img.Name, err)
		}
		r.log.Info("removed unused image", "image", img.Name, "size", size, "last-used", lastUsed(img), "usage%", rep.UsedAfter)
		rep.Removed = append(rep.Removed, img.Name)
		rep.Freed += size
		if rep.UsedAfter, err = percent(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// stampImagesInUse lists the namespace's images, marking those a container
// uses, and sets their LabelLastUsed to now.
func (r *Containerd) stampImagesInUse(ctx context.Context, now time.Time) (imageSet, error) {
	ctrs, err := r.cfg.Client.ContainerService().List(ctx)
	if err != nil {
		return imageSet{}, fmt.Errorf("list containers: %w", err)
	}
	var names []string
	for _, c := range ctrs {
		names = append(names, c.Image)
	}
	store := r.cfg.Client.ImageService()
	all, err := store.List(ctx)
	if err != nil {
		return imageSet{}, fmt.Errorf("list images: %w", err)
	}
	set := newImageSet(all, names)
	stamp := now.UTC().Format(time.RFC3339Nano)
	for i, img := range set.all {
		if !set.inUse(img) {
			continue
		}
		upd := images.Image{Name: img.Name, Labels: map[string]string{LabelLastUsed: stamp}}
		updated, err := store.Update(ctx, upd, "labels."+LabelLastUsed)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return imageSet{}, fmt.Errorf("record the use of %s: %w", img.Name, err)
		}
		set.all[i] = updated
	}
	return set, nil
}

// imageSet is the namespace's images and those containers were made
// from.
type imageSet struct {
	all []images.Image
	// usedNames are the images containers name; usedDigests their
	// contents, so that another name of the same content (whose removal
	// would free nothing) counts as used too.
	usedNames   map[string]bool
	usedDigests map[digest.Digest]bool
}

func newImageSet(all []images.Image, containerImages []string) imageSet {
	s := imageSet{all: all, usedNames: map[string]bool{}, usedDigests: map[digest.Digest]bool{}}
	for _, name := range containerImages {
		s.usedNames[name] = true
	}
	for _, img := range all {
		if s.usedNames[img.Name] {
			s.usedDigests[img.Target.Digest] = true
		}
	}
	return s
}

func (s imageSet) inUse(img images.Image) bool {
	return s.usedNames[img.Name] || s.usedDigests[img.Target.Digest]
}

// collectable is the images that may be removed, least recently used
// first (by name when used at the same time, so the order is stable):
// those not in use whose last use is at least minAge before now.
func (s imageSet) collectable(now time.Time, minAge time.Duration) []images.Image {
	var out []images.Image
	for _, img := range s.all {
		if !s.inUse(img) && now.Sub(lastUsed(img)) >= minAge {
			out = append(out, img)
		}
	}
	slices.SortFunc(out, func(a, b images.Image) int {
		if c := lastUsed(a).Compare(lastUsed(b)); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// lastUsed is when img was last pulled, imported or seen in use.
func lastUsed(img images.Image) time.Time {
	t := img.CreatedAt
	if img.UpdatedAt.After(t) {
		t = img.UpdatedAt
	}
	if v, err := time.Parse(time.RFC3339Nano, img.Labels[LabelLastUsed]); err == nil && v.After(t) {
		t = v
	}
	return t
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
