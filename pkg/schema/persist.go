package schema

import (
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
)

// A Cache can outlive the process: the command line keeps one next to its
// Git caches, so that validating a revision after another validates only
// what changed. Only the results of YAML and JSON files are saved; those of
// .cue packages, whose objects know their fields' positions through CUE
// values, stay in memory.

// savedCache is the form Save writes.
type savedCache struct {
	Version string // schemaVersion
	Entries []savedEntry
}

type savedEntry struct {
	Key      string
	Findings []Finding
	// The file the objects are documents of, for their fields' positions.
	Name, Kind string
	Data       []byte
	Objects    []savedObject
}

type savedObject struct {
	Pos                               Pos
	APIVersion, Kind, Namespace, Name string
	JSON                              []byte
	Doc                               int   // docRef.doc
	Items                             []int // docRef.items
}

// Save writes the entries of c that came from YAML and JSON files to w.
func (c *Cache) Save(w io.Writer) error {
	c.mu.Lock()
	out := savedCache{Version: c.version}
	var entries []*cacheEntry
	for e := c.lru.Back(); e != nil; e = e.Prev() { // least recent first
		entries = append(entries, e.Value.(*cacheEntry))
	}
	c.mu.Unlock()
	if out.Version == "" {
		v, err := schemaVersion()
		if err != nil {
			return err
		}
		out.Version = v
	}
outer:
	for _, e := range entries {
		se := savedEntry{Key: e.key, Findings: e.res.findings}
		for _, o := range e.res.objects {
			ref := o.src.ref
			if ref.data == nil {
				continue outer // known by its CUE value: kept in memory only
			}
			se.Name, se.Kind, se.Data = ref.name, ref.kind, ref.data
			data, err := json.Marshal(o.Obj)
			if err != nil {
				return fmt.Errorf("save %s: %w", o.id(), err)
			}
			se.Objects = append(se.Objects, savedObject{Pos: o.Pos, APIVersion: o.APIVersion, Kind: o.Kind,
				Namespace: o.Namespace, Name: o.Name, JSON: data, Doc: ref.doc, Items: ref.items})
		}
		out.Entries = append(out.Entries, se)
	}
	return gob.NewEncoder(w).Encode(&out)
}

// Restore adds to c the entries that Save wrote to r under the same
// schemas and loading rules; a cache saved under others is ignored. An
// error means r held no cache, or a damaged one, and c is unchanged.
func (c *Cache) Restore(r io.Reader) error {
	var in savedCache
	if err := gob.NewDecoder(r).Decode(&in); err != nil {
		return fmt.Errorf("read validation cache: %w", err)
	}
	version, err := schemaVersion()
	if err != nil {
		return err
	}
	if in.Version != version {
		return nil
	}
	entries := make([]cacheEntry, 0, len(in.Entries))
	for _, se := range in.Entries {
		res := jobResult{findings: se.Findings}
		for _, so := range se.Objects {
			info := kinds[so.Kind]
			if info == nil {
				return fmt.Errorf("read validation cache: unknown kind %q", so.Kind)
			}
			obj := info.newObj()
			if err := json.Unmarshal(so.JSON, obj); err != nil {
				return fmt.Errorf("read validation cache: %s/%s: %w", so.Kind, so.Name, err)
			}
			ref := docRef{data: se.Data, name: se.Name, kind: se.Kind, doc: so.Doc, items: so.Items}
			res.objects = append(res.objects, Object{Pos: so.Pos, APIVersion: so.APIVersion, Kind: so.Kind,
				Namespace: so.Namespace, Name: so.Name, Obj: obj, src: docSource{ref: ref}})
		}
		entries = append(entries, cacheEntry{key: se.Key, res: res})
	}
	c.use(version)
	for _, e := range entries {
		c.put(e.key, e.res)
	}
	return nil
}
