// Package sdnotify sends systemd service notifications (sd_notify(3)) over
// the unix datagram socket that systemd names in $NOTIFY_SOCKET, for
// units of Type=notify: READY=1, RELOADING=1, STOPPING=1 and WATCHDOG=1.
// Without $NOTIFY_SOCKET every call does nothing, so kvconf run outside
// systemd needs no switch.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends notifications to one socket. The zero Notifier, and one
// made without $NOTIFY_SOCKET, sends nothing. It is safe for concurrent
// use.
type Notifier struct {
	addr     *net.UnixAddr // nil: disabled
	watchdog time.Duration

	mu   sync.Mutex
	conn *net.UnixConn
}

// New returns the Notifier of the environment that getenv reads (such as
// os.LookupEnv): $NOTIFY_SOCKET, a path or, with a leading '@', an
// abstract socket name; and $WATCHDOG_USEC, honoured when $WATCHDOG_PID is
// unset or this process's pid.
func New(getenv func(string) (string, bool)) (*Notifier, error) {
	n := &Notifier{}
	sock, ok := getenv("NOTIFY_SOCKET")
	if !ok || sock == "" {
		return n, nil
	}
	if sock[0] != '/' && sock[0] != '@' {
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET %q: want an absolute path or an @abstract name", sock)
	}
	name := sock
	if name[0] == '@' {
		name = "\x00" + name[1:] // the Linux abstract namespace
	}
	n.addr = &net.UnixAddr{Name: name, Net: "unixgram"}
	if usec, ok := getenv("WATCHDOG_USEC"); ok && usec != "" {
		u, err := strconv.ParseUint(usec, 10, 63)
		if err != nil || u == 0 {
			return nil, fmt.Errorf("sdnotify: WATCHDOG_USEC %q: want a positive number of microseconds", usec)
		}
		pid, hasPid := getenv("WATCHDOG_PID")
		if !hasPid || pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(u) * time.Microsecond
		}
	}
	return n, nil
}

// Enabled reports whether there is a socket to notify.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// WatchdogPeriod returns the watchdog period systemd asks for, and whether it
// asks: kvconf must send [Notifier.Watchdog] more often than that (every
// half period, as sd_watchdog_enabled(3) advises).
func (n *Notifier) WatchdogPeriod() (time.Duration, bool) {
	if !n.Enabled() || n.watchdog == 0 {
		return 0, false
	}
	return n.watchdog, true
}

// Ready sends READY=1: the service is up.
func (n *Notifier) Ready() error { return n.Send("READY=1") }

// Reloading sends RELOADING=1 with MONOTONIC_USEC, as Type=notify-reload
// wants; [Notifier.Ready] must follow once the reload is over.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sdnotify: clock: %w", err)
	}
	usec := uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3
	return n.Send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatUint(usec, 10))
}

// Stopping sends STOPPING=1: the service is shutting down.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Watchdog sends WATCHDOG=1: the service is alive.
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

// Status sends STATUS=text, the one-line status systemctl shows.
func (n *Notifier) Status(text string) error {
	return n.Send("STATUS=" + strings.ReplaceAll(text, "\n", " "))
}

// Send sends one notification of newline-separated VAR=value
// assignments, in one datagram. Without a socket it does nothing.
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		c, err := net.DialUnix("unixgram", nil, n.addr)
		if err != nil {
			return fmt.Errorf("sdnotify: %w", err)
		}
		n.conn = c
	}
	if _, err := n.conn.Write([]byte(state)); err != nil {
		// The socket may have been replaced (systemd re-executed): dial
		// again next time.
		cerr := n.conn.Close()
		n.conn = nil
		return errors.Join(fmt.Errorf("sdnotify: %w", err), cerr)
	}
	return nil
}

// Close closes the socket, if open.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}
