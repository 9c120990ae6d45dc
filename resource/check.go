package resource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/funcs"
)

// CheckResult is what [Check] found for one resource.
type CheckResult struct {
	// Resource is the resource's [Resource.Name].
	Resource string
	// Dest is the resource's dest.
	Dest string
	// Changed reports that the output differs from dest (its content, or
	// its mode or owner, or dest is missing).
	Changed bool
	// Diff is the unified diff from dest to the output, when asked for and
	// Changed. It holds rendered content: show it only to whoever may read
	// dest.
	Diff string
	// Err is why the resource fails the check: a template error, or a
	// [*HookError] of its check_cmd (whose Output is the checker's). It
	// is an [*Error] naming the resource and the step.
	Err error
}

// Check validates every resource against one snapshot of b (of
// [MergePrefixes]), as a run would apply it, but writes nothing to any
// dest and runs no reload_cmd: each resource is rendered, its output
// compared with dest and, when it has a check_cmd, written to a stage file
// in a temporary directory (removed before Check returns; never next to
// dest, whose directory may not even exist where Check runs, such as a CI
// job) that check_cmd gets as {{.src}}. check_cmd runs whether or not the
// output differs from dest, and whatever [Options.SyncOnly] and
// [Options.Noop] say: checking is the point.
//
// With diff set, each changed resource's result holds the diff. The
// results are in the order of rs; the error is for the whole check (the
// snapshot, or ctx ending it).
func Check(ctx context.Context, b backends.Backend, rs []*Resource, diff bool) ([]CheckResult, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	s, _, err := readStore(ctx, b, MergePrefixes(rs))
	if err != nil {
		return nil, fmt.Errorf("resource: snapshot: %w", err)
	}
	dir, err := os.MkdirTemp("", "kvconf-check-")
	if err != nil {
		return nil, fmt.Errorf("resource: check: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }() // our own temporary files
	out := make([]CheckResult, len(rs))
	parallel(rs, func(i int, r *Resource) {
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		out[i] = r.checkOne(ctx, s, filepath.Join(dir, strconv.Itoa(i)), diff)
	})
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("resource: check: %w", err)
	}
	return out, nil
}

// checkOne is [Check] for r, with dir (not yet made) for its stage file.
func (r *Resource) checkOne(ctx context.Context, s *funcs.Store, dir string, diff bool) CheckResult {
	res := CheckResult{Resource: r.Name, Dest: r.dest}
	fail := func(step Step, err error) CheckResult {
		res.Err = r.fail(step, err)
		return res
	}
	var buf bytes.Buffer
	if err := r.render(ctx, &buf, s.View(r.prefix, r.Config.Keys)); err != nil {
		return fail(StepRender, err)
	}
	target, err := linkTarget(r.dest)
	if err != nil {
		return fail(StepWrite, err)
	}
	cur, err := readState(target, buf.Bytes())
	if err != nil && !errors.Is(err, os.ErrPermission) {
		return fail(StepWrite, err)
	}
	want := state{exists: true, data: buf.Bytes(), mode: defaultMode, uid: r.uid, gid: r.gid}
	switch {
	case r.modeSet:
		want.mode = r.mode
	case cur.exists:
		want.mode = cur.mode
	}
	if want.uid < 0 {
		want.uid = cur.uid
	}
	if want.gid < 0 {
		want.gid = cur.gid
	}
	res.Changed = !cur.exists || !bytes.Equal(cur.data, want.data) || cur.mode != want.mode ||
		cur.uid != want.uid || cur.gid != want.gid
	if diff && res.Changed {
		res.Diff = r.diff(cur, want)
	}
	if r.check == nil {
		return res
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fail(StepWrite, fmt.Errorf("stage: %w", err))
	}
	stage := filepath.Join(dir, filepath.Base(r.dest))
	if err := os.WriteFile(stage, want.data, want.mode.Perm()|0o400); err != nil {
		return fail(StepWrite, fmt.Errorf("stage: %w", err))
	}
	cmd, err := hookCommand(r.check, stage, r.dest)
	if err != nil {
		return fail(StepCheck, fmt.Errorf("check_cmd: %w", err))
	}
	if err := r.hook(ctx, "check_cmd", cmd); err != nil {
		return fail(StepCheck, err)
	}
	return res
}
