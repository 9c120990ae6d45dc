package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kvconf/kvconf/resource"
)

// checkCommand is "kvconf check [flags]": it loads the config and every
// resource exactly as a run would, reads the backends, renders every
// resource into a stage file in a temporary directory and runs its
// check_cmd there, then prints per resource "ok", with -diff the diff
// against dest, or the error with the checker's output. It writes no dest
// and runs no reload_cmd. The exit code is 0 only when every resource
// passed, 1 when one failed, 2 for a usage or load error.
func (c command) checkCommand(ctx context.Context, args []string) int {
	stdout, stderr := c.stdout, c.stderr
	fs := newFlagSet("kvconf check")
	fs.SetOutput(stderr)
	diff := fs.Bool("diff", false, "check: print the unified diff between each dest and its new output")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: kvconf check [flags] [-diff]\n\n"+
			"Renders every resource from the backends into a temporary stage file and runs its\n"+
			"check_cmd on it; writes no dest and runs no reload_cmd. Exits 0 only if every\n"+
			"resource passes (for CI jobs that validate templates and data).\n\n"+
			"  -diff\n    \tprint the unified diff between each dest and its new output (also KVCONF_DIFF)\n\n"+
			"The flags of kvconf:\n")
		printOptions(stderr, fs, coreOptions)
		printBackends(stderr, fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usage := func(err error) int {
		fmt.Fprintf(stderr, "kvconf check: %v\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usage(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if v, ok := c.getenv(envName("diff")); ok && !isFlagSet(fs.FlagSet, "diff") {
		if err := fs.Set("diff", v); err != nil {
			return usage(fmt.Errorf("environment %s: %w", envName("diff"), err))
		}
	}
	conf, err := load(fs, c.getenv)
	if err != nil {
		return usage(err)
	}
	log := newLogger(conf.LogLevel, conf.LogFormat, stderr)
	opts := conf.resourceOptions(log)
	p, err := newPoolFor(conf, log)
	if err != nil {
		return usage(err)
	}
	defer p.close()
	opts.Backends = p.names()
	rs, err := resource.LoadDir(opts)
	if err != nil {
		return usage(err)
	}
	if len(rs) == 0 {
		fmt.Fprintf(stderr, "kvconf check: no template resources in %s\n", opts.ConfDir)
		return exitFailed
	}
	failed := 0
	for _, g := range p.groups(rs) {
		results, err := p.check(ctx, g, *diff)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", p.entries[g.name].label, err)
			for _, r := range g.rs {
				fmt.Fprintf(stdout, "FAIL %s: not checked: its backend failed\n", r.Name)
			}
			failed += len(g.rs)
			continue
		}
		for _, res := range results {
			if !printCheck(stdout, res) {
				failed++
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "kvconf check: %d of %d resources failed\n", failed, len(rs))
		return exitFailed
	}
	fmt.Fprintf(stderr, "kvconf check: %d resources passed\n", len(rs))
	return exitOK
}

// check runs [resource.Check] on the resources of g against its backend.
func (p *pool) check(ctx context.Context, g group, diff bool) ([]resource.CheckResult, error) {
	b, err := p.get(ctx, g.name)
	if err != nil {
		return nil, err
	}
	results, err := resource.Check(ctx, b, g.rs, diff)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", p.entries[g.name].label, err)
	}
	return results, nil
}

// printCheck prints one resource's result and reports whether it passed.
func printCheck(w io.Writer, res resource.CheckResult) bool {
	if res.Err != nil {
		fmt.Fprintf(w, "FAIL %s\n  %v\n", res.Resource, res.Err)
		var he *resource.HookError
		switch {
		case !errors.As(res.Err, &he):
		case he.Withheld:
			fmt.Fprintf(w, "  %s output withheld: resource is sensitive\n", he.Hook)
		case len(bytes.TrimSpace(he.Output)) > 0:
			out := printable(strings.TrimRight(string(he.Output), "\n"))
			fmt.Fprintf(w, "  %s output:\n    %s\n", he.Hook, strings.ReplaceAll(out, "\n", "\n    "))
		}
		return false
	}
	state := "up to date"
	if res.Changed {
		state = "would change"
	}
	fmt.Fprintf(w, "ok   %s -> %s (%s)\n", res.Resource, res.Dest, state)
	if res.Diff != "" {
		fmt.Fprint(w, res.Diff)
		if !strings.HasSuffix(res.Diff, "\n") {
			fmt.Fprintln(w)
		}
	}
	return true
}

// isFlagSet reports whether the flag called name was given on the command
// line.
func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
