// Package haproxy is the "haproxy-runtime" applier: it applies changes of
// haproxy.cfg that touch only the server lines of backends through
// HAProxy's Runtime API (the stats socket, at admin level), so that HAProxy
// does not reload.
//
//	[template.apply]
//	type = "haproxy-runtime"
//	socket = "/run/haproxy/admin.sock"   # a unix socket path, or host:port
//	timeout = "5s"                       # each Runtime API command
//	drain_timeout = "10s"                # a removed server's sessions
//	check_timeout = "10s"                # a new server's health check
//
// The old and new files are parsed (sections, and the server and
// server-template lines of backend sections; never a regular expression
// over the file) and compared. When every other line is the same, and the
// servers differ only in address, port, weight, disabled, other options
// that "add server" takes (backup, check, ...), or in being added or
// removed, the applier sends:
//
//	add server B/S ADDR:PORT OPTIONS...     (then enable health, enable agent)
//	set server B/S addr A port P
//	set server B/S weight W
//	set server B/S state ready|maint
//	set server B/S state maint; del server B/S   (retried until its sessions drained)
//
// A server whose other options changed is replaced: removed as above, then
// added again with its new options, one server at a time, after the new
// servers came in service and before the removals; unless it is the only
// server of its backend in service (by the file, or by HAProxy's health
// checks just before it would leave), which falls back to the reload. Then
// the applier reads "show servers state" and "show stat" (for the backup
// flag, bck) and compares HAProxy's view with the new file. A server that
// goes in service (added, replaced, re-addressed through
// maintenance, no longer disabled) and has a health check gets no
// load-balanced traffic before the check passed: it goes from maintenance
// to "state drain" (checked, not load balanced) with "health down", and to
// "state ready" once HAProxy counts it up (rise checks in a row passed).
// A failed check, or none passed within check_timeout, is a [*CheckError]
// and the resource falls back to its reload. Any other difference, an address that is not an IP and a port, an
// add that HAProxy cannot do (a static balance algorithm, a default-server
// line, an option "add server" does not take), an API error, a mismatch
// or an unreachable socket make Apply fail, and the resource falls back to
// reload_cmd.
package haproxy
