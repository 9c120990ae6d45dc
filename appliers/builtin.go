package appliers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func init() {
	Register("command", func() Config { return new(CommandConfig) })
	Register("signal", func() Config { return new(SignalConfig) })
}

// CommandConfig is the "command" applier: it runs a shell command, as
// reload_cmd does (cmd = "systemctl reload haproxy"). With reload_cmd as
// well, reload_cmd runs only when cmd fails.
type CommandConfig struct {
	// Cmd is the command; {{.src}} and {{.dest}} are dest.
	Cmd string `toml:"cmd"`
}

// Validate requires cmd.
func (c *CommandConfig) Validate() error {
	if strings.TrimSpace(c.Cmd) == "" {
		return &OptionError{Key: "cmd", Err: errors.New("missing")}
	}
	return nil
}

// New returns the applier.
func (c *CommandConfig) New() (Applier, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return command{cmd: c.Cmd}, nil
}

type command struct{ cmd string }

func (a command) Apply(ctx context.Context, _ Change, env Env) error {
	if env.Run == nil {
		return fmt.Errorf("command: %w: no command runner", ErrUnsupported)
	}
	return env.Run(ctx, "apply.cmd", a.cmd)
}

// SignalConfig is the "signal" applier: it sends a signal to the service,
// the process whose pid is in pidfile, or without pidfile the command
// kvconf supervises in exec mode.
type SignalConfig struct {
	// Signal is the signal's name or number, such as "SIGHUP", "USR2" or
	// "1". Empty means SIGHUP.
	Signal string `toml:"signal"`
	// Pidfile is a file holding the pid to signal: a regular file, not a
	// link; when owned by neither root nor kvconf's user, the pid must be
	// a process of the pidfile's owner.
	Pidfile string `toml:"pidfile"`
}

// Validate checks the signal's name.
func (c *SignalConfig) Validate() error {
	_, err := parseSignal(c.Signal)
	return err
}

// New returns the applier.
func (c *SignalConfig) New() (Applier, error) {
	sig, err := parseSignal(c.Signal)
	if err != nil {
		return nil, err
	}
	return signal{sig: sig, pidfile: c.Pidfile}, nil
}

// parseSignal parses a signal by name, with or without SIG, or number.
func parseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return syscall.SIGHUP, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1,
		syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGWINCH, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGCONT} {
		if strings.TrimPrefix(strings.ToUpper(sig.String()), "SIG") == name || signalNames[sig] == name {
			return sig, nil
		}
	}
	return 0, &OptionError{Key: "signal", Err: fmt.Errorf("unknown signal %q", s)}
}

// signalNames are the short names of the signals parseSignal knows.
var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT", syscall.SIGUSR1: "USR1",
	syscall.SIGUSR2: "USR2", syscall.SIGTERM: "TERM", syscall.SIGWINCH: "WINCH", syscall.SIGTTIN: "TTIN",
	syscall.SIGTTOU: "TTOU", syscall.SIGCONT: "CONT",
}

type signal struct {
	sig     syscall.Signal
	pidfile string
}

func (a signal) Apply(_ context.Context, _ Change, env Env) error {
	if a.pidfile == "" {
		if env.Signal == nil {
			return fmt.Errorf("signal: %w: no pidfile and no supervised command (exec mode)", ErrUnsupported)
		}
		if err := env.Signal(a.sig); err != nil {
			return fmt.Errorf("signal: %w", err)
		}
		return nil
	}
	pid, err := readPidfile(a.pidfile)
	if err != nil {
		return fmt.Errorf("signal: %w", err)
	}
	if err := syscall.Kill(pid, a.sig); err != nil {
		return fmt.Errorf("signal: pid %d: %w", pid, err)
	}
	return nil
}

// readPidfile returns the pid in the pidfile p, a regular file that is
// not a symbolic link. When p is owned by neither root nor kvconf's user,
// whoever owns it could name any process: the pid must then be one of
// that owner's processes (its real or saved uid), which they could signal
// themselves.
func readPidfile(p string) (int, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return 0, fmt.Errorf("pidfile %s is a symbolic link", p)
	}
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }() // read-only
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || !ok {
		return 0, fmt.Errorf("pidfile %s is not a regular file", p)
	}
	b := make([]byte, 64)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("pidfile %s: %w", p, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pidfile %s: no valid pid", p)
	}
	if owner := int(st.Uid); owner != 0 && owner != os.Geteuid() && !ownedBy(pid, owner) {
		return 0, fmt.Errorf("pidfile %s is owned by uid %d, and pid %d is not that user's process", p, owner, pid)
	}
	return pid, nil
}

// ownedBy reports whether process pid's real or saved uid is uid.
func ownedBy(pid, uid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "Uid:" {
			return f[1] == strconv.Itoa(uid) || f[3] == strconv.Itoa(uid)
		}
	}
	return false
}

var (
	_ Validator = (*CommandConfig)(nil)
	_ Validator = (*SignalConfig)(nil)
)
