package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// synopsis is the first lines of kvconf's usage.
const synopsis = `Usage: kvconf [flags]
       kvconf backends [NAME]
       kvconf plugins
       kvconf exec [flags] -- COMMAND [ARGS...]
       kvconf help [exec]
       kvconf check [flags] [-diff]
`

// usage prints kvconf's usage: its own flags, then each compiled-in
// backend's, then the confd backends that are not built in.
func usage(w io.Writer, f *flags) {
	fmt.Fprint(w, synopsis)
	fmt.Fprint(w, "\nFlags (each also settable as KVCONF_<FLAG> and as its key in the config file;\nflags win over the environment, which wins over the config file):\n")
	printOptions(w, f, coreOptions)
	printBackends(w, f)
}

// execUsage prints the usage of "kvconf exec".
func execUsage(w io.Writer, f *flags) {
	fmt.Fprint(w, "Usage: kvconf exec [flags] -- COMMAND [ARGS...]\n\n"+
		"Renders every resource, then runs COMMAND and sends it -reload-signal when a dest\n"+
		"without reload_cmd changes; forwards signals to it and exits with its exit code.\n\n"+
		"Flags of exec (each also settable as KVCONF_<FLAG>):\n")
	own := flag.NewFlagSet("", flag.ContinueOnError)
	own.SetOutput(w)
	for _, name := range []string{"kill-timeout", "once", "reload-signal", "wait-backend"} {
		if fl := f.Lookup(name); fl != nil {
			own.Var(fl.Value, fl.Name, fl.Usage)
		}
	}
	own.PrintDefaults()
	fmt.Fprint(w, "\nThe flags of kvconf, but -onetime and -noop:\n")
	printOptions(w, f, coreOptions)
	printBackends(w, f)
}

// printBackends prints the options of every compiled-in backend, grouped
// by backend, and one line for each confd backend that is not built in.
func printBackends(w io.Writer, f *flags) {
	fmt.Fprint(w, "\nBackend options: they go to the backend that -backend selects, which rejects\nthe ones it does not take (\"kvconf backends NAME\" shows them as config file keys).\n")
	for _, g := range backendGroups() {
		fmt.Fprintf(w, "\n%s:\n", strings.Join(g.names, ", "))
		var opts []option
		for _, bo := range g.opts {
			if bo.Flag == "" {
				continue
			}
			usage := bo.Usage
			if bo.Key != strings.ReplaceAll(bo.Flag, "-", "_") || len(bo.Env) > 0 {
				usage += " [config key " + bo.Key
				if len(bo.Env) > 0 {
					usage += "; also " + strings.Join(bo.Env, ", ")
				}
				usage += "]"
			}
			opts = append(opts, option{flag: bo.Flag, kind: backendKind(bo.Kind), usage: usage})
		}
		if len(opts) == 0 {
			fmt.Fprintf(w, "  no flags (\"kvconf backends %s\" prints its [backends.NAME] table)\n", g.names[0])
			continue
		}
		printOptions(w, f, opts)
	}
	if lacking := lackingBackends(); len(lacking) > 0 {
		fmt.Fprint(w, "\nNot built in:\n")
		for _, name := range lacking {
			if p, err := findPlugin(name, pluginDirs(nil), os.Getenv("PATH")); err == nil && p != "" {
				fmt.Fprintf(w, "  %s: confd's %s backend is the plugin %s, which -backend %s runs\n", name, name, p, name)
				continue
			}
			fmt.Fprintf(w, "  %s: %s\n", name, notBuiltIn(name))
		}
	}
}

// printOptions prints opts as [flag.FlagSet.PrintDefaults] does, with
// the default values of f.
func printOptions(w io.Writer, f *flags, opts []option) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(w)
	for _, o := range opts {
		switch o.kind {
		case kBool:
			fs.Bool(o.flag, false, o.usage)
		case kInt:
			d, _ := strconv.Atoi(o.def)
			fs.Int(o.flag, d, o.usage)
		case kList:
			fs.Var(listFlag{new([]string)}, o.flag, o.usage)
		default:
			def := o.def
			if fl := f.Lookup(o.flag); fl != nil && def == "" {
				def = fl.DefValue
			}
			fs.String(o.flag, def, o.usage)
		}
	}
	fs.PrintDefaults()
}
