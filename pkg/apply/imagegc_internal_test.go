package apply

import (
	"slices"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestCollectableImages(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	// img is an image pulled at minute pulled, with content d and, when
	// used >= 0, a last-use stamp at minute used.
	img := func(name string, d string, pulled, used int) images.Image {
		i := images.Image{
			Name:      name,
			Target:    ocispec.Descriptor{Digest: digest.FromString(d)},
			CreatedAt: at(pulled), UpdatedAt: at(pulled),
		}
		if used >= 0 {
			i.Labels = map[string]string{LabelLastUsed: at(used).Format(time.RFC3339Nano)}
		}
		return i
	}
	now := at(100)
	repulled := img("repulled", "r", 10, -1)
	repulled.UpdatedAt = at(60)
	badStamp := img("bad", "x", 30, -1)
	badStamp.Labels = map[string]string{LabelLastUsed: "yesterday"}
	cases := []struct {
		name       string
		imgs       []images.Image
		containers []string
		minAge     time.Duration
		want       []string
	}{
		{
			name: "never used images go in the order they were pulled",
			imgs: []images.Image{img("c", "c", 30, -1), img("a", "a", 10, -1), img("b", "b", 20, -1)},
			want: []string{"a", "b", "c"},
		},
		{
			name: "an image used after another was pulled goes after it",
			imgs: []images.Image{img("old-but-used", "o", 10, 50), img("pulled", "p", 40, -1)},
			want: []string{"pulled", "old-but-used"},
		},
		{
			name: "pulling again counts as a use",
			imgs: []images.Image{repulled, img("pulled", "p", 40, -1)},
			want: []string{"pulled", "repulled"},
		},
		{
			name:       "an image a container uses stays",
			imgs:       []images.Image{img("a", "a", 10, -1), img("b", "b", 20, -1)},
			containers: []string{"a"},
			want:       []string{"b"},
		},
		{
			name:       "another name of an image in use stays",
			imgs:       []images.Image{img("app:1", "same", 10, -1), img("app:stable", "same", 5, -1), img("other", "o", 20, -1)},
			containers: []string{"app:1"},
			want:       []string{"other"},
		},
		{
			name:       "a container of an image that is gone protects nothing",
			imgs:       []images.Image{img("a", "a", 10, -1)},
			containers: []string{"gone"},
			want:       []string{"a"},
		},
		{
			name:   "images pulled or used within MinAge stay",
			imgs:   []images.Image{img("young", "y", 98, -1), img("used-lately", "u", 10, 97), img("old", "o", 10, 90)},
			minAge: 5 * time.Minute,
			want:   []string{"old"},
		},
		{
			name:   "an image exactly MinAge old may go",
			imgs:   []images.Image{img("a", "a", 95, -1)},
			minAge: 5 * time.Minute,
			want:   []string{"a"},
		},
		{
			name: "images last used at the same time go by name",
			imgs: []images.Image{img("b", "b", 10, -1), img("a", "a", 10, -1)},
			want: []string{"a", "b"},
		},
		{
			name: "a stamp that is not a time is ignored",
			imgs: []images.Image{badStamp, img("a", "a", 20, -1)},
			want: []string{"a", "bad"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, i := range newImageSet(c.imgs, c.containers).collectable(now, c.minAge) {
				got = append(got, i.Name)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("collectable %v, want %v", got, c.want)
			}
		})
	}
}
