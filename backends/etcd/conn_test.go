package etcd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends/etcd"
)

// TestUnreachable: with no server, a read and a watch fail within seconds
// (the dial timeout, not the request timeout nor never), with an
// UnreachableError that names the endpoint and the cause. No server runs
// here: a refused connection is the case under test. The bounds asserted
// are ten times the timeouts, for a loaded machine; before, the read
// waited its whole request timeout (an hour here) and the watch forever.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	addr := unusedAddr(t)
	c, err := etcd.New(t.Context(), etcd.Config{Nodes: []string{addr}, DialTimeout: "500ms", RequestTimeout: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}()
	check := func(what string, bound time.Duration, call func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		err := call(ctx)
		took := time.Since(start)
		var ue *etcd.UnreachableError
		if !errors.As(err, &ue) {
			t.Fatalf("%s = %v, want an UnreachableError", what, err)
		}
		if took > bound {
			t.Errorf("%s failed after %v, want within %v", what, took, bound)
		}
		for _, want := range []string{"http://" + addr, "connection refused"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s = %q, want %q in it", what, err, want)
			}
		}
	}
	check("Snapshot", 5*time.Second, func(ctx context.Context) error {
		_, err := c.Snapshot(ctx, []string{"/a"})
		return err
	})
	check("Watch", 30*time.Second, func(ctx context.Context) error {
		_, err := c.Watch(ctx, []string{"/a"}, 5)
		return err
	})
}
