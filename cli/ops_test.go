package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkArgs are the arguments of "kvconf check" on dir with the file
// backend reading dir/data.yaml, plus extra.
func checkArgs(dir string, extra ...string) []string {
	return append([]string{"check", "-backend", "file", "-file", filepath.Join(dir, "data.yaml"),
		"-config-file", os.DevNull, "-confdir", dir}, extra...)
}

// TestCheckCommand: kvconf check runs every check_cmd on a stage file
// away from dest, prints a diff with -diff, writes nothing and runs no
// reload_cmd; a rejected output fails the run, naming the resource and
// showing the checker's output.
func TestCheckCommand(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml": appResource(
			`check_cmd = "grep -qx port=8080 {{.src}} && test {{.dest}} = @DIR@/out/app.conf && test $(dirname {{.src}}) != @DIR@/out"`,
			`reload_cmd = "touch @DIR@/reloaded"`),
		"templates/other.tmpl": "port={{getv \"/app/port\"}}\n",
		"conf.d/other.toml":    "[template]\nsrc = \"other.tmpl\"\ndest = \"@DIR@/out/other.conf\"\n",
	})
	writeFile(t, dir, "out/other.conf", "port=8080\n")
	res := kvconfIn(t, dir, cleanEnv(), checkArgs(dir, "-diff")...)
	wantCode(t, res, 0)
	wantContains(t, "stdout", res.stdout,
		"ok   conf.d/app.toml -> "+filepath.Join(dir, "out/app.conf")+" (would change)",
		"+name=demo", "ok   conf.d/other.toml -> "+filepath.Join(dir, "out/other.conf")+" (up to date)")
	wantContains(t, "stderr", res.stderr, "2 resources passed")
	wantMissing(t, filepath.Join(dir, "out", "app.conf"))
	wantMissing(t, filepath.Join(dir, "reloaded"))

	// A value that breaks the config.
	writeFile(t, dir, "data.yaml", strings.Replace(appData, "8080", "80800", 1))
	res = kvconfIn(t, dir, cleanEnv(), checkArgs(dir)...)
	wantCode(t, res, 1)
	wantContains(t, "stdout", res.stdout, "FAIL conf.d/app.toml", "check_cmd", "ok   conf.d/other.toml")
	wantContains(t, "stderr", res.stderr, "1 of 2 resources failed")
	wantMissing(t, filepath.Join(dir, "out", "app.conf"))
	if got := readString(t, filepath.Join(dir, "out", "other.conf")); got != "port=8080\n" {
		t.Errorf("check wrote other.conf: %q", got)
	}

	// The checker's output is shown under the failed resource.
	writeFile(t, dir, "conf.d/app.toml", strings.ReplaceAll(appResource(`check_cmd = "echo bad-port-in {{.src}} >&2; exit 1"`), "@DIR@", dir))
	res = kvconfIn(t, dir, cleanEnv(), checkArgs(dir)...)
	wantCode(t, res, 1)
	wantContains(t, "stdout", res.stdout, "FAIL conf.d/app.toml", "check_cmd output:", "bad-port-in")
}

// TestCheckCommandErrors: a template error fails check; a bad flag is a
// usage error.
func TestCheckCommandErrors(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": `{{getv "/no/such/key"}}`,
		"conf.d/app.toml":    appResource(),
	})
	res := kvconfIn(t, dir, cleanEnv(), checkArgs(dir)...)
	wantCode(t, res, 1)
	wantContains(t, "stdout", res.stdout, "FAIL conf.d/app.toml", "/no/such/key")
	wantCode(t, kvconfIn(t, dir, cleanEnv(), checkArgs(dir, "-nosuchflag")...), 2)
	wantCode(t, kvconfIn(t, dir, cleanEnv(), checkArgs(dir, "extra")...), 2)
}

// TestLogFormatJSON: -log-format json writes one JSON object per line with
// the fields of the text format, durations as text.
func TestLogFormatJSON(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml":    appResource(`check_cmd = "true"`),
	})
	res := kvconfFile(t, dir, "-log-format", "json", "-log-level", "debug")
	wantCode(t, res, 0)
	var sawUpdated, sawHook bool
	for _, line := range strings.Split(strings.TrimSpace(res.stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		switch m["msg"] {
		case "updated":
			sawUpdated = m["resource"] == "conf.d/app.toml" && m["dest"] == filepath.Join(dir, "out", "app.conf")
		case "hook done":
			e, _ := m["elapsed"].(string)
			sawHook = m["resource"] == "conf.d/app.toml" && strings.HasSuffix(e, "s")
		}
	}
	if !sawUpdated || !sawHook {
		t.Errorf("no updated line with resource and dest, or no hook line with a text duration:\n%s", res.stderr)
	}
	res = kvconfFile(t, dir, "-log-format", "xml")
	wantCode(t, res, 2)
	wantContains(t, "stderr", res.stderr, "-log-format", "xml")
	env := append(cleanEnv(), "KVCONF_LOG_FORMAT=yaml")
	res = kvconfIn(t, dir, env, "-backend", "file", "-file", filepath.Join(dir, "data.yaml"), "-config-file", os.DevNull, "-confdir", dir, "-onetime")
	wantCode(t, res, 2)
	wantContains(t, "stderr", res.stderr, "KVCONF_LOG_FORMAT")
}

// TestListenFlag: -listen must be host:port, from the flag, KVCONF_LISTEN
// or the config file key listen.
func TestListenFlag(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml":    appResource(),
		"kvconf.toml":        "listen = \"no-port\"\nbackend = \"file\"\nfile = [\"@DIR@/data.yaml\"]\nconfdir = \"@DIR@\"\n",
	})
	res := kvconfIn(t, dir, cleanEnv(), "-config-file", filepath.Join(dir, "kvconf.toml"), "-interval", "60")
	wantCode(t, res, 2)
	wantContains(t, "stderr", res.stderr, "config file key listen", "host:port")
	res = kvconfIn(t, dir, append(cleanEnv(), "KVCONF_LISTEN=bad"), "-config-file", filepath.Join(dir, "kvconf.toml"))
	wantCode(t, res, 2)
	wantContains(t, "stderr", res.stderr, "KVCONF_LISTEN")
	res = kvconfIn(t, dir, cleanEnv(), "-config-file", filepath.Join(dir, "kvconf.toml"), "-listen", "bad")
	wantCode(t, res, 2)
	wantContains(t, "stderr", res.stderr, "flag -listen")
}
