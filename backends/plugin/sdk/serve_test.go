package sdk_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/plugin/sdk"
)

// blocking is a backend whose watch with after > 0 blocks until its
// context ends, and whose watch from 1 answers an empty full snapshot.
type blocking struct {
	opts   map[string]string
	closed bool
}

func (b *blocking) Configure(_ context.Context, opts map[string]string) error {
	if opts["bad"] != "" {
		return errors.New("option bad: not good")
	}
	b.opts = opts
	return nil
}

func (b *blocking) Snapshot(_ context.Context, prefixes []string) (backends.Snapshot, error) {
	return backends.Snapshot{Rev: 7, KVs: map[string]string{prefixes[0] + "k": b.opts["v"]}}, nil
}

func (b *blocking) Watch(ctx context.Context, _ []string, after uint64) (backends.Update, error) {
	if after == 1 {
		return backends.Update{Rev: 8, Full: &backends.Snapshot{Rev: 8}}, nil
	}
	<-ctx.Done()
	return backends.Update{}, ctx.Err()
}

func (b *blocking) Description() string   { return "test backend" }
func (b *blocking) Options() []sdk.Option { return []sdk.Option{{Key: "v", Usage: "the value"}} }
func (b *blocking) Close() error          { b.closed = true; return nil }

// TestServeIO (issue 18.4): Serve greets with the backend's description
// and options, answers configure (and its error), snapshot, watch (an
// empty full snapshot stays a full snapshot), "unsupported" for an
// unknown method, "canceled" for a watch a cancel request ends, and
// returns once its input ends, after closing the backend.
func TestServeIO(t *testing.T) {
	t.Parallel()
	b := &blocking{}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- sdk.ServeIO(t.Context(), b, inR, outW) }()
	out := bufio.NewScanner(outR)
	next := func() map[string]any {
		t.Helper()
		if !out.Scan() {
			t.Fatalf("no line: %v", out.Err())
		}
		var m map[string]any
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", out.Text(), err)
		}
		return m
	}
	send := func(r sdk.Request) {
		t.Helper()
		line, _ := json.Marshal(r)
		if _, err := inW.Write(append(line, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	g := next()
	if g["protocol"] != "kvconf-backend" || g["version"] != 1.0 || g["description"] != "test backend" || g["options"] == nil {
		t.Errorf("greeting = %v", g)
	}
	send(sdk.Request{ID: 1, Method: sdk.MethodConfigure, Options: map[string]string{"bad": "x"}})
	if r := next(); r["id"] != 1.0 || r["error"] != "option bad: not good" {
		t.Errorf("configure with a bad option: %v", r)
	}
	send(sdk.Request{ID: 2, Method: sdk.MethodConfigure, Options: map[string]string{"v": "val"}})
	if r := next(); r["id"] != 2.0 || r["error"] != nil {
		t.Errorf("configure: %v", r)
	}
	send(sdk.Request{ID: 3, Method: sdk.MethodSnapshot, Prefixes: []string{"/p/"}})
	if r := next(); r["rev"] != 7.0 || r["kvs"].(map[string]any)["/p/k"] != "val" {
		t.Errorf("snapshot: %v", r)
	}
	send(sdk.Request{ID: 4, Method: sdk.MethodWatch, Prefixes: []string{"/"}, After: 1})
	if r := next(); r["rev"] != 8.0 || r["full"] == nil || len(r["full"].(map[string]any)) != 0 {
		t.Errorf("watch with an empty full snapshot: %v", r)
	}
	send(sdk.Request{ID: 5, Method: "frobnicate"})
	if r := next(); r["error"] != sdk.Unsupported {
		t.Errorf("unknown method: %v", r)
	}
	send(sdk.Request{ID: 6, Method: sdk.MethodWatch, Prefixes: []string{"/"}, After: 2})
	send(sdk.Request{ID: 7, Method: sdk.MethodCancel, Target: 6})
	if r := next(); r["id"] != 6.0 || r["error"] != sdk.Canceled {
		t.Errorf("canceled watch: %v", r)
	}
	if err := inW.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeIO = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ServeIO did not return at the end of its input")
	}
	if !b.closed {
		t.Errorf("the backend was not closed")
	}
}
