// Package zktest starts a real, standalone ZooKeeper server for tests:
// Debian's zookeeper package (its /usr/share/java/zookeeper.jar) run with
// java on a free loopback port, with a data directory of its own.
//
// [Start] skips the test, saying how to get the server, when java or the
// jar is missing, and fails it instead when the CI environment variable is
// set, so that a missing server never passes for a green run there.
package zktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Jar is where Debian's zookeeper package puts the server; the ZOOKEEPER_JAR
// environment variable overrides it.
const Jar = "/usr/share/java/zookeeper.jar"

// startTimeout bounds the wait for a started server to answer; generous,
// since a JVM starts slowly on a loaded machine.
const startTimeout = 90 * time.Second

// Server is a ZooKeeper server run by a test. Its methods are safe for
// concurrent use.
type Server struct {
	// Addr is the server's client address, 127.0.0.1:PORT.
	Addr string

	t       testing.TB
	java    string
	jar     string
	dir     string // holds zoo.cfg, data/ and the log
	fullJIT bool
	mu      sync.Mutex
	cmd     *exec.Cmd
	waitErr chan error
}

// Options shape a [Server].
type Options struct {
	// TickTime is ZooKeeper's tick; sessions last between 2 and 20 ticks.
	// Zero means 200ms, so that tests can use session timeouts from 400ms.
	TickTime time.Duration
	// FullJIT runs the JVM with its optimising compiler, for benchmarks;
	// without it the JVM compiles with C1 only, which starts faster.
	FullJIT bool
}

// Start starts a standalone ZooKeeper on a free port of 127.0.0.1 and
// stops it when the test ends. It skips the test (fails it under CI) when
// the server is not installed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	java, jar := find(t)
	if opts.TickTime <= 0 {
		opts.TickTime = 200 * time.Millisecond
	}
	dir := t.TempDir()
	port := freePort(t)
	cfg := fmt.Sprintf("tickTime=%d\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=srvr,ruok,wchs\nmaxClientCnxns=0\nforceSync=no\n",
		opts.TickTime.Milliseconds(), filepath.Join(dir, "data"), port)
	if err := os.WriteFile(filepath.Join(dir, "zoo.cfg"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), t: t, java: java, jar: jar, dir: dir, fullJIT: opts.FullJIT}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// find returns the java binary and the server's jar, or skips (fails under
// CI) the test.
func find(t testing.TB) (java, jar string) {
	t.Helper()
	jar = os.Getenv("ZOOKEEPER_JAR")
	if jar == "" {
		jar = Jar
	}
	java, err := exec.LookPath("java")
	if err == nil {
		_, err = os.Stat(jar)
	}
	if err != nil {
		msg := fmt.Sprintf("ZooKeeper not available (%v): install Debian's zookeeper package (scripts/test-deps does) or set ZOOKEEPER_JAR", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return java, jar
}

// freePort returns a port of 127.0.0.1 that nothing listened on a moment
// ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }() // only its port was wanted
	return l.Addr().(*net.TCPAddr).Port
}

// Restart starts the server again after [Server.Stop] (or the first time),
// on the same port and data, and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("zktest: Restart of a running server")
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer func() { _ = logf.Close() }() // the child has its own copy
	args := []string{"-Xmx256m", "-XX:+UseSerialGC"}
	if !s.fullJIT {
		args = append(args, "-XX:TieredStopAtLevel=1")
	}
	args = append(args, "-Dzookeeper.admin.enableServer=false", "-cp", s.jar,
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(s.dir, "zoo.cfg"))
	cmd := exec.Command(s.java, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("zktest: start java: %v", err)
	}
	s.cmd = cmd
	s.waitErr = make(chan error, 1)
	go func() { s.waitErr <- cmd.Wait() }()
	if err := s.await(); err != nil {
		s.stopLocked()
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		s.t.Fatalf("zktest: server at %s: %v\n%s", s.Addr, err, log)
	}
}

// await waits until the server answers "srvr" with a standalone mode.
func (s *Server) await() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		out, err := s.command(ctx, "srvr")
		if err == nil && strings.Contains(out, "Mode: standalone") {
			return nil
		}
		select {
		case werr := <-s.waitErr:
			s.waitErr <- werr
			return fmt.Errorf("exited: %w", werr)
		case <-ctx.Done():
			return fmt.Errorf("no answer within %v: %w", startTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// command sends one of ZooKeeper's four-letter commands and returns the
// answer.
func (s *Server) command(ctx context.Context, cmd string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }() // the answer was read, or the error is returned
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return "", errors.New("empty answer")
	}
	return b.String(), nil
}

// Watches returns the number of watches the server holds for all its
// clients, as its "wchs" four-letter command reports them ("Total
// watches:N").
func (s *Server) Watches(t testing.TB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := s.command(ctx, "wchs")
	if err != nil {
		t.Fatalf("zktest: wchs: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "Total watches:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("zktest: wchs: %q", out)
			}
			return n
		}
	}
	t.Fatalf("zktest: wchs: no total in %q", out)
	return 0
}

// Signal sends sig to the running server's process, such as SIGSTOP to
// freeze it (it keeps accepting connections and answers nothing) and
// SIGCONT to let it go on.
func (s *Server) Signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("zktest: signal to a stopped server")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("zktest: signal %v: %w", sig, err)
	}
	return nil
}

// Stop kills the server (as a crash would) and waits for it to exit. The
// data stays for [Server.Restart]. It does nothing on a stopped server.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	werr := <-s.waitErr
	_ = werr // killed: its exit status says so
	s.cmd = nil
}
