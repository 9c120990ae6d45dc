// Package resource loads template resources, the conf.d/*.toml files of
// confd, and applies them: it renders a resource's template against a
// backend's keys, stages the output next to the destination, checks it,
// commits it atomically and reloads the service that reads it.
//
// A resource file holds one TOML table, named template:
//
//	[template]
//	src = "haproxy.cfg.tmpl"        # under ConfDir/templates
//	dest = "/etc/haproxy/haproxy.cfg"
//	prefix = "/services"            # joined after the global prefix
//	keys = ["/web"]
//	mode = "0644"                   # octal; default: dest's mode, else 0644
//	owner = "haproxy"               # or uid = 99; default: dest's owner
//	group = "haproxy"               # or gid = 99; default: dest's group
//	check_cmd = "haproxy -c -f {{.src}}"   # paths are shell-quoted
//	reload_cmd = "systemctl reload haproxy"
//	rollback = true                 # restore dest if reload_cmd fails
//	timeout = "60s"                 # per hook
//	wait = "2s:10s"                 # let changes settle (daemon only)
//	backend = "meta"                # a named backend; default: the run's default backend
//	funcs = ["sprig", "confd"]      # the function sets of the template, in order
//	sensitive = true                # keep hook output and diffs out of logs and reports
//
//	[template.apply]                # optional: apply changes without reload_cmd
//	type = "haproxy-runtime"        # an applier (see package appliers)
//	socket = "/run/haproxy/admin.sock"
//
// With an apply table, the applier brings the service up to date once
// check_cmd passed, and reload_cmd is the fallback, run only when the
// applier cannot apply the change.
//
// Apply never leaves dest half-written: the new content is written to a
// stage file in dest's directory and renamed over dest, and dest is touched
// only when its content, mode or owner differ from what the resource wants.
package resource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/kvconf/kvconf/appliers"
	"github.com/kvconf/kvconf/funcs"
	"github.com/kvconf/kvconf/template"
)

// Config is the table named template of a conf.d/*.toml file, in confd's
// format.
type Config struct {
	// Src is the template file, relative to the templates directory.
	Src string `toml:"src"`
	// Dest is the file the output is written to.
	Dest string `toml:"dest"`
	// Keys are the backend keys (plain string prefixes under Prefix) the
	// template reads. No keys means everything under Prefix.
	Keys []string `toml:"keys"`
	// Prefix is joined to the global prefix and then to every key.
	Prefix string `toml:"prefix"`
	// Owner is dest's owner, a user name or a numeric uid.
	Owner string `toml:"owner"`
	// Group is dest's group, a group name or a numeric gid.
	Group string `toml:"group"`
	// UID is dest's owner as a number; confd's way of setting it. -1, as
	// in confd, means unset.
	UID *int `toml:"uid"`
	// GID is dest's group as a number; -1 means unset.
	GID *int `toml:"gid"`
	// Mode is dest's permission bits as an octal string, such as "0644".
	Mode string `toml:"mode"`
	// CheckCmd validates the staged output before it replaces dest;
	// {{.src}} is the stage file and {{.dest}} is dest.
	CheckCmd string `toml:"check_cmd"`
	// ReloadCmd runs after dest was replaced; {{.src}} and {{.dest}} are
	// both dest.
	ReloadCmd string `toml:"reload_cmd"`
	// Rollback restores dest's previous content when ReloadCmd fails. Nil
	// means true.
	Rollback *bool `toml:"rollback"`
	// Timeout bounds each hook, as a Go duration such as "30s". Empty
	// means [Options.HookTimeout].
	Timeout string `toml:"timeout"`
	// Wait lets changes settle before the resource is rendered again, in
	// [ParseWait]'s "min[:max]" syntax such as "2s:10s". Empty means the
	// wait of the run ([RunOptions.Wait]); "0s" renders at once.
	Wait string `toml:"wait"`
	// Backend names the backend the resource reads, one of
	// [Options.Backends]. Empty means the run's default backend.
	Backend string `toml:"backend"`
	// Funcs names the function sets the template gets, in order (later
	// sets win on shared names). Nil means [Options.Sets]; an empty list
	// gives the template no functions but include.
	Funcs []string `toml:"funcs"`
	// Sensitive marks a resource whose output holds secrets: the output
	// of its hooks is not kept (see [HookError.Withheld]) and its diffs
	// are not shown, so that neither reaches a log, a report or -noop's
	// output.
	Sensitive bool `toml:"sensitive"`
}

// Options are the settings shared by every resource of a run.
type Options struct {
	// ConfDir holds conf.d (the resource files) and templates (the
	// template sources, also the directory include reads from).
	ConfDir string
	// Prefix is the global prefix, joined before every resource's prefix.
	// (confd let the global prefix replace the resource's; kvconf joins.)
	Prefix string
	// Noop writes nothing and runs nothing; Apply prints a unified diff of
	// each change to Diff instead.
	Noop bool
	// Diff receives the diffs of Noop runs; nil discards them.
	Diff io.Writer
	// SyncOnly writes files but runs no check_cmd or reload_cmd.
	SyncOnly bool
	// KeepStageFile keeps the stage file of an update that check_cmd
	// rejected, for inspection.
	KeepStageFile bool
	// HookTimeout bounds each hook of resources that set no timeout;
	// zero means 60s.
	HookTimeout time.Duration
	// HookGrace is how long a hook still runs after the context of the
	// Apply that started it is done (kvconf is stopping): the hook's
	// process group gets SIGTERM at once and SIGKILL after HookGrace,
	// within its timeout. Zero means 10s.
	HookGrace time.Duration
	// Sets names the function sets templates get when their resource
	// names none; nil means [funcs.DefaultSets].
	Sets []string
	// Backends, when not nil, are the backend names a resource may give in
	// its backend key; any other name is a load error. Nil accepts any
	// name (the caller checks).
	Backends []string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// Observer, when set, receives the events of every resource (see
	// [Event]), for metrics and readiness.
	Observer Observer
}

// defaultHookTimeout is the hook timeout when neither the resource nor
// [Options.HookTimeout] sets one.
const defaultHookTimeout = 60 * time.Second

// defaultHookGrace is the grace period of hooks when [Options.HookGrace]
// sets none.
const defaultHookGrace = 10 * time.Second

// Resource is a loaded template resource, ready to [Resource.Apply].
type Resource struct {
	// Name identifies the resource in messages: its file's path relative
	// to ConfDir when it is inside ConfDir (such as "conf.d/haproxy.toml"),
	// else the path as given.
	Name string
	// Path is the resource file's path as given to [Load].
	Path string
	// Config is the decoded template table.
	Config Config

	prefix  string // global and resource prefix, joined
	tmpl    *template.Template
	dest    string
	mode    fs.FileMode // valid when modeSet
	modeSet bool
	uid     int // -1 when unset
	gid     int // -1 when unset
	timeout time.Duration
	grace   time.Duration
	wait    Wait // valid when waitSet
	waitSet bool
	check   *texttemplate.Template // nil without check_cmd
	reload  *texttemplate.Template // nil without reload_cmd
	opts    Options
	log     *slog.Logger

	applier     appliers.Applier // nil without [template.apply]
	applierName string           // its type

	mu       sync.Mutex            // serialises Apply
	lastSize int                   // bytes of the last render, under mu; 0 before the first
	signal   func(os.Signal) error // the supervised command's, under mu; see SetSignal
}

// LoadError reports a problem with a resource file.
type LoadError struct {
	// Path names the file as [Resource.Name] does.
	Path string
	// Line is the 1-based line of the problem, or 0 when unknown.
	Line int
	// Field is the TOML key at fault, such as "template.mode", or "" when
	// the problem is with the whole file.
	Field string
	// Err is the problem.
	Err error
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	var pe toml.ParseError
	if errors.As(e.Err, &pe) {
		b.WriteString("toml: " + pe.Message) // the line is already in front
	} else {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Err.
func (e *LoadError) Unwrap() error { return e.Err }

// ErrNoTemplate is wrapped by the error for a file without a template table.
var ErrNoTemplate = errors.New("resource: no [template] table")

// Load reads the resource file at path and prepares it: it checks every
// field, resolves owner and group, and parses the template, so that Apply
// fails only on what can change between runs. Errors are [*LoadError]s,
// joined when there are several.
func Load(path string, opts Options) (*Resource, error) { return loadFile(path, opts, nil) }

// loadFile is [Load], sharing parsed templates through cache (nil: none).
func loadFile(path string, opts Options, cache parsed) (*Resource, error) {
	name := displayName(path, opts.ConfDir)
	data, err := readRegular(path)
	if err != nil {
		return nil, &LoadError{Path: name, Err: err}
	}
	r, err := load(name, data, opts, cache)
	if err != nil {
		return nil, err
	}
	r.Path = path
	return r, nil
}

// parsed shares parsed templates between the resources of one LoadDir: many
// resources render one template with different prefixes, and a template is
// immutable once parsed. Keys hold the source, its sets and its content.
type parsed map[string]*template.Template

// displayName returns p relative to confDir when it is inside it.
func displayName(p, confDir string) string {
	if confDir == "" {
		return p
	}
	if rel, err := filepath.Rel(confDir, p); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return p
}

// file is the layout of a resource file.
type file struct {
	Template Config `toml:"template"`
}

// applyFile is the layout of a resource file as far as its apply table
// goes, decoded once the applier's type is known.
type applyFile struct {
	Template struct {
		Apply toml.Primitive `toml:"apply"`
	} `toml:"template"`
}

// applyType is the part of the apply table that picks the applier.
type applyType struct {
	Type string `toml:"type"`
}

// load decodes and checks the resource file data, named name in errors.
func load(name string, data []byte, opts Options, cache parsed) (*Resource, error) {
	var f file
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		le := &LoadError{Path: name, Err: err}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			le.Line = pe.Position.Line
		}
		return nil, le
	}
	if md.Type("template") != "Hash" {
		return nil, &LoadError{Path: name, Err: ErrNoTemplate}
	}
	var errs []error
	bad := func(field string, err error) {
		errs = append(errs, &LoadError{Path: name, Field: field, Err: err})
	}
	applier, applierName := decodeApply(data, md, bad)
	unknown := map[string]bool{}
	for _, k := range md.Undecoded() {
		if len(k) >= 2 && k[0] == "template" && k[1] == "apply" {
			continue // decodeApply's
		}
		unknown[k.String()] = true
		if len(k) > 1 && unknown[k[:len(k)-1].String()] {
			continue // inside an unknown table, which was reported
		}
		bad(k.String(), errors.New("unknown key"))
	}
	// Keys match fields case-insensitively, as in confd; two spellings of
	// one field would make the result depend on map order.
	seen := map[string]string{}
	for _, k := range md.Keys() {
		if len(k) != 2 || k[0] != "template" {
			continue
		}
		low := strings.ToLower(k[1])
		if prev, dup := seen[low]; dup {
			bad(k.String(), fmt.Errorf("same field as template.%s", prev))
			continue
		}
		seen[low] = k[1]
	}
	if len(errs) > 0 {
		// With two spellings of a field, its value depends on decode order:
		// report the keys alone rather than checks of an arbitrary value.
		return nil, errors.Join(errs...)
	}

	c := f.Template
	r := &Resource{Name: name, Path: name, Config: c, opts: opts, uid: -1, gid: -1,
		applier: applier, applierName: applierName}
	r.log = opts.Logger
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.prefix = JoinKey(opts.Prefix, c.Prefix)

	if c.Dest == "" {
		bad("template.dest", errors.New("missing"))
	} else if abs, err := filepath.Abs(c.Dest); err != nil {
		bad("template.dest", err)
	} else {
		// A relative dest is taken from the working directory at load, so
		// that hooks see absolute {{.src}} and {{.dest}} paths.
		r.dest = abs
	}
	if c.Mode != "" {
		m, err := parseMode(c.Mode)
		if err != nil {
			bad("template.mode", err)
		}
		r.mode, r.modeSet = m, true
	}
	r.uid = resolveID(bad, "template.owner", "template.uid", c.Owner, c.UID, lookupUser)
	r.gid = resolveID(bad, "template.group", "template.gid", c.Group, c.GID, lookupGroup)

	r.timeout = opts.HookTimeout
	if r.timeout <= 0 {
		r.timeout = defaultHookTimeout
	}
	r.grace = opts.HookGrace
	if r.grace <= 0 {
		r.grace = defaultHookGrace
	}
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		switch {
		case err != nil:
			bad("template.timeout", err)
		case d <= 0:
			bad("template.timeout", fmt.Errorf("timeout %q is not positive", c.Timeout))
		default:
			r.timeout = d
		}
	}
	if c.Wait != "" {
		if r.wait, err = ParseWait(c.Wait); err != nil {
			bad("template.wait", err)
		}
		r.waitSet = true
	}
	if r.check, err = parseHook("check_cmd", c.CheckCmd); err != nil {
		bad("template.check_cmd", err)
	}
	if r.reload, err = parseHook("reload_cmd", c.ReloadCmd); err != nil {
		bad("template.reload_cmd", err)
	}

	if opts.Backends != nil && c.Backend != "" && !slices.Contains(opts.Backends, c.Backend) {
		bad("template.backend", unknownBackend(c.Backend, opts.Backends))
	}
	sets, setsOK := opts.Sets, true
	if c.Funcs != nil {
		sets = c.Funcs
		known := funcs.Names()
		for _, n := range c.Funcs {
			if !slices.Contains(known, n) {
				bad("template.funcs", fmt.Errorf("unknown function set %q (known: %s)", n, strings.Join(known, ", ")))
				setsOK = false // parsing would only repeat it
			}
		}
	}

	if c.Src == "" {
		bad("template.src", errors.New("missing"))
	} else if setsOK {
		tdir := filepath.Join(opts.ConfDir, "templates")
		src, err := readRegular(filepath.Join(tdir, c.Src))
		if err != nil {
			bad("template.src", err)
		} else {
			key := strings.Join([]string{c.Src, strings.Join(sets, ","), string(src)}, "\x00")
			if t, ok := cache[key]; ok {
				r.tmpl = t
			} else {
				r.tmpl, err = template.Parse(filepath.ToSlash(filepath.Clean(c.Src)), src,
					template.Options{Sets: sets, IncludeDir: tdir})
				if err != nil {
					bad("template.src", explainUndefined(err, c.Funcs))
				} else if cache != nil {
					cache[key] = r.tmpl
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// decodeApply decodes the [template.apply] table of the resource file
// data, whose metadata is fmd, when there is one, into its applier's
// config, reports its problems (unknown keys too) through bad and returns
// the applier and its type.
func decodeApply(data []byte, fmd toml.MetaData, bad func(string, error)) (appliers.Applier, string) {
	if !fmd.IsDefined("template", "apply") {
		return nil, ""
	}
	if fmd.Type("template", "apply") != "Hash" {
		bad("template.apply", errors.New("not a table"))
		return nil, ""
	}
	var f applyFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		bad("template.apply", err)
		return nil, ""
	}
	prim := f.Template.Apply
	var t applyType
	if err := md.PrimitiveDecode(prim, &t); err != nil {
		bad("template.apply.type", err)
		return nil, ""
	}
	if t.Type == "" {
		bad("template.apply.type", errors.New("missing"))
		return nil, ""
	}
	cfg, err := appliers.NewConfig(t.Type)
	if err != nil {
		bad("template.apply.type", err)
		return nil, ""
	}
	if err := md.PrimitiveDecode(prim, cfg); err != nil {
		bad("template.apply", err)
		return nil, ""
	}
	unknown := false
	for _, k := range md.Undecoded() {
		if len(k) == 3 && k[0] == "template" && k[1] == "apply" {
			bad(k.String(), fmt.Errorf("unknown key for applier %q", t.Type))
			unknown = true
		}
	}
	if unknown {
		return nil, ""
	}
	if v, ok := cfg.(appliers.Validator); ok {
		if err := v.Validate(); err != nil {
			bad(applyField(err))
			return nil, ""
		}
	}
	a, err := cfg.New()
	if err != nil {
		bad(applyField(err))
		return nil, ""
	}
	return a, t.Type
}

// applyField returns the key an applier's config error is about, and the
// error without the key.
func applyField(err error) (string, error) {
	var oe *appliers.OptionError
	if errors.As(err, &oe) {
		return "template.apply." + oe.Key, oe.Err
	}
	return "template.apply", err
}

// unknownBackend is the error for a backend name that is not configured.
func unknownBackend(name string, known []string) error {
	var named []string
	for _, k := range known {
		if k != "" {
			named = append(named, strconv.Quote(k))
		}
	}
	if len(named) == 0 {
		return fmt.Errorf("unknown backend %q (no named backends are configured)", name)
	}
	return fmt.Errorf("unknown backend %q (configured: %s)", name, strings.Join(named, ", "))
}

// undefinedFunc matches text/template's parse error for a call of a
// function it does not know.
var undefinedFunc = regexp.MustCompile(`function "([^"]+)" not defined`)

// explainUndefined adds to a parse error about an undefined function the
// function sets that define it, when the resource chose its sets with
// template.funcs and left those out.
func explainUndefined(err error, chosen []string) error {
	m := undefinedFunc.FindStringSubmatch(err.Error())
	if chosen == nil || m == nil {
		return err
	}
	var in []string
	for _, set := range funcs.Names() {
		fm, ferr := funcs.Map(context.Background(), []string{set}, funcs.NewStore(nil))
		if ferr != nil {
			continue
		}
		if _, ok := fm[m[1]]; ok {
			in = append(in, strconv.Quote(set))
		}
	}
	if len(in) == 0 {
		return err
	}
	if len(in) == 1 {
		return fmt.Errorf("%w (%s is in function set %s, which template.funcs = %q does not enable)", err, m[1], in[0], chosen)
	}
	return fmt.Errorf("%w (%s is in function sets %s, none of which template.funcs = %q enables)", err, m[1], strings.Join(in, ", "), chosen)
}

// readRegular reads the regular file p; anything else (a directory, a
// device, a FIFO) is an error rather than a read that may never end.
func readRegular(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose on Close
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return io.ReadAll(f)
}

// parseMode parses an octal permission string such as "0644", "644" or
// "0o644", including the setuid, setgid and sticky bits.
func parseMode(s string) (fs.FileMode, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	n, err := strconv.ParseUint(digits, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("invalid mode %q (want octal, such as \"0644\")", s)
	}
	m := fs.FileMode(n) & fs.ModePerm
	if n&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// maxID is the largest uid or gid.
const maxID = 1<<32 - 2

// resolveID combines a name-or-number field and a number field into one id,
// or -1 when neither is set.
func resolveID(bad func(string, error), nameField, idField, name string, id *int, lookup func(string) (int, error)) int {
	out := -1
	if id != nil && *id != -1 {
		if *id < 0 || *id > maxID {
			bad(idField, fmt.Errorf("invalid id %d", *id))
		} else {
			out = *id
		}
	}
	if name == "" {
		return out
	}
	n, err := strconv.Atoi(name)
	if err != nil {
		n, err = lookup(name)
		if err != nil {
			bad(nameField, err)
			return -1
		}
	} else if n < 0 || n > maxID {
		bad(nameField, fmt.Errorf("invalid id %d", n))
		return -1
	}
	if out != -1 && out != n {
		bad(nameField, fmt.Errorf("%q is id %d, but %s is %d", name, n, idField, out))
		return -1
	}
	return n
}

func lookupUser(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(u.Uid)
}

func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}

// parseHook parses a hook command as confd does, as a text/template over
// {{.src}} and {{.dest}}, and tries it so that a bad field fails at load.
func parseHook(name, cmd string) (*texttemplate.Template, error) {
	if cmd == "" {
		return nil, nil
	}
	t, err := texttemplate.New(name).Option("missingkey=error").Parse(cmd)
	if err != nil {
		return nil, err
	}
	if _, err := hookCommand(t, "/stage", "/dest"); err != nil {
		return nil, err
	}
	return t, nil
}

// LoadDir loads every *.toml file under ConfDir/conf.d, in subdirectories
// too (as confd does), in path order. It returns the resources that loaded
// and the failures joined: one bad file does not keep the others from
// loading. Two resources with the same dest are an error for the later one.
func LoadDir(opts Options) ([]*Resource, error) {
	dir := filepath.Join(opts.ConfDir, "conf.d")
	var paths []string
	var errs []error
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			errs = append(errs, &LoadError{Path: displayName(p, opts.ConfDir), Err: err})
			return nil // skip what cannot be read, load the rest
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".toml") {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	sort.Strings(paths)
	var rs []*Resource
	dests := map[string]string{}
	cache := parsed{}
	for _, p := range paths {
		r, err := loadFile(p, opts, cache)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := dests[r.dest]; dup {
			errs = append(errs, &LoadError{Path: r.Name, Field: "template.dest",
				Err: fmt.Errorf("%s is also the dest of %s", r.dest, prev)})
			continue
		}
		dests[r.dest] = r.Name
		rs = append(rs, r)
	}
	return rs, errors.Join(errs...)
}

// JoinKey joins key parts into one clean, absolute key: JoinKey("/app/",
// "db", "/host") is "/app/db/host" and JoinKey() is "/".
func JoinKey(parts ...string) string {
	return path.Clean("/" + strings.Join(parts, "/"))
}

// Prefix returns the resource's full prefix: the global prefix joined with
// the resource's.
func (r *Resource) Prefix() string { return r.prefix }

// Dest returns the cleaned path of the file the resource writes.
func (r *Resource) Dest() string { return r.dest }

// Prefixes returns the full backend prefixes the resource reads: the global
// prefix, the resource prefix and each key, joined (a resource without keys
// reads its whole prefix), then the prefixes its template's functions read
// beyond them, such as Consul catalog keys (see [template.Template.Prefixes]).
func (r *Resource) Prefixes() []string {
	var out []string
	if len(r.Config.Keys) == 0 {
		out = append(out, r.prefix)
	}
	for _, k := range r.Config.Keys {
		out = append(out, JoinKey(r.prefix, k))
	}
	if r.tmpl != nil {
		out = append(out, r.tmpl.Prefixes()...)
	}
	return out
}

// MergePrefixes returns the union of the resources' prefixes, sorted, with
// every prefix that another one covers (as a plain string prefix) dropped.
func MergePrefixes(rs []*Resource) []string {
	var all []string
	for _, r := range rs {
		all = append(all, r.Prefixes()...)
	}
	sort.Strings(all)
	out := all[:0]
	for _, p := range all {
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}
