// Command sigrec is the child that the exec tests run under "kvconf exec".
// It records the signals it gets, reports its pid and parent, and obeys
// commands that the test drops into its state directory.
//
// At start it prints "pid=P ppid=Q" (and "env NAME=VALUE" with -env,
// "cat=CONTENT" with -cat, and "stdin=LINE" with -stdin, after reading one
// line of stdin), installs its
// signal handlers and then writes "P Q" to DIR/ready. Each signal it gets
// is appended to DIR/signals as its name, one a line; SIGTERM and SIGINT
// then make it exit 0, unless -ignore-term.
//
// Commands are files DIR/cmd.* (write them elsewhere and rename them in),
// each holding one of:
//
//	exit N     exit with code N
//	raise SIG  die by signal number SIG (its default action)
//	orphan     leave an orphan (a grandchild whose parent exits before
//	           it), wait for it to exit, and write its fate to
//	           DIR/orphan: "gone" once it was reaped, "zombie" while it is
//	           a zombie nobody reaps; DIR/orphan-ppid gets the orphan's new
//	           parent pid.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// deadline bounds every wait of the helper, so that a broken test cannot
// leave it behind for long.
const deadline = 60 * time.Second

// signalNames are the signals sigrec records, with their names.
func signalNames() map[os.Signal]string {
	return map[os.Signal]string{
		syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM",
		syscall.SIGQUIT: "SIGQUIT", syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2",
		syscall.SIGWINCH: "SIGWINCH",
	}
}

func main() {
	dir := flag.String("dir", "", "state directory")
	mode := flag.String("mode", "", "internal: orphan-parent or orphan-child")
	ignoreTerm := flag.Bool("ignore-term", false, "record SIGTERM and SIGINT but keep running")
	env := flag.String("env", "", "print this environment variable")
	stdin := flag.Bool("stdin", false, "read a line of stdin and print it")
	parent := flag.Int("parent", 0, "internal: the orphan's first parent")
	cat := flag.String("cat", "", "print this file's content at start, as cat=CONTENT")
	flag.Parse()
	switch *mode {
	case "orphan-parent":
		orphanParent(*dir)
		return
	case "orphan-child":
		orphanChild(*dir, *parent)
		return
	}

	names := signalNames()
	sigs := make(chan os.Signal, 32)
	all := make([]os.Signal, 0, len(names))
	for s := range names {
		all = append(all, s)
	}
	signal.Notify(sigs, all...)
	fmt.Printf("pid=%d ppid=%d\n", os.Getpid(), os.Getppid())
	if *env != "" {
		fmt.Printf("env %s=%s\n", *env, os.Getenv(*env))
	}
	if *cat != "" {
		b, err := os.ReadFile(*cat)
		if err != nil {
			fail(err)
		}
		fmt.Printf("cat=%s\n", strings.TrimSpace(string(b)))
	}
	if *stdin {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil {
			fail(err)
		}
		fmt.Printf("stdin=%s\n", strings.TrimSpace(line))
	}
	writeAtomic(*dir, "ready", fmt.Sprintf("%d %d\n", os.Getpid(), os.Getppid()))

	tick := time.NewTicker(10 * time.Millisecond)
	for {
		select {
		case s := <-sigs:
			appendLine(filepath.Join(*dir, "signals"), names[s])
			if (s == syscall.SIGTERM || s == syscall.SIGINT) && !*ignoreTerm {
				os.Exit(0)
			}
		case <-tick.C:
			commands(*dir)
		}
	}
}

// commands runs and removes the command files in dir.
func commands(dir string) {
	files, err := filepath.Glob(filepath.Join(dir, "cmd.*"))
	if err != nil {
		fail(err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		if err := os.Remove(f); err != nil {
			fail(err)
		}
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "exit":
			n, _ := strconv.Atoi(fields[1])
			os.Exit(n)
		case "raise":
			n, _ := strconv.Atoi(fields[1])
			sig := syscall.Signal(n)
			signal.Reset(sig)
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				fail(err)
			}
			time.Sleep(deadline)
			fail(fmt.Errorf("still alive after signal %d", n))
		case "orphan":
			go orphan(dir) // commands keep working while it waits
		default:
			fail(fmt.Errorf("unknown command %q", fields[0]))
		}
	}
}

// orphan starts a process that starts the orphan and exits at once, then
// follows the orphan until it is reaped.
func orphan(dir string) {
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	parent := exec.Command(self, "-mode", "orphan-parent", "-dir", dir)
	parent.Stderr = os.Stderr
	if err := parent.Run(); err != nil {
		fail(fmt.Errorf("orphan-parent: %w", err))
	}
	var pid int
	until(func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "orphan-pid"))
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	zombie := false
	until(func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			writeAtomic(dir, "orphan", "gone\n")
			return true
		}
		// pid (comm) state ...: the state follows the last ')'.
		if s := string(b); !zombie && strings.HasPrefix(strings.TrimSpace(s[strings.LastIndexByte(s, ')')+1:]), "Z") {
			zombie = true
			writeAtomic(dir, "orphan", "zombie\n")
		}
		return false
	})
}

// orphanParent starts the orphan-to-be and exits without waiting for it.
func orphanParent(dir string) {
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	child := exec.Command(self, "-mode", "orphan-child", "-dir", dir, "-parent", strconv.Itoa(os.Getpid()))
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		fail(err)
	}
}

// orphanChild waits until its parent, which may be gone already, has
// exited and it was handed to a new one, reports its pid and new parent,
// and exits.
func orphanChild(dir string, parent int) {
	until(func() bool { return os.Getppid() != parent })
	writeAtomic(dir, "orphan-ppid", fmt.Sprintf("%d\n", os.Getppid()))
	writeAtomic(dir, "orphan-pid", fmt.Sprintf("%d\n", os.Getpid()))
}

// until polls cond until it holds, and fails after the deadline.
func until(cond func() bool) {
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			fail(fmt.Errorf("gave up after %s", deadline))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeAtomic writes dir/name through a temporary file and a rename.
func writeAtomic(dir, name, content string) {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		fail(err)
	}
}

// appendLine appends one line to the file at p.
func appendLine(p, line string) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fail(err)
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sigrec:", err)
	os.Exit(99)
}
