package supervise

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// signalNames are the signals [ParseSignal] knows, by their names
// without SIG.
func signalNames() map[string]syscall.Signal {
	return map[string]syscall.Signal{
		"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
		"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
		"USR2": syscall.SIGUSR2, "WINCH": syscall.SIGWINCH, "ALRM": syscall.SIGALRM,
		"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP,
		"PWR": syscall.SIGPWR, "IO": syscall.SIGIO, "URG": syscall.SIGURG,
		"TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU, "PIPE": syscall.SIGPIPE,
		"PROF": syscall.SIGPROF, "VTALRM": syscall.SIGVTALRM, "XCPU": syscall.SIGXCPU,
		"XFSZ": syscall.SIGXFSZ, "SYS": syscall.SIGSYS, "TRAP": syscall.SIGTRAP,
		"ABRT": syscall.SIGABRT,
	}
}

// ParseSignal returns the signal named s, with or without the SIG prefix
// and in any case: "SIGUSR2", "USR2" and "usr2" are all SIGUSR2.
func ParseSignal(s string) (syscall.Signal, error) {
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	if sig, ok := signalNames()[name]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q (want a name such as SIGHUP, SIGUSR2 or USR2)", s)
}

// SignalName is sig's name with the SIG prefix, such as "SIGUSR2", or its
// number for a signal [ParseSignal] does not know.
func SignalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		for name, v := range signalNames() {
			if v == s {
				return "SIG" + name
			}
		}
		return fmt.Sprintf("signal %d", int(s))
	}
	return sig.String()
}
