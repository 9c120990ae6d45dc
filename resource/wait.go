package resource

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kvconf/kvconf/internal/backoff"
)

// Wait is how long a resource lets changes settle before it renders, with
// consul-template's semantics: after a change, render once no further
// change came for Min, and at the latest Max after the first change that is
// still pending, so that a constant stream of changes cannot hold a render
// back for ever. The zero Wait renders at once.
type Wait struct {
	// Min is the quiet period.
	Min time.Duration
	// Max bounds the delay since the first pending change. Zero with a
	// positive Min means 4×Min, as [ParseWait] gives.
	Max time.Duration
}

// ParseWait parses a wait in consul-template's "min[:max]" syntax:
// "2s:10s" is Min 2s and Max 10s; "2s" alone is Min 2s and Max 8s (4×Min,
// as consul-template does); "" is the zero Wait. Durations are Go
// durations; negative ones, and a Max below Min, are errors.
func ParseWait(s string) (Wait, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Wait{}, nil
	}
	lo, hi, two := strings.Cut(s, ":")
	if strings.Contains(hi, ":") {
		return Wait{}, fmt.Errorf("invalid wait %q: want min[:max], such as \"2s:10s\"", s)
	}
	var w Wait
	var err error
	if w.Min, err = time.ParseDuration(strings.TrimSpace(lo)); err != nil {
		return Wait{}, fmt.Errorf("invalid wait %q: min: %w", s, err)
	}
	if two {
		if w.Max, err = time.ParseDuration(strings.TrimSpace(hi)); err != nil {
			return Wait{}, fmt.Errorf("invalid wait %q: max: %w", s, err)
		}
	} else {
		w.Max = 4 * w.Min
	}
	err = w.validate()
	if err == nil && w.Max < w.Min {
		err = fmt.Errorf("max %s is less than min %s", w.Max, w.Min) // an explicit 0s max, too
	}
	if err != nil {
		return Wait{}, fmt.Errorf("invalid wait %q: %w", s, err)
	}
	return w, nil
}

// validate reports a negative duration or a Max below Min.
func (w Wait) validate() error {
	switch {
	case w.Min < 0 || w.Max < 0:
		return fmt.Errorf("negative duration")
	case w.Max != 0 && w.Max < w.Min:
		return fmt.Errorf("max %s is less than min %s", w.Max, w.Min)
	}
	return nil
}

// String returns the wait in [ParseWait]'s syntax, such as "2s:10s".
func (w Wait) String() string { return w.Min.String() + ":" + w.Max.String() }

// due returns when a render is due after a change at now, given first, the
// time of the first change still pending (now itself for the first one).
func (w Wait) due(now, first time.Time) time.Time {
	if w.Min <= 0 {
		return now
	}
	limit := w.Max
	if limit == 0 {
		limit = 4 * w.Min
	}
	due := now.Add(w.Min)
	if deadline := first.Add(limit); deadline.Before(due) {
		return deadline
	}
	return due
}

// Backoff bounds the delays between retries of a failed resource or read;
// see [backoff.Policy].
type Backoff = backoff.Policy

// sleep waits for d or until ctx is done; see [backoff.Sleep].
func sleep(ctx context.Context, d time.Duration) error { return backoff.Sleep(ctx, d) }
