package resource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aymanbagabas/go-udiff"

	"github.com/kvconf/kvconf/appliers"
	"github.com/kvconf/kvconf/funcs"
)

// Error is the failure of one resource: its file name, the step that
// failed and the cause.
type Error struct {
	// Resource is the resource's name, its file path relative to the confdir.
	Resource string
	// Dest is the resource's dest.
	Dest string
	// Step is the step that failed, or "" when unknown.
	Step Step
	// Err is the cause.
	Err error
}

func (e *Error) Error() string { return "resource " + e.Resource + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Step names a step of bringing a dest up to date, for reports.
type Step string

// The steps, in their order.
const (
	// StepFetch reads the keys from the backend (see [FetchError]).
	StepFetch Step = "fetch"
	// StepRender renders the template.
	StepRender Step = "render"
	// StepWrite reads dest, writes the stage file, or renames it over
	// dest.
	StepWrite Step = "write"
	// StepCheck runs check_cmd.
	StepCheck Step = "check"
	// StepReload runs reload_cmd, and the rollback when it fails.
	StepReload Step = "reload"
)

// fail returns err, when not nil, as an [*Error] of r at step.
func (r *Resource) fail(step Step, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Resource: r.Name, Dest: r.dest, Step: step, Err: err}
}

// Result is what [Resource.Apply] did to dest.
type Result int

const (
	// Unchanged means dest already had the wanted content, mode and owner,
	// or that it still has its previous state after a failure.
	Unchanged Result = iota
	// Updated means dest now holds the new content.
	Updated
	// WouldUpdate means dest differs but [Options.Noop] kept it as it was.
	WouldUpdate
	// Applied means dest now holds the new content and the resource's
	// applier (its [template.apply] table) brought the service up to
	// date, so reload_cmd did not run.
	Applied
)

// String returns "unchanged", "updated" or "would update".
func (r Result) String() string {
	switch r {
	case Unchanged:
		return "unchanged"
	case Updated:
		return "updated"
	case WouldUpdate:
		return "would update"
	case Applied:
		return "applied"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// defaultMode is the mode of a new dest when the resource sets none.
const defaultMode fs.FileMode = 0o644

// modeBits are the bits of a file mode that Apply sets and compares.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// state is what a dest file holds.
type state struct {
	exists bool
	data   []byte
	mode   fs.FileMode
	uid    int // -1: whatever a new file gets
	gid    int
}

// Apply renders the resource against s, the backend's whole store with full
// keys, and brings dest up to date. The template sees s through
// [funcs.Store.View]: only the resource's keys, relative to its prefix and
// rooted at "/", as in confd.
//
// The steps, each of which stops at the first error:
//
//  1. Render to memory. A render error leaves dest untouched.
//  2. Compare with dest: when content, mode and owner all match, return
//     [Unchanged] without touching anything. An unset mode keeps dest's
//     mode but for its setuid and setgid bits (0644 for a new file); an unset owner or group keeps dest's
//     (the process's for a new file).
//  3. With [Options.Noop], print a unified diff to [Options.Diff] and
//     return [WouldUpdate].
//  4. Write a stage file next to dest, with its owner and mode set before
//     any content is written, and sync it.
//  5. Unless [Options.SyncOnly], run check_cmd on it. On failure dest is
//     untouched, the stage file is removed (kept with
//     [Options.KeepStageFile]) and the error is a [*HookError].
//  6. Rename the stage file over dest and sync the directory.
//  6. With an applier (a [template.apply] table) and unless
//     [Options.SyncOnly], the applier applies the change before the
//     rename; when it does, Apply returns [Applied] after the rename and
//     runs no reload_cmd. When it cannot, the reason is logged and the
//     steps go on: reload_cmd is the fallback.
//  7. Unless [Options.SyncOnly], run reload_cmd. When it fails and
//     rollback is on (the default), dest's previous content, mode and
//     owner are restored the same atomic way (or dest is removed if it did
//     not exist), and the error says so.
//
// When dest is a symbolic link, the file it points to is written (and
// created if missing, in a directory that exists) and the link stays: a
// dest in nginx's sites-enabled that links to sites-available updates the
// file in sites-available. A link is followed only when it is safe to (see
// [LinkError]), and no directory above dest may be one that another user
// could swap for a link (see [DirError]).
//
// Errors are [*Error]s, whose messages start with "resource NAME: ". Apply
// calls on one resource are serialised.
func (r *Resource) Apply(ctx context.Context, s *funcs.Store) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.apply(ctx, s)
}

func (r *Resource) apply(ctx context.Context, s *funcs.Store) (Result, error) {
	res, u, err := r.prepare(ctx, s)
	if u == nil {
		return res, err
	}
	applied := r.applyLive(ctx, u)
	if err := r.commit(u); err != nil {
		return Unchanged, err
	}
	syncErr := syncDir(filepath.Dir(u.target))
	if syncErr != nil {
		syncErr = fmt.Errorf("commit: %w", syncErr)
	}
	if applied {
		return Applied, r.fail(StepWrite, syncErr)
	}
	return r.finish(ctx, u, syncErr)
}

// applyLive has the resource's applier, if any, apply the staged update
// u, and reports whether it did. When it did not, it logs why: reload_cmd
// is then the fallback.
func (r *Resource) applyLive(ctx context.Context, u *staged) bool {
	if r.applier == nil || r.opts.SyncOnly {
		return false
	}
	start := time.Now()
	// The rendered content, not a read of the stage file: whoever can
	// write dest's directory could have swapped that for a link.
	c := appliers.Change{Resource: r.Name, Dest: r.dest, Stage: u.stage, New: u.data}
	if u.prev.exists {
		c.Old = u.prev.data
	}
	actx, cancel := context.WithTimeout(ctx, r.timeout)
	err := r.applier.Apply(actx, c, appliers.Env{Run: r.runApplyHook, Signal: r.signal,
		Logger: r.log.With("resource", r.Name, "applier", r.applierName)})
	cancel()
	if err != nil {
		reason := "error"
		if errors.Is(err, appliers.ErrUnsupported) {
			reason = "unsupported"
		}
		r.log.Info("apply fallback", "resource", r.Name, "dest", r.dest, "applier", r.applierName,
			"path", "reload", "reason", reason, "err", err)
		r.observe(EventApplyFallback, time.Since(start), err)
		return false
	}
	r.log.Info("applied", "resource", r.Name, "dest", r.dest, "applier", r.applierName, "path", "runtime")
	r.observe(EventApplied, time.Since(start), nil)
	return true
}

// runApplyHook runs an applier's command as a hook, with {{.src}} and
// {{.dest}} both dest.
func (r *Resource) runApplyHook(ctx context.Context, name, cmd string) error {
	t, err := parseHook(name, cmd)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if t == nil {
		return fmt.Errorf("%s: empty command", name)
	}
	line, err := hookCommand(t, r.dest, r.dest)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return r.runHook(ctx, name, line)
}

// SetSignal sets how the resource's applier signals the service kvconf
// supervises (exec mode): the "signal" applier without a pidfile uses it.
func (r *Resource) SetSignal(f func(os.Signal) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signal = f
}

// Applier returns the type of the resource's applier, or "" without one.
func (r *Resource) Applier() string { return r.applierName }

// staged is a new content of dest, staged and checked, that
// [Resource.commit] puts in place.
type staged struct {
	target string // the file written: dest, or the file dest links to
	stage  string // the stage file, beside target
	data   []byte // what the stage file was written with
	prev   state  // what target held before, for a rollback
}

// prepare runs the steps of [Resource.Apply] up to the commit: it renders,
// compares with dest and, when dest must change, writes and syncs the
// stage file and runs check_cmd on it. It returns the staged update to
// commit, or nil with the result and error of Apply. Errors are [*Error]s,
// as are those of commit and finish.
func (r *Resource) prepare(ctx context.Context, s *funcs.Store) (Result, *staged, error) {
	// Made with its capacity, not grown to it: Grow would zero it all,
	// touching every page before the render writes any.
	buf := bytes.NewBuffer(make([]byte, 0, r.sizeHint()))
	if err := r.render(ctx, buf, s.View(r.prefix, r.Config.Keys)); err != nil {
		return Unchanged, nil, r.fail(StepRender, err) // already "template: name:line:col: ..."
	}
	r.lastSize = buf.Len()
	target, err := linkTarget(r.dest)
	if err != nil {
		return Unchanged, nil, r.fail(StepWrite, err)
	}
	cur, err := readState(target, buf.Bytes())
	if err != nil {
		return Unchanged, nil, r.fail(StepWrite, err)
	}
	want := state{exists: true, data: buf.Bytes(), mode: defaultMode, uid: r.uid, gid: r.gid}
	switch {
	case r.modeSet:
		want.mode = r.mode
	case cur.exists:
		// Not its setuid and setgid bits: dest may be another user's
		// hard link to a setuid program.
		want.mode = cur.mode &^ (fs.ModeSetuid | fs.ModeSetgid)
	}
	if want.uid < 0 {
		want.uid = cur.uid
	}
	if want.gid < 0 {
		want.gid = cur.gid
	}
	if cur.exists && bytes.Equal(cur.data, want.data) && cur.mode == want.mode &&
		cur.uid == want.uid && cur.gid == want.gid {
		r.log.Debug("unchanged", "resource", r.Name, "dest", r.dest)
		r.observe(EventUnchanged, 0, nil)
		return Unchanged, nil, nil
	}

	if r.opts.Noop {
		if r.opts.Diff != nil {
			if _, err := io.WriteString(r.opts.Diff, r.diff(cur, want)); err != nil {
				return WouldUpdate, nil, r.fail(StepWrite, fmt.Errorf("diff: %w", err))
			}
		}
		r.log.Info("would update", "resource", r.Name, "dest", r.dest)
		return WouldUpdate, nil, nil
	}

	// A new dest's missing directory is made, as consul-template does;
	// never that of a file a link points to.
	stage, err := writeStage(target, want, target == r.dest)
	if err != nil {
		return Unchanged, nil, r.fail(StepWrite, err)
	}
	if r.check != nil && !r.opts.SyncOnly {
		cmd, err := hookCommand(r.check, stage, r.dest)
		if err != nil {
			// The stage file is ours and holds nothing dest needs; a
			// failure to remove it leaves a dot file behind, no worse.
			_ = os.Remove(stage)
			return Unchanged, nil, r.fail(StepCheck, fmt.Errorf("check_cmd: %w", err))
		}
		if err := r.hook(ctx, "check_cmd", cmd); err != nil {
			if r.opts.KeepStageFile {
				r.log.Info("kept stage file", "resource", r.Name, "dest", r.dest, "stage", stage)
			} else {
				_ = os.Remove(stage) // as above
			}
			return Unchanged, nil, r.fail(StepCheck, err)
		}
	}
	return Unchanged, &staged{target: target, stage: stage, data: want.data, prev: cur}, nil
}

// commit renames u's stage file over dest. It does not sync the directory.
// On failure, dest is untouched and the stage file removed.
func (r *Resource) commit(u *staged) error {
	if err := os.Rename(u.stage, u.target); err != nil {
		_ = os.Remove(u.stage) // as in prepare
		return r.fail(StepWrite, fmt.Errorf("commit: %w", err))
	}
	r.log.Info("updated", "resource", r.Name, "dest", r.dest)
	r.observe(EventWritten, 0, nil)
	return nil
}

// finish runs the steps of [Resource.Apply] after the commit of u and the
// sync of dest's directory, which failed with syncErr, if at all: the
// reload_cmd and, when it fails, the rollback. A failed directory sync
// only weakens durability, so the reload still runs and syncErr is
// reported with its result.
func (r *Resource) finish(ctx context.Context, u *staged, syncErr error) (Result, error) {
	if r.reload == nil || r.opts.SyncOnly {
		return Updated, r.fail(StepWrite, syncErr)
	}
	cmd, err := hookCommand(r.reload, r.dest, r.dest)
	if err == nil {
		err = r.hook(ctx, "reload_cmd", cmd)
	} else {
		err = fmt.Errorf("reload_cmd: %w", err)
	}
	if err == nil {
		return Updated, r.fail(StepWrite, syncErr)
	}
	if r.Config.Rollback != nil && !*r.Config.Rollback {
		return Updated, r.fail(StepReload, errors.Join(err, syncErr))
	}
	cur := u.prev
	if rerr := restore(u.target, cur); rerr != nil {
		return Updated, r.fail(StepReload, errors.Join(err, fmt.Errorf("rollback of %s: %w", r.dest, rerr)))
	}
	r.log.Warn("rolled back", "resource", r.Name, "dest", r.dest)
	r.observe(EventRolledBack, 0, nil)
	if cur.exists {
		return Unchanged, r.fail(StepReload, fmt.Errorf("%w (previous content of %s restored)", err, r.dest))
	}
	return Unchanged, r.fail(StepReload, fmt.Errorf("%w (removed %s, which did not exist before)", err, r.dest))
}

// maxLinks bounds the chain of symbolic links linkTarget follows.
const maxLinks = 40

// LinkError reports a dest that is a symbolic link (or a chain of them)
// that Apply does not follow, as whoever could change it could make kvconf
// write, as root, any file.
//
// A link is followed when it is owned by root or by kvconf's user, and the
// directory holding it is owned by one of them too and writable by no one
// else (no write bit for group or others, sticky or not). That is stricter
// than the kernel's fs.protected_symlinks, which trusts, outside sticky
// world-writable directories, any link, and inside them one owned by the
// directory's owner: a user who owns dest's directory can write there but
// should not be able to make root write elsewhere. Each link of a chain is
// checked; the directories of a link's target are never created.
type LinkError struct {
	// Dest is the resource's dest.
	Dest string
	// Link is the link not followed: dest, or a link dest leads to.
	Link string
	// Reason says why, such as "it is owned by uid 65534".
	Reason string
}

func (e *LinkError) Error() string {
	via := ""
	if e.Link != e.Dest {
		via = " via " + e.Link
	}
	return fmt.Sprintf("dest %s is a symbolic link%s that kvconf does not follow: %s "+
		"(a link must be owned by root and in a directory only root can write; "+
		"otherwise set dest to the file itself)", e.Dest, via, e.Reason)
}

// linkTarget returns the file that writing dest should replace: dest
// itself, or, when dest is a symbolic link (or a chain of them) that is
// safe to follow (see [LinkError]), the file at the end of the chain,
// which may not exist yet.
func linkTarget(dest string) (string, error) {
	p := dest
	for range maxLinks {
		if err := safeDir(dest, filepath.Dir(p)); err != nil {
			return "", err
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || err == nil && fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		if err != nil {
			return "", fmt.Errorf("read dest: %w", err)
		}
		if reason, err := unsafeLink(p, fi); err != nil {
			return "", fmt.Errorf("read dest: %w", err)
		} else if reason != "" {
			return "", &LinkError{Dest: dest, Link: p, Reason: reason}
		}
		link, err := os.Readlink(p)
		if err != nil {
			return "", fmt.Errorf("read dest: %w", err)
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(p), link)
		}
		p = link
	}
	return "", fmt.Errorf("read dest: %s: more than %d symbolic links", dest, maxLinks)
}

// unsafeLink returns why the symbolic link p, whose Lstat is fi, must not
// be followed, or "" when it may be: see [LinkError]. As the directory
// holding p can be written by trusted users only, p cannot change between
// this check and the read of the link.
func unsafeLink(p string, fi fs.FileInfo) (string, error) {
	uid, _ := fileOwner(fi)
	if uid < 0 {
		return "", nil // no file owners on this system
	}
	euid := os.Geteuid()
	trusted := func(id int) bool { return id == 0 || id == euid }
	who := "root"
	if euid != 0 {
		who = fmt.Sprintf("root or uid %d (kvconf's user)", euid)
	}
	if !trusted(uid) {
		return fmt.Sprintf("it is owned by uid %d, not by %s", uid, who), nil
	}
	dir := filepath.Dir(p)
	dfi, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if duid, _ := fileOwner(dfi); !trusted(duid) {
		return fmt.Sprintf("its directory %s is owned by uid %d, not by %s", dir, duid, who), nil
	}
	if m := dfi.Mode(); m.Perm()&0o022 != 0 {
		return fmt.Sprintf("its directory %s (mode %04o) can be written by others than its owner", dir, octal(m)), nil
	}
	return "", nil
}

// DirError reports a dest with a directory on its path (or on that of a
// link it leads to) that someone other than root or kvconf's user could
// swap for a link, and so make kvconf write, as root, in any directory:
// a directory held by a directory that they own or can write (unless it
// is sticky and the entry is root's), a symbolic link among them that is
// not root's in such a directory, or a missing directory that kvconf
// would make in one. Dest's own directory may be anyone's: dest itself is
// never followed unless safe (see [LinkError]).
type DirError struct {
	// Dest is the resource's dest.
	Dest string
	// Dir is the directory, or link, that could be swapped.
	Dir string
	// Reason says why, such as "its directory /srv is owned by uid 65534".
	Reason string
}

func (e *DirError) Error() string {
	return fmt.Sprintf("dest %s: %s could be replaced by a link, as %s "+
		"(every directory above dest must be one only root can change)", e.Dest, e.Dir, e.Reason)
}

// safeDir returns a [*DirError] when someone other than root or kvconf's
// user could swap dir, or a directory above it, for a link. It follows
// the links on the way once it has checked them, as the kernel would.
func safeDir(dest, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("read dest: %w", err)
	}
	p := "/"
	rest := strings.Split(abs, "/")
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			p = filepath.Dir(p) // p holds no links: this is its parent
			continue
		}
		next := filepath.Join(p, name)
		dfi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("read dest: %w", err)
		}
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			// MkdirAll would make it: only in a directory no one else can write.
			if reason := replaceable(p, dfi, nil); reason != "" {
				return &DirError{Dest: dest, Dir: next, Reason: reason}
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read dest: %w", err)
		}
		if reason := replaceable(p, dfi, fi); reason != "" {
			return &DirError{Dest: dest, Dir: next, Reason: reason}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			p = next
			continue
		}
		if links++; links > maxLinks {
			return fmt.Errorf("read dest: %s: more than %d symbolic links", dir, maxLinks)
		}
		link, err := os.Readlink(next)
		if err != nil {
			return fmt.Errorf("read dest: %w", err)
		}
		if filepath.IsAbs(link) {
			p = "/"
		}
		rest = append(strings.Split(link, "/"), rest...)
	}
	return nil
}

// replaceable returns why someone other than root or kvconf's user could
// replace fi, an entry of the directory dir whose Stat is dfi (a nil fi:
// make one), or "" when no one can.
func replaceable(dir string, dfi, fi fs.FileInfo) string {
	duid, _ := fileOwner(dfi)
	if duid < 0 {
		return "" // no file owners on this system
	}
	euid := os.Geteuid()
	trusted := func(id int) bool { return id == 0 || id == euid }
	if !trusted(duid) {
		return fmt.Sprintf("its directory %s is owned by uid %d", dir, duid)
	}
	uid := 0
	if fi != nil {
		uid, _ = fileOwner(fi)
	}
	if fi != nil && fi.Mode()&fs.ModeSymlink != 0 && !trusted(uid) {
		return fmt.Sprintf("it is a link owned by uid %d", uid)
	}
	m := dfi.Mode()
	if m.Perm()&0o022 == 0 || (fi != nil && m&fs.ModeSticky != 0 && trusted(uid)) {
		return ""
	}
	return fmt.Sprintf("its directory %s (mode %04o) can be written by others than its owner", dir, octal(m))
}

// sizeHint returns how many bytes a render of r is likely to take: those
// of its last render, or before the first, the size of dest (0 if it
// cannot be read), plus some room. Rendering into a buffer of that size
// spares copying the output each time the buffer would double.
func (r *Resource) sizeHint() int {
	n := r.lastSize
	if n == 0 {
		fi, err := os.Stat(r.dest)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxSizeHint {
			return 0
		}
		n = int(fi.Size())
	}
	return n + n/8 + 512
}

// maxSizeHint bounds the size of dest that [Resource.sizeHint] believes.
const maxSizeHint = 1 << 30

// readState returns what the file at p holds. When it holds exactly like
// (the new content), its data is like itself: the file is compared a
// piece at a time, and an unchanged dest costs no copy in memory. p is
// opened without following a symbolic link (linkTarget resolved those)
// and without blocking on a FIFO; what is at p must be a regular file.
func readState(p string, like []byte) (state, error) {
	st := state{uid: -1, gid: -1}
	f, err := openNoFollow(p)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if isLinkErr(err) {
		return st, fmt.Errorf("read dest: %s became a symbolic link", p)
	}
	if err != nil {
		return st, fmt.Errorf("read dest: %w", err)
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose on Close
	fi, err := f.Stat()
	if err != nil {
		return st, fmt.Errorf("read dest: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return st, fmt.Errorf("read dest: %s is not a regular file", p)
	}
	data, err := readData(f, fi.Size(), like)
	if err != nil {
		return st, fmt.Errorf("read dest: %w", err)
	}
	st.exists, st.data, st.mode = true, data, fi.Mode()&modeBits
	st.uid, st.gid = fileOwner(fi)
	return st, nil
}

// readData returns the content of f, of size bytes when it was looked
// at: like when they are the same, else a copy read whole.
func readData(f *os.File, size int64, like []byte) ([]byte, error) {
	if size == int64(len(like)) {
		same, err := holds(f, like)
		if err != nil || same {
			return like, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	if size < maxSizeHint {
		b.Grow(int(size) + bytes.MinRead)
	}
	_, err := b.ReadFrom(f)
	return b.Bytes(), err
}

// compareBuffers hold the pieces of files that [holds] reads.
var compareBuffers = sync.Pool{New: func() any { return new([compareBytes]byte) }}

// compareBytes is the size of the pieces [holds] compares.
const compareBytes = 64 << 10

// holds reports whether what f has left to read is data.
func holds(f io.Reader, data []byte) (bool, error) {
	buf := compareBuffers.Get().(*[compareBytes]byte)
	defer compareBuffers.Put(buf)
	for {
		n, err := f.Read(buf[:])
		if n > len(data) || !bytes.Equal(buf[:n], data[:n]) {
			return false, nil
		}
		data = data[n:]
		if errors.Is(err, io.EOF) {
			return len(data) == 0, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// writeStage writes st to a new stage file next to dest and returns its
// path; with mkdir, it first makes dest's directory if it is missing.
// Owner and mode are set before the content is written, so that the
// content is never readable by more than the final mode allows. The stage
// file is created with O_EXCL, so a link planted at its name is an error,
// never followed.
func writeStage(dest string, st state, mkdir bool) (string, error) {
	if mkdir {
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return "", fmt.Errorf("stage: %w", err)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*")
	if err != nil {
		return "", fmt.Errorf("stage: %w", err)
	}
	name := f.Name()
	if err := fillStage(f, st); err != nil {
		return "", errors.Join(fmt.Errorf("stage: %w", err), os.Remove(name))
	}
	return name, nil
}

// fillStage sets f's owner and mode, writes st.data, syncs and closes f.
// Chown comes first because it may clear the setuid and setgid bits.
func fillStage(f *os.File, st state) error {
	fi, err := f.Stat()
	if err != nil {
		return errors.Join(err, f.Close())
	}
	uid, gid := fileOwner(fi)
	if (st.uid >= 0 && st.uid != uid) || (st.gid >= 0 && st.gid != gid) {
		if err := f.Chown(st.uid, st.gid); err != nil {
			return errors.Join(err, f.Close())
		}
	}
	if err := f.Chmod(st.mode); err != nil {
		return errors.Join(err, f.Close())
	}
	if _, err := f.Write(st.data); err != nil {
		return errors.Join(err, f.Close())
	}
	// Without CAP_FSETID, a write clears the setuid and setgid bits.
	if st.mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		if err := f.Chmod(st.mode); err != nil {
			return errors.Join(err, f.Close())
		}
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	return f.Close()
}

// restore puts dest back to st, atomically, or removes it if st says it
// did not exist.
func restore(dest string, st state) error {
	if !st.exists {
		if err := os.Remove(dest); err != nil {
			return err
		}
		return syncDir(filepath.Dir(dest))
	}
	stage, err := writeStage(dest, st, false)
	if err != nil {
		return err
	}
	if err := os.Rename(stage, dest); err != nil {
		return errors.Join(err, os.Remove(stage))
	}
	return syncDir(filepath.Dir(dest))
}

// syncDir flushes a directory, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return errors.Join(fmt.Errorf("sync %s: %w", dir, err), d.Close())
	}
	return d.Close()
}

// diff returns a unified diff from cur to want, preceded by comment lines
// for changes of mode and owner.
func (r *Resource) diff(cur, want state) string {
	var b strings.Builder
	from := r.dest
	if !cur.exists {
		from = "/dev/null"
		fmt.Fprintf(&b, "# %s: new file, mode %04o\n", r.dest, octal(want.mode))
	} else {
		if cur.mode != want.mode {
			fmt.Fprintf(&b, "# %s: mode %04o -> %04o\n", r.dest, octal(cur.mode), octal(want.mode))
		}
		if cur.uid != want.uid || cur.gid != want.gid {
			fmt.Fprintf(&b, "# %s: owner %d:%d -> %d:%d\n", r.dest, cur.uid, cur.gid, want.uid, want.gid)
		}
	}
	if r.Config.Sensitive {
		if !cur.exists || !bytes.Equal(cur.data, want.data) {
			fmt.Fprintf(&b, "# %s: content differs; diff withheld: resource is sensitive\n", r.dest)
		}
		return b.String()
	}
	b.WriteString(udiff.Unified(from, r.dest, string(cur.data), string(want.data)))
	return b.String()
}

// octal returns m's permission bits in chmod's octal notation.
func octal(m fs.FileMode) uint32 {
	n := uint32(m & fs.ModePerm)
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return n
}
