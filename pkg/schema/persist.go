package schema

import (
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
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
	Objects  []savedObject
	Findings []Finding
}

type savedObject struct {
	Pos                               Pos
	APIVersion, Kind, Namespace, Name string
	JSON                              []byte
	// Fields is where each field of the document is written (see
	// posTable).
	Fields []savedField
}

type savedField struct {
	Path string // tableKey
	Pos  Pos
}

// posTable is where each field of a document is, as docSource.fieldPos
// finds it in the syntax tree: the key of a struct or list, the value of a
// scalar, the start of a list element. A path that is not in the table is
// looked up by its longest prefix that is.
type posTable map[string]Pos

func (t posTable) fieldPos(p []string, def Pos) Pos {
	for n := len(p); n >= 0; n-- {
		if pos, ok := t[tableKey(p[:n])]; ok {
			return orDefault(pos, def)
		}
	}
	return def
}

// tableKey is a path of selectors as a key of a posTable: each selector
// after a NUL, the document itself "".
func tableKey(p []string) string {
	var b strings.Builder
	for _, sel := range p {
		b.WriteByte(0)
		b.WriteString(sel)
	}
	return b.String()
}

// tableOf records the positions of every field of e.
func tableOf(e ast.Expr) posTable {
	t := posTable{}
	var walk func(key string, e ast.Expr, pos Pos)
	walk = func(key string, e ast.Expr, pos Pos) {
		t[key] = pos
		switch n := e.(type) {
		case *ast.StructLit:
			seen := map[string]bool{}
			for _, d := range n.Elts {
				f, ok := d.(*ast.Field)
				if !ok {
					continue
				}
				name, ok := labelName(f.Label)
				if !ok || seen[name] {
					continue // fieldPos takes the first field of a name
				}
				seen[name] = true
				p := posOf(f.Pos())
				if _, scalar := f.Value.(*ast.BasicLit); scalar {
					p = posOf(f.Value.Pos())
				}
				walk(key+"\x00"+name, f.Value, p)
			}
		case *ast.ListLit:
			for i, el := range n.Elts {
				walk(key+"\x00"+strconv.Itoa(i), el, posOf(el.Pos()))
			}
		}
	}
	walk("", e, posOf(e.Pos()))
	return t
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
			t := o.src.table
			switch {
			case t != nil:
			case o.src.expr != nil:
				t = tableOf(o.src.expr)
			default:
				continue outer // known by its CUE value: kept in memory only
			}
			data, err := json.Marshal(o.Obj)
			if err != nil {
				return fmt.Errorf("save %s: %w", o.id(), err)
			}
			so := savedObject{Pos: o.Pos, APIVersion: o.APIVersion, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, JSON: data}
			for p, pos := range t {
				so.Fields = append(so.Fields, savedField{Path: p, Pos: pos})
			}
			se.Objects = append(se.Objects, so)
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
			t := make(posTable, len(so.Fields))
			for _, f := range so.Fields {
				t[f.Path] = f.Pos
			}
			res.objects = append(res.objects, Object{Pos: so.Pos, APIVersion: so.APIVersion, Kind: so.Kind,
				Namespace: so.Namespace, Name: so.Name, Obj: obj, src: docSource{table: t}})
		}
		entries = append(entries, cacheEntry{key: se.Key, res: res})
	}
	c.use(version)
	for _, e := range entries {
		c.put(e.key, e.res)
	}
	return nil
}
