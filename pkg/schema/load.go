package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
	cuejson "cuelang.org/go/encoding/json"
	cueyaml "cuelang.org/go/encoding/yaml"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// IgnoreFile names the files, in gitignore syntax, that list paths of the
// tree that are not manifests.
const IgnoreFile = ".gitorchignore"

// SopsConfigFile is the sops tool's configuration (its creation rules),
// kept in repositories with encrypted Secrets: never a manifest, even
// when named.
const SopsConfigFile = ".sops.yaml"

// Options tune Load.
type Options struct {
	// Paths restricts loading to these files and directories of the tree
	// (slash-separated, relative to its root). Empty means the whole tree.
	// A file named here is loaded whatever its extension.
	Paths []string
	// Workers is how many files are validated in parallel; 0 means one per
	// CPU.
	Workers int
	// Cache, when set, supplies the results of files validated before with
	// the same content, and keeps those of the others.
	Cache *Cache
}

// Load reads every manifest in fsys: *.yaml and *.yml (several documents
// separated by ---), *.json (one or more values), and *.cue (each directory
// one CUE package, in which every struct with both apiVersion and kind is
// an object). It skips .git directories and what .gitorchignore files list,
// and validates each object and then the objects together. The error is
// only for a tree that cannot be read; everything wrong with its content is
// a Finding. When Result.Errors() is not zero the set is invalid as a whole.
func Load(fsys fs.FS, opts Options) (*Result, error) {
	jobs, findings, err := collect(fsys, opts.Paths)
	if err != nil {
		return nil, err
	}
	results := make([]jobResult, len(jobs))
	keys := make([]string, len(jobs))
	data := make([][][]byte, len(jobs))
	res := &Result{Findings: findings}
	todo := make([]int, 0, len(jobs))
	if opts.Cache != nil {
		version, err := schemaVersion()
		if err != nil {
			return nil, err
		}
		opts.Cache.use(version)
	}
	for i, j := range jobs {
		res.Files += len(j.files)
		if opts.Cache != nil {
			if keys[i], data[i], err = jobKey(fsys, j); err != nil {
				return nil, err
			}
			if r, ok := opts.Cache.get(keys[i]); ok {
				results[i], data[i] = r, nil
				res.CachedFiles += len(j.files)
				continue
			}
		}
		todo = append(todo, i)
	}
	nfiles := 0
	for _, i := range todo {
		nfiles += len(jobs[i].files)
	}
	defer tuneGC(nfiles)()
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(todo))
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := validators.get()
			if err != nil {
				errs <- err
				for range next {
				}
				return
			}
			defer validators.put(v)
			for i := range next {
				results[i] = v.run(fsys, jobs[i], data[i])
				data[i] = nil
			}
		}()
	}
	for _, i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	for _, r := range results {
		if r.err != nil {
			return nil, r.err
		}
	}
	if opts.Cache != nil {
		for _, i := range todo {
			opts.Cache.put(keys[i], results[i])
		}
	}
	n := 0
	for _, r := range results {
		n += len(r.objects)
	}
	res.Objects = make([]Object, 0, n)
	for _, r := range results {
		res.Objects = append(res.Objects, r.objects...)
		res.Findings = append(res.Findings, r.findings...)
	}
	res.Findings = append(res.Findings, crossCheck(res.Objects)...)
	redactFindings(res.Findings)
	sortFindings(res.Findings)
	return res, nil
}

// job is one unit of work: a YAML or JSON file, or the .cue files of one
// directory.
type job struct {
	files []string
	kind  string // "yaml", "json" or "cue"
}

type jobResult struct {
	objects  []Object
	findings []Finding
	err      error
}

func fileKind(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml":
		return "yaml"
	case ".json":
		return "json"
	case ".cue":
		return "cue"
	}
	return ""
}

// collect lists the manifest files to load, grouped into jobs.
func collect(fsys fs.FS, roots []string) ([]job, []Finding, error) {
	if len(roots) == 0 {
		roots = []string{"."}
	}
	var findings []Finding
	ign := &ignorer{loaded: map[string]bool{}}
	seen := map[string]bool{}
	var files []string
	for _, root := range roots {
		root = path.Clean(strings.TrimPrefix(root, "./"))
		if !fs.ValidPath(root) {
			return nil, nil, fmt.Errorf("%s: not a path inside the tree", root)
		}
		info, err := fs.Stat(fsys, root)
		if err != nil {
			return nil, nil, err
		}
		if !info.IsDir() {
			if path.Base(root) == SopsConfigFile {
				continue
			}
			if !seen[root] {
				seen[root] = true
				files = append(files, root)
			}
			continue
		}
		// Ignore files of the directories above the root apply too.
		for dir := path.Dir(root); ; dir = path.Dir(dir) {
			if err := ign.load(fsys, dir); err != nil {
				return nil, nil, err
			}
			if dir == "." {
				break
			}
		}
		err = fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == ".git" || (p != root && ign.match(p, true)) {
					return fs.SkipDir
				}
				return ign.load(fsys, p)
			}
			if fileKind(p) == "" || d.Name() == SopsConfigFile || ign.match(p, false) || seen[p] {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				findings = append(findings, Finding{Severity: SeverityWarning, Pos: Pos{File: p},
					Message: "symbolic link not followed: manifests must be regular files of the tree"})
				return nil
			}
			seen[p] = true
			files = append(files, p)
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	sort.Strings(files)
	var jobs []job
	cueDirs := map[string]int{}
	for _, f := range files {
		k := fileKind(f)
		switch k {
		case "cue":
			dir := path.Dir(f)
			if i, ok := cueDirs[dir]; ok {
				jobs[i].files = append(jobs[i].files, f)
				continue
			}
			cueDirs[dir] = len(jobs)
			jobs = append(jobs, job{files: []string{f}, kind: k})
		case "":
			// Named explicitly: read it as YAML, which includes JSON.
			jobs = append(jobs, job{files: []string{f}, kind: "yaml"})
		default:
			jobs = append(jobs, job{files: []string{f}, kind: k})
		}
	}
	return jobs, findings, nil
}

// ignorer applies .gitorchignore files, each to its own directory and
// below, as git does with .gitignore.
type ignorer struct {
	patterns []gitignore.Pattern
	matcher  gitignore.Matcher
	loaded   map[string]bool
}

func (g *ignorer) load(fsys fs.FS, dir string) error {
	if g.loaded[dir] {
		return nil
	}
	g.loaded[dir] = true
	data, err := fs.ReadFile(fsys, path.Join(dir, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var domain []string
	if dir != "." {
		domain = strings.Split(dir, "/")
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		g.patterns = append(g.patterns, gitignore.ParsePattern(line, domain))
	}
	g.matcher = gitignore.NewMatcher(g.patterns)
	return nil
}

func (g *ignorer) match(p string, isDir bool) bool {
	if g.matcher == nil {
		return false
	}
	return g.matcher.Match(strings.Split(p, "/"), isDir)
}

// run loads the files of one job. A parser that panics on some input is a
// bug of that parser, but the input is untrusted and the caller may be a
// long-running daemon: the panic becomes a finding on the file, and the
// validator, whose CUE context may be left inconsistent, is retired.
// data, when not nil, is the content of the job's files, already read.
func (v *validator) run(fsys fs.FS, j job, data [][]byte) (res jobResult) {
	defer func() {
		if r := recover(); r != nil {
			v.uses = validatorUses
			res = jobResult{findings: []Finding{{Severity: SeverityError, Pos: Pos{File: j.files[0]},
				Message: fmt.Sprintf("cannot parse: the parser failed on this file (%v)", r)}}}
		}
	}()
	switch j.kind {
	case "cue":
		return v.runCUE(fsys, j.files, data)
	}
	name := j.files[0]
	var src []byte
	if data != nil {
		src = data[0]
	} else {
		var err error
		if src, err = fs.ReadFile(fsys, name); err != nil {
			return jobResult{err: err}
		}
	}
	src = normalizeLineBreaks(src)
	next := documents(name, src, j.kind)
	for doc := 0; ; doc++ {
		expr, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			res.findings = append(res.findings, parseFinding(name, err))
			break
		}
		if isNull(expr) {
			continue
		}
		sealed, unreadable, sfs := sopsDocument(name, src, expr)
		res.findings = append(res.findings, sfs...)
		if unreadable {
			continue
		}
		val := v.ctx.BuildExpr(expr)
		objs, fs := v.check(val, expr, docRef{data: src, name: name, kind: j.kind, doc: doc})
		if sealed && len(sfs) == 0 {
			for i := range objs {
				objs[i].Encrypted = src
			}
		}
		res.objects = append(res.objects, objs...)
		res.findings = append(res.findings, fs...)
	}
	return res
}

// documents returns an iterator over the documents of a YAML or JSON file.
func documents(name string, data []byte, kind string) func() (ast.Expr, error) {
	if kind == "json" {
		d := cuejson.NewDecoder(nil, name, bytes.NewReader(data))
		return d.Extract
	}
	d := cueyaml.NewDecoder(name, bytes.NewReader(data))
	return d.Extract
}

// normalizeLineBreaks turns each lone carriage return, a line break in
// YAML, into a newline, which the YAML decoder handles. Lines and columns
// stay the same.
func normalizeLineBreaks(data []byte) []byte {
	i := bytes.IndexByte(data, '\r')
	if i < 0 {
		return data
	}
	out := append([]byte(nil), data...)
	for ; i < len(out); i++ {
		if out[i] == '\r' && (i+1 == len(out) || out[i+1] != '\n') {
			out[i] = '\n'
		}
	}
	return out
}

// isNull reports an empty document: null, or what the YAML decoder makes of
// a document of comments only, *null | _.
func isNull(e ast.Expr) bool {
	if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.OR {
		if u, ok := b.X.(*ast.UnaryExpr); ok && u.Op == token.MUL {
			e = u.X
		}
	}
	lit, ok := e.(*ast.BasicLit)
	return ok && lit.Kind == token.NULL
}

var lineRE = regexp.MustCompile(`line (\d+)`)

// parseFinding reports a file that is not valid YAML, JSON or CUE.
func parseFinding(name string, err error) Finding {
	f := Finding{Severity: SeverityError, Pos: Pos{File: name}}
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		f.Message = fmt.Sprintf(format, args...)
		for _, p := range cueerrors.Positions(e) {
			if pp := posOf(p); pp.Line > 0 {
				f.Pos = pp
				break
			}
		}
		break
	}
	if f.Message == "" {
		f.Message = err.Error()
	}
	// The YAML parser puts "file:line: " in front of its messages.
	if rest, ok := strings.CutPrefix(f.Message, name+":"); ok {
		if num, msg, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				f.Pos.Line, f.Message = line, msg
			}
		}
	}
	if f.Pos.Line == 0 {
		if m := lineRE.FindStringSubmatch(f.Message); m != nil {
			f.Pos.Line, _ = strconv.Atoi(m[1])
		}
	}
	f.Message = "cannot parse: " + strings.TrimPrefix(f.Message, "yaml: ")
	return f
}

// runCUE builds the .cue files of one directory as a package and checks
// every object in it.
func (v *validator) runCUE(fsys fs.FS, files []string, data [][]byte) jobResult {
	var res jobResult
	inst := build.NewContext().NewInstance(path.Dir(files[0]), nil)
	for i, name := range files {
		var src []byte
		if data != nil {
			src = data[i]
		} else {
			var err error
			if src, err = fs.ReadFile(fsys, name); err != nil {
				return jobResult{err: err}
			}
		}
		if err := inst.AddFile(name, src); err != nil {
			res.findings = append(res.findings, parseFinding(name, err))
			return res
		}
	}
	if inst.Err != nil {
		res.findings = append(res.findings, parseFinding(files[0], inst.Err))
		return res
	}
	pkg := v.ctx.BuildInstance(inst)
	if err := pkg.Err(); err != nil {
		d := &docInfo{pos: Pos{File: files[0]}}
		res.findings = append(res.findings, v.convertErrors(d, pkg, err)...)
		return res
	}
	for _, val := range cueObjects(pkg) {
		objs, fs := v.check(val, nil, docRef{})
		res.objects = append(res.objects, objs...)
		res.findings = append(res.findings, fs...)
	}
	return res
}

// cueObjects finds every struct reachable from the regular fields of v,
// through structs and lists, that has both apiVersion and kind. It does
// not look inside an object.
func cueObjects(v cue.Value) []cue.Value {
	var out []cue.Value
	var walk func(v cue.Value)
	walk = func(v cue.Value) {
		switch v.IncompleteKind() {
		case cue.StructKind:
			if v.LookupPath(cue.MakePath(cue.Str("apiVersion"))).Exists() &&
				v.LookupPath(cue.MakePath(cue.Str("kind"))).Exists() {
				out = append(out, v)
				return
			}
			it, err := v.Fields()
			if err != nil {
				return
			}
			for it.Next() {
				walk(it.Value())
			}
		case cue.ListKind:
			it, err := v.List()
			if err != nil {
				return
			}
			for it.Next() {
				walk(it.Value())
			}
		}
	}
	walk(v)
	return out
}
