package schema

import (
	"container/list"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// BlobHasher is implemented by a file tree that knows a stable hash of each
// file's content without reading it, such as the Git blob hash of a
// source.Snapshot's files. Load keys its Cache with it; for other trees it
// hashes the content it reads (as a Git blob, so both agree).
type BlobHasher interface {
	// BlobHash returns the hash of the content of the regular file name.
	BlobHash(name string) (string, error)
}

// loaderVersion names the version of the loading rules written in Go (the
// decoding, defaults and findings of one file). Change it with them: it is
// part of every Cache key, with the hash of the schemas.
const loaderVersion = "2"

// Cache keeps, between calls of Load, what validating each file (each
// directory of .cue files) found: its decoded objects and findings. A load
// then validates only the files whose content changed, and runs the checks
// across objects over the whole set. Entries are keyed by the file's path,
// the hash of its content (the Git blob hash when the tree is a
// BlobHasher), and the version of gitorch's schemas and loading rules; when
// those change, the whole cache is dropped.
//
// The cache is bounded by the number of objects it holds (a file with none
// counts as one), the least recently used files leaving first. It is safe
// for concurrent use. The objects it holds are shared with every Result
// that got them from it, so Result.Objects must be treated as read-only.
type Cache struct {
	max int

	mu      sync.Mutex
	version string
	entries map[string]*list.Element
	lru     list.List // of *cacheEntry, most recently used at the front
	size    int
}

type cacheEntry struct {
	key string
	res jobResult
}

func (e *cacheEntry) cost() int { return max(1, len(e.res.objects)) }

// NewCache returns a cache holding at most maxObjects objects; the agent
// keeps a few times the objects of its repository. maxObjects ≤ 0 means
// DefaultCacheObjects.
func NewCache(maxObjects int) *Cache {
	if maxObjects <= 0 {
		maxObjects = DefaultCacheObjects
	}
	return &Cache{max: maxObjects, entries: map[string]*list.Element{}}
}

// DefaultCacheObjects bounds a Cache made with NewCache(0): twice the
// 10,000-object repository that gitorch is measured with.
const DefaultCacheObjects = 20000

// Len is the number of files (directories of .cue files) the cache holds.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Objects is the number of objects the cache holds.
func (c *Cache) Objects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for e := c.lru.Front(); e != nil; e = e.Next() {
		n += len(e.Value.(*cacheEntry).res.objects)
	}
	return n
}

// use drops the cache's entries when they were made with other schemas.
func (c *Cache) use(version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version == version {
		return
	}
	c.version = version
	c.entries = map[string]*list.Element{}
	c.lru.Init()
	c.size = 0
}

func (c *Cache) get(key string) (jobResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return jobResult{}, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cacheEntry).res, true
}

func (c *Cache) put(key string, res jobResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.size -= e.Value.(*cacheEntry).cost()
		c.lru.Remove(e)
	}
	ent := &cacheEntry{key: key, res: res}
	c.entries[key] = c.lru.PushFront(ent)
	c.size += ent.cost()
	for c.size > c.max && c.lru.Len() > 1 {
		last := c.lru.Back()
		old := last.Value.(*cacheEntry)
		c.lru.Remove(last)
		delete(c.entries, old.key)
		c.size -= old.cost()
	}
}

var (
	versionMu    sync.Mutex
	versionFS    fs.FS
	versionValue string
)

// schemaVersion hashes the schema files and the loading rules. It is
// computed once per schema tree.
func schemaVersion() (string, error) {
	versionMu.Lock()
	defer versionMu.Unlock()
	if versionFS == schemaFS && versionValue != "" {
		return versionValue, nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "loader %s\n", loaderVersion)
	var names []string
	err := fs.WalkDir(schemaFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read schemas: %w", err)
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := fs.ReadFile(schemaFS, n)
		if err != nil {
			return "", fmt.Errorf("read schemas: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", n, len(data))
		h.Write(data)
	}
	versionFS, versionValue = schemaFS, hex.EncodeToString(h.Sum(nil))
	return versionValue, nil
}

// gitBlobHash is the hash Git gives a file of this content.
func gitBlobHash(data []byte) string {
	h := sha1.New()
	h.Write([]byte("blob " + strconv.Itoa(len(data)) + "\x00"))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// jobKey is the cache key of a job: its kind, and the path and content
// hash of each of its files. data holds the files' content when the tree
// is not a BlobHasher and it had to be read.
func jobKey(fsys fs.FS, j job) (key string, data [][]byte, err error) {
	var b strings.Builder
	b.WriteString(j.kind)
	hasher, _ := fsys.(BlobHasher)
	for _, name := range j.files {
		var sum string
		if hasher != nil {
			if sum, err = hasher.BlobHash(name); err != nil {
				return "", nil, err
			}
		} else {
			d, err := fs.ReadFile(fsys, name)
			if err != nil {
				return "", nil, err
			}
			data = append(data, d)
			sum = gitBlobHash(d)
		}
		b.WriteString("\x00" + name + "\x00" + sum)
	}
	return b.String(), data, nil
}
