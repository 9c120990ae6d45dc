package cli

import (
	"bytes"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// greeter writes, in dir, a plugin kvconf-backend-NAME that only greets
// (a shell script: the tests here need its handshake, never a request;
// test/ runs real plugins) with the given JSON line, then waits for the
// end of its stdin.
func greeter(t *testing.T, dir, name, greeting string) string {
	t.Helper()
	return writePlugin(t, dir, name, "#!/bin/sh\necho '"+greeting+"'\ncat >/dev/null\n")
}

// writePlugin writes the script of a plugin kvconf-backend-NAME in dir.
func writePlugin(t *testing.T, dir, name, script string) string {
	t.Helper()
	p := filepath.Join(dir, pluginPrefix+name)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o755); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// TestFindPlugin (issue 18.4): -plugin-dir's directories come first, then
// PATH; names that are paths are never looked up; a plugin others may
// write is refused.
func TestFindPlugin(t *testing.T) {
	t.Parallel()
	one, two, path := t.TempDir(), t.TempDir(), t.TempDir()
	inTwo := greeter(t, two, "x", `{}`)
	inPath := greeter(t, path, "y", `{}`)
	greeter(t, path, "x", `{}`)
	if err := os.WriteFile(filepath.Join(one, pluginPrefix+"x"), []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want string
	}{
		{name: "x", want: inTwo},
		{name: "y", want: inPath},
		{name: "z", want: ""},
		{name: "../x", want: ""},
	}
	for _, tt := range tests {
		got, err := findPlugin(tt.name, []string{one, two}, "relative:"+path)
		if err != nil || got != tt.want {
			t.Errorf("findPlugin(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	w := greeter(t, one, "w", `{}`)
	if err := os.Chmod(w, 0o777); err != nil {
		t.Fatal(err)
	}
	if got, err := findPlugin("w", []string{one}, ""); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("findPlugin of a world-writable plugin = %q, %v; want it refused", got, err)
	}
}

// TestPluginsListsDiscovered (issue 18.4): "kvconf plugins" lists the
// plugins of -plugin-dir and PATH with their handshake's protocol
// version and description, and says so of one that does not greet.
func TestPluginsListsDiscovered(t *testing.T) {
	t.Parallel()
	dir, path := t.TempDir(), t.TempDir()
	p := greeter(t, dir, "eureka", `{"protocol":"kvconf-backend","version":1,"description":"Netflix Eureka"}`)
	q := greeter(t, path, "old", `{"protocol":"kvconf-backend","version":0}`)
	greeter(t, path, "file", `{"protocol":"kvconf-backend","version":1}`)
	var out, errOut bytes.Buffer
	args := []string{"plugins", "-config-file", os.DevNull, "-plugin-dir", dir}
	if code := run(t.Context(), args, envMap(map[string]string{"PATH": path}), &out, &errOut); code != exitOK {
		t.Fatalf("exit code %d:\n%s", code, errOut.String())
	}
	for _, want := range []string{
		"plugin\teureka\tNetflix Eureka (kvconf-backend version 1, " + p + ")\n",
		"plugin\told\tunusable: plugin " + q + `: speaks protocol "kvconf-backend" version 0, kvconf speaks "kvconf-backend" version 1` + "\n",
		"plugin\tfile\tshadowed by the built-in backend file (",
		"backend\tfile\t",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plugins printed:\n%s\nwant a line with %q", out.String(), want)
		}
	}
}

// TestDiscoveredPluginOptions (issue 18.4): -backend NAME finds the plugin
// and checks the generic flags given against the options its greeting
// declares, naming the flag it does not take; without a plugin, the
// error says where kvconf looked.
func TestDiscoveredPluginOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := greeter(t, dir, "eureka", `{"protocol":"kvconf-backend","version":1,"options":[{"key":"nodes"},{"key":"separator"}]}`)
	var stderr bytes.Buffer
	args := []string{"-config-file", os.DevNull, "-confdir", t.TempDir(), "-onetime", "-plugin-dir", dir,
		"-backend", "eureka", "-node", "h:1", "-separator", ":", "-table", "t"}
	if code := run(t.Context(), args, envMap(nil), io.Discard, &stderr); code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	if want := "kvconf: backend eureka: flag -table: not an option of plugin " + p + " (it takes nodes, separator)\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	// The same from KVCONF_PLUGIN_DIR and from the config file's key
	// plugin_dir, the option set in the environment.
	cfgFile := writeFile(t, t.TempDir(), "kvconf.toml", "plugin_dir = ["+strconv.Quote(dir)+"]\n")
	for _, tt := range []struct {
		args []string
		env  map[string]string
	}{
		{args: []string{"-config-file", os.DevNull}, env: map[string]string{"KVCONF_PLUGIN_DIR": t.TempDir() + "," + dir}},
		{args: []string{"-config-file", cfgFile}},
	} {
		stderr.Reset()
		args := append(tt.args, "-confdir", t.TempDir(), "-onetime", "-backend", "eureka")
		env := map[string]string{"KVCONF_TABLE": "t"}
		maps.Copy(env, tt.env)
		if code := run(t.Context(), args, envMap(env), io.Discard, &stderr); code != exitUsage {
			t.Errorf("%v: exit code %d, want %d", tt, code, exitUsage)
		}
		if want := "kvconf: backend eureka: environment KVCONF_TABLE: not an option of plugin " + p + " (it takes nodes, separator)\n"; stderr.String() != want {
			t.Errorf("%v: stderr %q, want %q", tt, stderr.String(), want)
		}
	}

	// The generic flags a plugin declares reach it; this one greets and
	// exits, so opening it fails at its configure request.
	writePlugin(t, dir, "eureka", "#!/bin/sh\necho '"+`{"protocol":"kvconf-backend","version":1,"options":[{"key":"nodes"},{"key":"separator"}]}`+"'\n")
	stderr.Reset()
	confdir := t.TempDir()
	writeFile(t, confdir, "templates/a.tmpl", "{{getv \"/a\"}}\n")
	writeFile(t, confdir, "conf.d/a.toml", "[template]\nsrc = \"a.tmpl\"\ndest = \""+filepath.Join(confdir, "a.out")+"\"\nkeys = [\"/a\"]\n")
	args = append(args[:len(args)-2], "-confdir", confdir)
	if code := run(t.Context(), args, envMap(nil), io.Discard, &stderr); code != exitFailed {
		t.Errorf("exit code %d, want %d:\n%s", code, exitFailed, stderr.String())
	}
	if !strings.Contains(stderr.String(), "plugin "+p+": configure: ") {
		t.Errorf("stderr %q: want the plugin started and configured", stderr.String())
	}

	stderr.Reset()
	args = []string{"-config-file", os.DevNull, "-confdir", t.TempDir(), "-onetime", "-plugin-dir", dir, "-backend", "nacos"}
	if code := run(t.Context(), args, envMap(nil), io.Discard, &stderr); code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	if want := "no plugin kvconf-backend-nacos in -plugin-dir or PATH"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want it to contain %q", stderr.String(), want)
	}
}

// TestNamedPluginType (issue 18.4): a [backends.NAME] table whose type is
// not built in runs the plugin kvconf-backend-TYPE with the table's other
// keys as options; an option the plugin does not take, or a type with no
// plugin, is an error naming the table and the key.
func TestNamedPluginType(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := greeter(t, dir, "eureka", `{"protocol":"kvconf-backend","version":1,"options":[{"key":"nodes"},{"key":"separator"}]}`)
	for _, tt := range []struct{ table, want string }{
		{
			table: "[backends.reg]\ntype = \"eureka\"\nnodes = [\"h:1\", \"h:2\"]\ntable = \"t\"\n",
			want:  `[backends.reg]: type "eureka": key "table": not an option of plugin ` + p + " (it takes nodes, separator)",
		},
		{
			table: "[backends.reg]\ntype = \"nacos\"\n",
			want:  `[backends.reg]: key "type": unknown backend "nacos"`,
		},
	} {
		cfgFile := writeFile(t, t.TempDir(), "kvconf.toml", tt.table)
		var stderr bytes.Buffer
		args := []string{"-config-file", cfgFile, "-confdir", t.TempDir(), "-onetime", "-plugin-dir", dir}
		if code := run(t.Context(), args, envMap(nil), io.Discard, &stderr); code != exitUsage {
			t.Errorf("%q: exit code %d, want %d", tt.table, code, exitUsage)
		}
		if want := "config file " + cfgFile + ": " + tt.want; !strings.Contains(stderr.String(), want) {
			t.Errorf("%q: stderr %q, want it to contain %q", tt.table, stderr.String(), want)
		}
	}
}
