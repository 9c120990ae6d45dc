package sdk

import (
	"bufio"
	"context"
	"encoding/json"

	"fmt"
	"os/exec"
	"time"
)

// Probe is for kvconf, the host side: it starts the plugin program at
// path without arguments, reads its greeting and stops it (by closing its
// stdin, killing it after a second). That is what "kvconf plugins" shows of
// a plugin it found, and how -backend NAME learns the options of a plugin
// before it starts it. A greeting of another
// protocol or version is an error; ctx bounds the wait.
func Probe(ctx context.Context, path string) (Greeting, error) {
	cmd := exec.Command(path)
	cmd.WaitDelay = time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Greeting{}, fmt.Errorf("plugin %s: probe: %w", path, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		_ = stdin.Close() // unused
		return Greeting{}, fmt.Errorf("plugin %s: probe: %w", path, err)
	}
	if err := cmd.Start(); err != nil {
		return Greeting{}, fmt.Errorf("plugin %s: probe: %w", path, err)
	}
	type result struct {
		line []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadBytes('\n')
		got <- result{line, err}
	}()
	var r result
	select {
	case r = <-got:
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	_ = stdin.Close() // asks the plugin to exit
	stopped := make(chan struct{})
	go func() {
		select {
		case <-stopped:
		case <-time.After(time.Second):
			_ = cmd.Process.Kill() // gone already if it exited meanwhile
		}
	}()
	_ = cmd.Wait() // how it exits says nothing of its greeting
	close(stopped)
	if r.err != nil {
		return Greeting{}, fmt.Errorf("plugin %s: no greeting: %w", path, r.err)
	}
	var g Greeting
	if err := json.Unmarshal(r.line, &g); err != nil || g.Protocol == "" {
		return Greeting{}, fmt.Errorf("plugin %s: the first line is not a %s greeting", path, Protocol)
	}
	if g.Protocol != Protocol || g.Version != Version {
		return g, fmt.Errorf("plugin %s: %w", path, &VersionError{Protocol: g.Protocol, Version: g.Version})
	}
	return g, nil
}

// VersionError reports a plugin that greets with another protocol or
// version than kvconf's.
type VersionError struct {
	// Protocol and Version are the plugin's.
	Protocol string
	Version  int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("speaks protocol %q version %d, kvconf speaks %q version %d", e.Protocol, e.Version, Protocol, Version)
}
