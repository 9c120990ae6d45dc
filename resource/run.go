package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/funcs"
)

// Once reads the keys of every resource from b in one snapshot (of
// [MergePrefixes]) and applies every resource to it. One resource's
// failure does not stop the others; the result joins their errors, each
// starting with "resource NAME: ". A failed snapshot fails them all.
func Once(ctx context.Context, b backends.Backend, rs []*Resource) error {
	failed, err := once(ctx, b, rs)
	errs := make([]error, 0, len(failed)+1)
	for _, f := range failed {
		errs = append(errs, f.err)
	}
	return errors.Join(append(errs, err)...)
}

// failure is one resource's error in a run.
type failure struct {
	r   *Resource
	err error
}

// once is [Once] with the errors kept apart: failed for single resources,
// err for the whole run (the snapshot, or ctx ending it).
func once(ctx context.Context, b backends.Backend, rs []*Resource) (failed []failure, err error) {
	if len(rs) == 0 {
		return nil, nil
	}
	snap, err := b.Snapshot(ctx, MergePrefixes(rs))
	if err != nil {
		return nil, fmt.Errorf("resource: snapshot: %w", err)
	}
	logger(rs).Debug("snapshot", "rev", snap.Rev, "keys", len(snap.KVs))
	s := funcs.NewStore(snap.KVs)
	for _, r := range rs {
		if err := ctx.Err(); err != nil {
			return failed, fmt.Errorf("resource: %w", err)
		}
		if _, err := r.Apply(ctx, s); err != nil {
			failed = append(failed, failure{r, err})
		}
	}
	return failed, nil
}

// logger returns the logger of the first resource; resources loaded
// together share their Options.
func logger(rs []*Resource) *slog.Logger {
	if len(rs) == 0 {
		return slog.New(slog.DiscardHandler)
	}
	return rs[0].log
}

// Run applies the resources as [Once] does, then again every interval,
// until ctx is done. Failures are logged (through each resource's
// [Options.Logger]) and the loop goes on. Run returns an error wrapping
// ctx.Err() when ctx is done, or an error at once if interval is not
// positive.
func Run(ctx context.Context, b backends.Backend, rs []*Resource, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("resource: run: interval %s is not positive", interval)
	}
	log := logger(rs)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		if ctx.Err() != nil {
			return fmt.Errorf("resource: run: %w", ctx.Err())
		}
		failed, err := once(ctx, b, rs)
		if ctx.Err() != nil {
			return fmt.Errorf("resource: run: %w", ctx.Err())
		}
		if err != nil {
			log.Error("run failed", "err", err)
		}
		for _, f := range failed {
			f.r.log.Error("apply failed", "resource", f.r.Name, "dest", f.r.dest, "err", f.err)
		}
		t.Reset(interval) // since Go 1.23, Reset drops a pending tick
		select {
		case <-ctx.Done():
			return fmt.Errorf("resource: run: %w", ctx.Err())
		case <-t.C:
		}
	}
}
