package resource

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"
)

// maxHookOutput is how much of a hook's combined output a [HookError]
// keeps: its last 4 KiB, where a failing command says why.
const maxHookOutput = 4 << 10

// hookWaitDelay is how long a hook's output pipe may stay open after the
// hook exited or was killed, for example by a daemon it started. It is a
// backstop against a hung Apply, not a timeout of the hook itself.
const hookWaitDelay = time.Second

// HookError reports a check_cmd or reload_cmd that failed: it exited
// non-zero, timed out or could not start. Its message names the hook, the
// command and the cause, but never the output, which may echo rendered
// content; callers that want to show it read Output, which is empty and
// Withheld set for a resource marked sensitive.
type HookError struct {
	// Hook is "check_cmd" or "reload_cmd".
	Hook string
	// Cmd is the command as run by /bin/sh -c, after {{.src}} and
	// {{.dest}} were replaced.
	Cmd string
	// ExitCode is the command's exit status, or -1 when it did not exit
	// normally (killed, timed out, not started).
	ExitCode int
	// Output is the end of the command's combined stdout and stderr: its
	// last 4 KiB at most, of OutputSize bytes in all.
	Output []byte
	// OutputSize is how many bytes of output the command wrote; more than
	// len(Output) when Output holds only the end.
	OutputSize int64
	// Withheld is set when the resource is sensitive: its hooks' output
	// is not kept, as it may quote rendered secrets, and Output is empty.
	Withheld bool
	// Err is the cause: an *exec.ExitError, or an error wrapping
	// context.DeadlineExceeded when the hook timed out, or the context's
	// error when the caller gave up.
	Err error
}

func (e *HookError) Error() string {
	return fmt.Sprintf("%s %q: %v", e.Hook, e.Cmd, e.Err)
}

// Unwrap returns Err.
func (e *HookError) Unwrap() error { return e.Err }

// runHook runs command with /bin/sh within the resource's timeout. The
// shell gets its own process group, and the whole group is killed when the
// timeout expires, so that `sleep` in `sh -c "...; sleep 30"` does not
// outlive it. When ctx is done first (kvconf is stopping), the group gets
// SIGTERM and, if it is still running after the grace period, SIGKILL.
func (r *Resource) runHook(ctx context.Context, hook, command string) error {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, "/bin/sh", "-c", command)
	out := &tailBuffer{max: maxHookOutput}
	if !r.Config.Sensitive {
		// Of a sensitive resource, the output goes to /dev/null: what is
		// never kept cannot leak into a log or a report.
		cmd.Stdout, cmd.Stderr = out, out
	}
	cmd.WaitDelay = hookWaitDelay
	setProcessGroup(cmd)
	r.log.Debug("running hook", "resource", r.Name, "dest", r.dest, "hook", hook)
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		stopGrace := r.graceOnDone(ctx, cmd, cancel)
		err = cmd.Wait()
		stopGrace()
	}
	if err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success()) {
		r.log.Debug("hook done", "resource", r.Name, "dest", r.dest, "hook", hook, "elapsed", time.Since(start))
		return nil
	}
	he := &HookError{Hook: hook, Cmd: command, ExitCode: -1, Output: out.bytes(), OutputSize: out.total,
		Withheld: r.Config.Sensitive, Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		he.ExitCode = ee.ExitCode()
	}
	switch {
	case ctx.Err() != nil:
		he.Err = ctx.Err()
	case hctx.Err() != nil:
		he.Err = fmt.Errorf("timed out after %s: %w", r.timeout, hctx.Err())
	}
	return he
}

// graceOnDone arranges that, once ctx is done, cmd's process group gets
// SIGTERM and kill (cancelling cmd's own context, which kills the group)
// runs after the grace period. The returned func undoes what has not
// happened yet.
func (r *Resource) graceOnDone(ctx context.Context, cmd *exec.Cmd, kill context.CancelFunc) (stop func()) {
	var mu sync.Mutex
	var timer *time.Timer
	stopAfter := context.AfterFunc(ctx, func() {
		r.log.Info("stopping hook", "resource", r.Name, "dest", r.dest, "grace", r.grace)
		terminateGroup(cmd)
		mu.Lock()
		timer = time.AfterFunc(r.grace, kill)
		mu.Unlock()
	})
	return func() {
		if stopAfter() {
			return
		}
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
	}
}

// tailBuffer keeps the last max bytes written to it and counts them all,
// so that a chatty hook neither blocks nor fills memory, and the end of
// its output, where a failing command says why, is kept.
type tailBuffer struct {
	buf   []byte // the last max bytes are the tail; at most 2*max long
	max   int
	total int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.total += int64(len(p))
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return len(p), nil
	}
	if len(b.buf)+len(p) > 2*b.max {
		// Keep the last max bytes only; copy handles the overlap.
		b.buf = b.buf[:copy(b.buf, b.buf[len(b.buf)-b.max:])]
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// bytes returns the last max bytes written, or nil when none were.
func (b *tailBuffer) bytes() []byte {
	if len(b.buf) > b.max {
		return b.buf[len(b.buf)-b.max:]
	}
	return b.buf
}

// Marks stand for {{.src}} and {{.dest}} while a hook's command is
// expanded, until [quotePaths] puts the quoted paths in their place. No
// command can hold them: a NUL byte cannot be passed to /bin/sh.
const (
	srcMark  = "\x00src\x00"
	destMark = "\x00dest\x00"
)

// hookCommand expands a hook's command, with src and dest quoted for the
// shell where they stand (see [quotePaths]).
func hookCommand(t *texttemplate.Template, src, dest string) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, map[string]string{"src": srcMark, "dest": destMark}); err != nil {
		return "", err
	}
	return quotePaths(b.String(), src, dest)
}

// Shell quoting states of [quotePaths].
const (
	shBare         = iota // outside quotes, or in $(...)
	shSingle              // in '...'
	shDouble              // in "..."
	shBacktick            // in `...`
	shComment             // after # at the start of a word, to the end of the line
	shArith               // in $((...))
	shDollarSingle        // in bash's $'...'
)

// heredoc is a here-document whose body starts after the current line.
type heredoc struct {
	delim  string
	strip  bool // <<-: leading tabs are stripped
	quoted bool // a quoted delimiter: the body is taken literally
	nested bool // in `...`, which takes a level of backslashes first: no path may go in
}

// quotePaths replaces the marks in cmd by the paths src and dest, quoted
// for /bin/sh so that each stays one word, taken literally, whatever it
// holds (a space, a quote, a ;, a $): a path of only letters, digits and
// "/._-+,:@%" goes in as it is; any other is quoted for where its mark
// stands: in single quotes when bare; inside '...', which a confd
// command may already put around {{.src}}, with each quote in it closing
// the quotes, escaped, and opening them again; with \ " $ ` escaped
// inside "..."; and escaped again for each `...` around it. The scan
// follows quotes, backslashes, `...`, $(...) and the case patterns in
// it, $((...)), here-documents and comments. A path is quoted for the
// shell that runs the hook only, not for one that the hook runs in turn
// (sh -c '... {{.src}}').
//
// In a here-document's body a path goes in literally after a quoted
// delimiter, with \ $ ` escaped after a plain one; in bash's $'...' the
// quotes are closed around a single-quoted path. A path with a newline in
// a here-document, and any but a plain path in $((...)), where no quoting
// holds, are errors, as is a mark in a here-document's delimiter.
func quotePaths(cmd, src, dest string) (string, error) {
	if !strings.Contains(cmd, "\x00") {
		return cmd, nil
	}
	var b strings.Builder
	stack := []int{shBare}
	depth := []int{0}        // open parentheses of each $(...) on the stack
	cases := []caseState{{}} // the case commands of each $(...) on the stack
	wordStart := true
	var pending []heredoc // here-documents whose bodies follow the line
	for i := 0; i < len(cmd); {
		top := stack[len(stack)-1]
		if v, n := markAt(cmd[i:], src, dest); n > 0 {
			if top == shArith && !shellSafe(v) {
				return "", fmt.Errorf("path %q in $((...)) cannot be quoted", v)
			}
			b.WriteString(quoteAt(v, stack))
			i += n
			wordStart = false
			continue
		}
		if top == shBare && wordStart && len(cases) > 1 {
			cases[len(cases)-1].word(cmd[i:])
		}
		c := cmd[i]
		if c == '\\' && top != shSingle && top != shComment && i+1 < len(cmd) && cmd[i+1] == 0 {
			// A backslash before a path would escape its quoting: drop it.
			i++
			continue
		}
		b.WriteByte(c)
		i++
		if c == '\n' && len(pending) > 0 && (top == shBare || top == shComment || top == shBacktick) {
			var err error
			if i, err = copyHeredocs(&b, cmd, i, pending, src, dest); err != nil {
				return "", err
			}
			pending = nil
		}
		switch top {
		case shComment:
			if c == '\n' {
				stack = stack[:len(stack)-1]
				wordStart = true
			}
			continue
		case shSingle:
			if c == '\'' {
				stack = stack[:len(stack)-1]
			}
			continue
		case shDollarSingle:
			if c == '\\' && i < len(cmd) && cmd[i] != 0 {
				b.WriteByte(cmd[i])
				i++
			} else if c == '\'' {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		switch {
		case c == '\\':
			// The next byte is taken literally.
			if i < len(cmd) {
				b.WriteByte(cmd[i])
				i++
			}
		case c == '"' && top == shDouble:
			stack = stack[:len(stack)-1]
		case c == '`' && top == shBacktick:
			stack = stack[:len(stack)-1]
		case c == '"':
			stack = append(stack, shDouble)
		case c == '`':
			stack = append(stack, shBacktick)
		case c == '\'' && top != shDouble:
			stack = append(stack, shSingle)
		case c == '$' && i < len(cmd) && cmd[i] == '\'' && top != shDouble && top != shArith:
			b.WriteByte('\'')
			i++
			stack = append(stack, shDollarSingle)
		case c == '$' && i < len(cmd) && cmd[i] == '(':
			b.WriteByte('(')
			i++
			if i < len(cmd) && cmd[i] == '(' {
				b.WriteByte('(')
				i++
				stack = append(stack, shArith)
				depth = append(depth, 2)
			} else {
				stack = append(stack, shBare)
				depth = append(depth, 1)
			}
			cases = append(cases, caseState{})
			top, c = shBare, '(' // a word starts after $( as after (
		case c == ';' && top == shBare && i < len(cmd) && cmd[i] == ';' && cases[len(cases)-1].open > 0:
			// ;; ends a case item: a pattern follows.
			b.WriteByte(';')
			i++
			cases[len(cases)-1].pattern = true
		case c == '<' && (top == shBare || top == shBacktick) && i < len(cmd) && cmd[i] == '<':
			h, n, err := heredocAt(cmd[i+1:])
			if err != nil {
				return "", err
			}
			b.WriteString(cmd[i : i+1+n])
			i += 1 + n
			if h != nil {
				h.nested = top == shBacktick
				pending = append(pending, *h)
			}
		case c == '#' && wordStart && top != shDouble && top != shArith:
			stack = append(stack, shComment)
		case top == shBare && len(depth) > 1 && cases[len(cases)-1].pattern && (c == '(' || c == ')'):
			// A case pattern's parentheses: the ( is optional, the ) ends it.
			cases[len(cases)-1].pattern = c == '('
		case (top == shBare || top == shArith) && len(depth) > 1 && c == '(':
			depth[len(depth)-1]++
		case (top == shBare || top == shArith) && len(depth) > 1 && c == ')':
			if depth[len(depth)-1]--; depth[len(depth)-1] == 0 {
				depth = depth[:len(depth)-1]
				cases = cases[:len(cases)-1]
				stack = stack[:len(stack)-1]
			}
		}
		wordStart = top != shDouble && strings.IndexByte(" \t\n;&|()<>", c) >= 0
	}
	return b.String(), nil
}

// caseState follows the case commands in one $(...), where the ) of a
// pattern does not close the $(...).
type caseState struct {
	open    int  // case commands not yet closed by esac
	awaitIn bool // after "case", before its "in"
	pattern bool // where a pattern stands, up to its )
}

// word notes the reserved word of a case command that starts s, if any.
func (cs *caseState) word(s string) {
	is := func(w string) bool {
		return strings.HasPrefix(s, w) && (len(s) == len(w) || strings.IndexByte(" \t\n;&|()<>", s[len(w)]) >= 0)
	}
	switch {
	case cs.open > 0 && is("esac"):
		cs.open--
		cs.pattern = false
	case cs.pattern:
	case is("case"):
		cs.open++
		cs.awaitIn = true
	case cs.awaitIn && is("in"):
		cs.awaitIn = false
		cs.pattern = true
	}
}

// heredocAt parses what follows "<<" in s: "<" (a here-string, nil), or
// an optional "-", blanks and a delimiter word. It returns the
// here-document and how many bytes of s it took.
func heredocAt(s string) (*heredoc, int, error) {
	if strings.HasPrefix(s, "<") {
		return nil, 1, nil
	}
	h := &heredoc{}
	i := 0
	if strings.HasPrefix(s, "-") {
		h.strip = true
		i++
	}
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	var d strings.Builder
	for i < len(s) && strings.IndexByte(" \t\n;&|()<>", s[i]) < 0 {
		switch c := s[i]; c {
		case 0:
			return nil, 0, errors.New("{{.src}} or {{.dest}} in a here-document's delimiter")
		case '\'', '"':
			h.quoted = true
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				end = len(s) - i - 1
			}
			if strings.IndexByte(s[i+1:i+1+end], 0) >= 0 {
				return nil, 0, errors.New("{{.src}} or {{.dest}} in a here-document's delimiter")
			}
			d.WriteString(s[i+1 : i+1+end])
			i = min(len(s), i+end+2)
		case '\\':
			h.quoted = true
			if i+1 < len(s) {
				d.WriteByte(s[i+1])
			}
			i += 2
		default:
			d.WriteByte(c)
			i++
		}
	}
	h.delim = d.String()
	return h, min(i, len(s)), nil
}

// copyHeredocs writes to b the bodies of the here-documents docs, which
// start at cmd[i], with the marks in them replaced by their paths: taken
// literally after a quoted delimiter, with \ $ ` escaped after a plain
// one. It returns where the bodies end. A path with a newline, or one
// that makes a line the delimiter, is an error: it would end the body.
func copyHeredocs(b *strings.Builder, cmd string, i int, docs []heredoc, src, dest string) (int, error) {
	for _, h := range docs {
		for i < len(cmd) {
			end := strings.IndexByte(cmd[i:], '\n')
			if end < 0 {
				end = len(cmd)
			} else {
				end += i
			}
			raw := cmd[i:end]
			var line strings.Builder
			for j := 0; j < len(raw); {
				v, n := markAt(raw[j:], src, dest)
				if n == 0 {
					line.WriteByte(raw[j])
					j++
					continue
				}
				if h.nested {
					return 0, errors.New("{{.src}} or {{.dest}} in a here-document inside `...`: use $(...)")
				}
				if strings.ContainsAny(v, "\n\x00") {
					return 0, fmt.Errorf("path %q in a here-document cannot be quoted", v)
				}
				for _, c := range []byte(v) {
					if !h.quoted && (c == '\\' || c == '$' || c == '`') {
						line.WriteByte('\\')
					}
					line.WriteByte(c)
				}
				j += n
			}
			l := line.String()
			last := l
			if h.strip {
				last = strings.TrimLeft(l, "\t")
			}
			if last == h.delim && l != raw {
				return 0, fmt.Errorf("a path ends the here-document %s", h.delim)
			}
			b.WriteString(l)
			i = end
			if i < len(cmd) {
				b.WriteByte('\n')
				i++
			}
			if last == h.delim {
				break
			}
		}
	}
	return i, nil
}

// markAt returns the path whose mark starts s, and the mark's length, or
// 0 when no mark does.
func markAt(s, src, dest string) (string, int) {
	switch {
	case strings.HasPrefix(s, srcMark):
		return src, len(srcMark)
	case strings.HasPrefix(s, destMark):
		return dest, len(destMark)
	}
	return "", 0
}

// quoteAt returns p quoted for where it stands: for the state on top of
// stack, then escaped for each `...` around it, innermost first, as the
// shell removes one level of backslashes from a `...` before it runs it.
func quoteAt(p string, stack []int) string {
	q := quoteFor(p, stack[len(stack)-1])
	if shellSafe(p) {
		return q
	}
	for i := len(stack) - 1; i > 0; i-- {
		if stack[i] != shBacktick {
			continue
		}
		inDouble := stack[i-1] == shDouble
		var b strings.Builder
		for _, c := range []byte(q) {
			if c == '\\' || c == '`' || c == '$' || (inDouble && c == '"') {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		q = b.String()
	}
	return q
}

// quoteFor returns p quoted for the shell state where it stands.
func quoteFor(p string, state int) string {
	if shellSafe(p) {
		return p
	}
	switch state {
	case shSingle:
		return strings.ReplaceAll(p, "'", `'\''`)
	case shDouble:
		var b strings.Builder
		for _, c := range []byte(p) {
			if c == '\\' || c == '"' || c == '$' || c == '`' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		return b.String()
	case shDollarSingle:
		// Close bash's $'...', put p in '...', open $'...' again.
		return "''" + strings.ReplaceAll(p, "'", `'\''`) + "'$'"
	case shComment:
		// Never run, but a newline would end the comment.
		return strings.Map(func(r rune) rune {
			if r == '\n' {
				return ' '
			}
			return r
		}, p)
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}

// shellSafe reports whether p is the same word to /bin/sh bare, in '...'
// and in "...": it is not empty and holds only letters, digits and
// "/._-+,:@%".
func shellSafe(p string) bool {
	if p == "" {
		return false
	}
	for _, c := range []byte(p) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("/._-+,:@%", c) >= 0:
		default:
			return false
		}
	}
	return true
}
