package devnode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultFSLimit is the most bytes a container's in-memory filesystem holds.
const DefaultFSLimit = 16 << 20

// errNoSpace is reported when a write would take a filesystem past its limit.
var errNoSpace = errors.New("no space left on device")

// memFS is a container's filesystem: directories and files in memory, nothing on the host.
// Paths are absolute and slash-separated.
type memFS struct {
	mu    sync.Mutex
	root  *memNode
	size  int64
	limit int64
}

type memNode struct {
	name     string
	dir      bool
	readOnly bool
	data     []byte
	children map[string]*memNode
	mtime    time.Time
	// null discards writes and reads as empty (/dev/null).
	null bool
}

func newMemFS(limit int64) *memFS {
	if limit <= 0 {
		limit = DefaultFSLimit
	}
	f := &memFS{root: &memNode{name: "/", dir: true, children: map[string]*memNode{}, mtime: time.Now()}, limit: limit}
	for _, d := range []string{"/tmp", "/dev", "/etc", "/home", "/root", "/var/run"} {
		_ = f.mkdirAll(d, false)
	}
	f.mustLookup("/dev").children["null"] = &memNode{name: "null", null: true, mtime: time.Now()}
	return f
}

func clean(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return path.Clean(p)
}

func (f *memFS) mustLookup(p string) *memNode {
	n, err := f.lookup(p)
	if err != nil {
		panic(err)
	}
	return n
}

// lookup finds p; the caller holds f.mu.
func (f *memFS) lookup(p string) (*memNode, error) {
	p = clean(p)
	n := f.root
	if p == "/" {
		return n, nil
	}
	for _, part := range strings.Split(p[1:], "/") {
		if !n.dir {
			return nil, &fs.PathError{Op: "open", Path: p, Err: errors.New("not a directory")}
		}
		c, ok := n.children[part]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		n = c
	}
	return n, nil
}

// mkdirAll creates p and its parents; readOnly marks the new directories (volume mounts).
func (f *memFS) mkdirAll(p string, readOnly bool) error {
	p = clean(p)
	n := f.root
	if p == "/" {
		return nil
	}
	for _, part := range strings.Split(p[1:], "/") {
		c, ok := n.children[part]
		if !ok {
			if n.readOnly {
				return &fs.PathError{Op: "mkdir", Path: p, Err: errReadOnly}
			}
			c = &memNode{name: part, dir: true, readOnly: readOnly, children: map[string]*memNode{}, mtime: time.Now()}
			n.children[part] = c
		} else if !c.dir {
			return &fs.PathError{Op: "mkdir", Path: p, Err: errors.New("not a directory")}
		}
		n = c
	}
	return nil
}

var errReadOnly = errors.New("read-only file system")

// MkdirAll creates a directory and its parents, as mkdir -p.
func (f *memFS) MkdirAll(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mkdirAll(p, false)
}

// Mkdir creates one directory whose parent exists.
func (f *memFS) Mkdir(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p = clean(p)
	parent, err := f.lookup(path.Dir(p))
	if err != nil {
		return err
	}
	if !parent.dir {
		return &fs.PathError{Op: "mkdir", Path: p, Err: errors.New("not a directory")}
	}
	if _, ok := parent.children[path.Base(p)]; ok {
		return &fs.PathError{Op: "mkdir", Path: p, Err: fs.ErrExist}
	}
	if parent.readOnly {
		return &fs.PathError{Op: "mkdir", Path: p, Err: errReadOnly}
	}
	parent.children[path.Base(p)] = &memNode{name: path.Base(p), dir: true, children: map[string]*memNode{}, mtime: time.Now()}
	return nil
}

// putFile writes a file, creating its directory; used to lay out volumes.
func (f *memFS) putFile(p string, data []byte, readOnly bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p = clean(p)
	if err := f.mkdirAll(path.Dir(p), readOnly); err != nil {
		return err
	}
	parent, _ := f.lookup(path.Dir(p))
	if f.size+int64(len(data)) > f.limit {
		return errNoSpace
	}
	f.size += int64(len(data))
	parent.children[path.Base(p)] = &memNode{name: path.Base(p), data: data, readOnly: readOnly, mtime: time.Now()}
	return nil
}

// Remove deletes p; a non-empty directory only when recursive.
func (f *memFS) Remove(p string, recursive bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p = clean(p)
	if p == "/" {
		return &fs.PathError{Op: "remove", Path: p, Err: fs.ErrPermission}
	}
	parent, err := f.lookup(path.Dir(p))
	if err != nil {
		return err
	}
	n, ok := parent.children[path.Base(p)]
	if !ok {
		return &fs.PathError{Op: "remove", Path: p, Err: fs.ErrNotExist}
	}
	if parent.readOnly || n.readOnly {
		return &fs.PathError{Op: "remove", Path: p, Err: errReadOnly}
	}
	if n.dir && len(n.children) > 0 && !recursive {
		return &fs.PathError{Op: "remove", Path: p, Err: errors.New("directory not empty")}
	}
	f.size -= n.du()
	delete(parent.children, path.Base(p))
	return nil
}

func (n *memNode) du() int64 {
	s := int64(len(n.data))
	for _, c := range n.children {
		s += c.du()
	}
	return s
}

// Stat describes p.
func (f *memFS) Stat(p string) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup(p)
	if err != nil {
		return nil, err
	}
	return n.info(), nil
}

// ReadDir lists a directory, sorted by name.
func (f *memFS) ReadDir(p string) ([]fs.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup(p)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: errors.New("not a directory")}
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]fs.DirEntry, 0, len(names))
	for _, name := range names {
		out = append(out, fs.FileInfoToDirEntry(n.children[name].info()))
	}
	return out, nil
}

// ReadFile returns a copy of a file's content.
func (f *memFS) ReadFile(p string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup(p)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, &fs.PathError{Op: "read", Path: p, Err: errors.New("is a directory")}
	}
	return bytes.Clone(n.data), nil
}

// Open opens p with os.OpenFile's flags. Reads see the content at open time; writes land when
// they are made.
func (f *memFS) Open(p string, flag int) (io.ReadWriteCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p = clean(p)
	n, err := f.lookup(p)
	write := flag&(os.O_WRONLY|os.O_RDWR) != 0
	switch {
	case err == nil && n.null:
		return nullFile{}, nil
	case err == nil && n.dir && write:
		return nil, &fs.PathError{Op: "open", Path: p, Err: errors.New("is a directory")}
	case err == nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrExist}
	case errors.Is(err, fs.ErrNotExist) && flag&os.O_CREATE != 0:
		parent, perr := f.lookup(path.Dir(p))
		if perr != nil {
			return nil, perr
		}
		if !parent.dir {
			return nil, &fs.PathError{Op: "open", Path: p, Err: errors.New("not a directory")}
		}
		if parent.readOnly {
			return nil, &fs.PathError{Op: "open", Path: p, Err: errReadOnly}
		}
		n = &memNode{name: path.Base(p), mtime: time.Now()}
		parent.children[n.name] = n
	case err != nil:
		return nil, err
	}
	if !write {
		if n.dir {
			return nil, &fs.PathError{Op: "read", Path: p, Err: errors.New("is a directory")}
		}
		return readOnlyFile{bytes.NewReader(bytes.Clone(n.data))}, nil
	}
	if n.readOnly {
		return nil, &fs.PathError{Op: "open", Path: p, Err: errReadOnly}
	}
	if flag&os.O_TRUNC != 0 {
		f.size -= int64(len(n.data))
		n.data = nil
		n.mtime = time.Now()
	}
	return &memWriter{fs: f, n: n}, nil
}

type memWriter struct {
	fs *memFS
	n  *memNode
}

func (w *memWriter) Read([]byte) (int, error) { return 0, errors.New("file not open for reading") }

func (w *memWriter) Write(p []byte) (int, error) {
	w.fs.mu.Lock()
	defer w.fs.mu.Unlock()
	if w.fs.size+int64(len(p)) > w.fs.limit {
		return 0, errNoSpace
	}
	w.fs.size += int64(len(p))
	w.n.data = append(w.n.data, p...)
	w.n.mtime = time.Now()
	return len(p), nil
}

func (w *memWriter) Close() error { return nil }

type readOnlyFile struct{ *bytes.Reader }

func (readOnlyFile) Write([]byte) (int, error) { return 0, errors.New("file not open for writing") }
func (readOnlyFile) Close() error              { return nil }

type nullFile struct{}

func (nullFile) Read([]byte) (int, error)    { return 0, io.EOF }
func (nullFile) Write(p []byte) (int, error) { return len(p), nil }
func (nullFile) Close() error                { return nil }

func (n *memNode) info() fs.FileInfo {
	mode := fs.FileMode(0o644)
	if n.dir {
		mode = fs.ModeDir | 0o755
	}
	if n.readOnly {
		mode &^= 0o222
	}
	if n.null {
		mode = fs.ModeDevice | fs.ModeCharDevice | 0o666
	}
	return nodeInfo{name: n.name, size: int64(len(n.data)), mode: mode, mtime: n.mtime}
}

type nodeInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (i nodeInfo) Name() string       { return i.name }
func (i nodeInfo) Size() int64        { return i.size }
func (i nodeInfo) Mode() fs.FileMode  { return i.mode }
func (i nodeInfo) ModTime() time.Time { return i.mtime }
func (i nodeInfo) IsDir() bool        { return i.mode.IsDir() }
func (i nodeInfo) Sys() any           { return nil }

func (i nodeInfo) String() string { return fmt.Sprintf("%s %d %s", i.mode, i.size, i.name) }
