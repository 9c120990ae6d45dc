package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// expiring is a context whose Err turns to context.Canceled after n calls,
// to check that a long operation looks at its context along the way.
type expiring struct {
	context.Context
	n atomic.Int64
}

func (c *expiring) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// TestReadFileCanceled checks that readFile stops between chunks.
func TestReadFileCanceled(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(name, make([]byte, 5*chunk), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := &expiring{Context: t.Context()}
	ctx.n.Store(2)
	if _, err := readFile(ctx, name); !errors.Is(err, context.Canceled) {
		t.Errorf("readFile = %v, want context.Canceled after two chunks", err)
	}
	ctx.n.Store(100)
	if data, err := readFile(ctx, name); err != nil || len(data) != 5*chunk {
		t.Errorf("readFile = %d bytes, %v; want %d bytes", len(data), err, 5*chunk)
	}
}

// TestFlattenCanceledMidway checks that flatten stops while it parses and
// while it walks, not only before it starts.
func TestFlattenCanceledMidway(t *testing.T) {
	t.Parallel()
	data := bigDoc(50_000) // about 1.3 MB: thousands of parser reads
	for _, n := range []int64{10, 2000} {
		ctx := &expiring{Context: t.Context()}
		ctx.n.Store(n)
		if err := flatten(ctx, data, map[string]string{}); !errors.Is(err, context.Canceled) {
			t.Errorf("flatten with a context done after %d checks = %v, want context.Canceled", n, err)
		}
	}
}
