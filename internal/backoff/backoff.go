// Package backoff is kvconf's one retry pacing: exponential delays with
// jitter, and a sleep that ends early when its context does. Every retry
// loop in kvconf (backends reconnecting, resources retrying, plugins
// restarting) takes its delays from here instead of writing its own.
package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Default bounds of a [Policy] whose fields are zero.
const (
	DefaultFirst   = time.Second
	DefaultLongest = time.Minute
)

// Policy bounds the delays between retries: the first retry waits about
// Min, each later one twice as long as the one before, up to Max. Every
// delay is spread by ±20% so that many instances do not retry in step.
type Policy struct {
	// Min is the first delay; zero means [DefaultFirst].
	Min time.Duration
	// Max is the longest delay; zero means [DefaultLongest] (or Min, when it
	// is larger).
	Max time.Duration
}

// WithDefaults returns p with its zero fields filled in.
func (p Policy) WithDefaults() Policy {
	if p.Min <= 0 {
		p.Min = DefaultFirst
	}
	if p.Max <= 0 {
		p.Max = max(DefaultLongest, p.Min)
	}
	p.Max = max(p.Max, p.Min)
	return p
}

// Delay returns the delay before retry number attempt (counted from 1),
// with jitter, taking the defaults for zero fields.
func (p Policy) Delay(attempt int) time.Duration {
	p = p.WithDefaults()
	d := p.Min
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	spread := d / 5
	return d - spread + rand.N(2*spread+1)
}

// Sleep waits for d or until ctx is done, whichever comes first, and
// returns ctx.Err() in the second case. A d of zero or less returns at
// once (with ctx.Err() when ctx is already done).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retry calls op until it succeeds, ctx is done, or op's error is
// permanent (see [Permanent]). Between failures it sleeps p.Delay(n) for
// the nth failure in a row and calls onFail, when not nil, with the
// failure count, the error and the delay about to be waited. It returns
// nil on success, the permanent error, or ctx.Err() (wrapping op's last
// error when there was one).
func Retry(ctx context.Context, p Policy, op func(context.Context) error, onFail func(n int, err error, next time.Duration)) error {
	for n := 1; ; n++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if pe := (*permanentError)(nil); errors.As(err, &pe) {
			return pe.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := p.Delay(n)
		if onFail != nil {
			onFail(n, err, d)
		}
		if err := Sleep(ctx, d); err != nil {
			return err
		}
	}
}

// permanentError marks an error that [Retry] must not retry.
type permanentError struct{ err error }

// Error returns the wrapped error's message.
func (e *permanentError) Error() string { return e.err.Error() }

// Unwrap returns the wrapped error.
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that [Retry] returns it at once instead of
// retrying: it marks an error no retry can mend, such as a configuration
// mistake. Its message is err's. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or any error it wraps or joins, was
// marked with [Permanent].
func IsPermanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}
