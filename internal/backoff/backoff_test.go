package backoff

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	p := Policy{Min: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		name    string
		attempt int
		base    time.Duration
	}{
		{"first", 1, 100 * time.Millisecond},
		{"second doubles", 2, 200 * time.Millisecond},
		{"fourth", 4, 800 * time.Millisecond},
		{"capped", 5, time.Second},
		{"far past the cap", 60, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			for range 200 {
				d := p.Delay(tt.attempt)
				if lo, hi := tt.base-tt.base/5, tt.base+tt.base/5; d < lo || d > hi {
					t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tt.attempt, d, lo, hi)
				}
				seen[d] = true
			}
			if len(seen) < 2 {
				t.Fatalf("Delay(%d) gave one value in 200 calls: no jitter", tt.attempt)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	p := Policy{}.WithDefaults()
	if p.Min != DefaultFirst || p.Max != DefaultLongest {
		t.Fatalf("zero policy = %+v, want Min %v Max %v", p, DefaultFirst, DefaultLongest)
	}
	if p := (Policy{Min: 2 * time.Minute}).WithDefaults(); p.Max != 2*time.Minute {
		t.Fatalf("Max below Min: got %v, want it raised to Min", p.Max)
	}
}

func TestSleepCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(t.Context(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	p := Policy{Min: time.Millisecond, Max: 2 * time.Millisecond}
	boom := errors.New("boom")

	t.Run("succeeds after failures", func(t *testing.T) {
		t.Parallel()
		calls, fails := 0, 0
		err := Retry(t.Context(), p, func(context.Context) error {
			calls++
			if calls < 3 {
				return boom
			}
			return nil
		}, func(n int, err error, _ time.Duration) {
			fails++
			if n != fails || !errors.Is(err, boom) {
				t.Errorf("onFail(%d, %v), want (%d, boom)", n, err, fails)
			}
		})
		if err != nil || calls != 3 || fails != 2 {
			t.Fatalf("Retry = %v after %d calls and %d failures, want nil, 3, 2", err, calls, fails)
		}
	})
	t.Run("permanent stops", func(t *testing.T) {
		t.Parallel()
		calls := 0
		err := Retry(t.Context(), p, func(context.Context) error {
			calls++
			return Permanent(boom)
		}, nil)
		if !errors.Is(err, boom) || calls != 1 {
			t.Fatalf("Retry = %v after %d calls, want boom after 1", err, calls)
		}
	})
	t.Run("context ends it", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		err := Retry(ctx, p, func(context.Context) error {
			calls++
			if calls == 2 {
				cancel()
			}
			return boom
		}, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Retry = %v, want context.Canceled", err)
		}
	})
}

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", boom, false},
		{"marked", Permanent(boom), true},
		{"wrapped", fmt.Errorf("ctx: %w", Permanent(boom)), true},
		{"joined", errors.Join(boom, fmt.Errorf("x: %w", Permanent(boom))), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsPermanent(tt.err); got != tt.want {
				t.Fatalf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if err := Permanent(boom); err.Error() != "boom" || !errors.Is(err, boom) {
		t.Fatalf("Permanent(boom) = %q, want the message and chain of boom", err)
	}
}
