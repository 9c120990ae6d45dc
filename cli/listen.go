package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/internal/httpapi"
	"github.com/kvconf/kvconf/internal/metrics"
	"github.com/kvconf/kvconf/internal/sdnotify"
	"github.com/kvconf/kvconf/resource"
)

// ops is the operations side of a daemon or exec run: the metrics and
// readiness fed by the resources' and backends' events, the -listen HTTP
// listener that serves them, and the systemd notifications. A nil *ops
// (neither -listen nor $NOTIFY_SOCKET) observes nothing and costs nothing.
type ops struct {
	listen string
	m      *metrics.Metrics
	sd     *sdnotify.Notifier
	log    *slog.Logger
	p      *pool // set by start

	wg   sync.WaitGroup
	stop context.CancelFunc
}

// parseListen checks a -listen address: "" (off) or host:port.
func parseListen(addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("want host:port, such as 127.0.0.1:9120 or :9120, got %q", addr)
	}
	return addr, nil
}

// newOps returns the ops of the -listen address addr (checked by
// [parseListen]) and of the environment, or nil when there is neither
// -listen nor $NOTIFY_SOCKET. It opens nothing.
func newOps(addr string, getenv func(string) (string, bool), log *slog.Logger) (*ops, error) {
	sd, err := sdnotify.New(getenv)
	if err != nil {
		return nil, err
	}
	if addr == "" && !sd.Enabled() {
		return nil, nil
	}
	return &ops{listen: addr, m: metrics.New(), sd: sd, log: log}, nil
}

// observer returns the observer of the resources' events, nil without ops.
func (o *ops) observer() resource.Observer {
	if o == nil {
		return nil
	}
	return o.m
}

// backend returns the observer of the events of the pool's backend
// called name, nil without ops.
func (o *ops) backend(p *pool, name string) resource.BackendObserver {
	if o == nil {
		return nil
	}
	return o.m.Backend(p.entries[name].label)
}

// refusals makes the metrics count the refusals of b, the opened backend
// of the pool called name (see [metrics.Metrics.Refusals]).
func (o *ops) refusals(p *pool, name string, b backends.Backend) {
	if o != nil {
		o.m.Refusals(p.entries[name].label, b)
	}
}

// expect declares rs, and the backends they read, as what must succeed
// once before kvconf is ready.
func (o *ops) expect(rs []*resource.Resource) {
	if o == nil {
		return
	}
	want := make([]metrics.Resource, len(rs))
	for i, r := range rs {
		want[i] = metrics.Resource{Name: r.Name, Dest: r.Dest()}
	}
	var labels []string
	for _, g := range o.p.groups(rs) {
		labels = append(labels, o.p.entries[g.name].label)
	}
	o.m.Expect(want, labels)
}

// start opens the -listen listener and starts serving it, tells systemd
// READY=1 once every resource of rs had its first attempt, sends
// WATCHDOG=1 while the loops run when systemd asks for it and STOPPING=1
// once ctx is done. close stops it all.
func (o *ops) start(ctx context.Context, p *pool, rs []*resource.Resource) error {
	if o == nil {
		return nil
	}
	o.p = p
	o.expect(rs)
	ctx, o.stop = context.WithCancel(ctx)
	if o.listen != "" {
		ln, err := httpapi.Listen(o.listen)
		if err != nil {
			o.stop()
			return err
		}
		o.log.Info("listening", "addr", ln.Addr().String())
		o.wg.Go(func() {
			if err := httpapi.Serve(ctx, ln, httpapi.Handler(o.m, o.log), o.log); err != nil {
				o.log.Error("listener failed", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	if !o.sd.Enabled() {
		return nil
	}
	o.wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-o.m.Status().Attempted():
			o.notify("READY=1")
			<-ctx.Done()
		}
		o.notify("STOPPING=1")
	})
	if period, ok := o.sd.WatchdogPeriod(); ok {
		o.wg.Go(func() { o.watchdog(ctx, period/2) })
	}
	return nil
}

// watchdog sends WATCHDOG=1 every tick while the loops run, until ctx is
// done.
func (o *ops) watchdog(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if o.m.Status().Running() {
			o.notify("WATCHDOG=1")
		}
	}
}

// notify sends a systemd notification; a failure is only logged.
func (o *ops) notify(state string) {
	var err error
	if state == "RELOADING=1" {
		err = o.sd.Reloading()
	} else {
		err = o.sd.Send(state)
	}
	if err != nil {
		o.log.Warn("systemd notify failed", "state", state, "err", err)
		return
	}
	o.log.Debug("systemd notified", "state", state)
}

// reloading tells systemd that a reload (SIGHUP) started.
func (o *ops) reloading() {
	if o != nil && o.sd.Enabled() {
		o.notify("RELOADING=1")
	}
}

// reloaded ends a reload: when conf.d loaded (err is nil), rs are the
// resources expected from now on; either way systemd hears READY=1.
func (o *ops) reloaded(rs []*resource.Resource, err error) {
	if o == nil {
		return
	}
	if err == nil && o.p != nil {
		o.expect(rs)
	}
	if o.sd.Enabled() {
		o.notify("READY=1")
	}
}

// running marks the loops as running (for /health and the watchdog) and
// returns the func that marks them stopped.
func (o *ops) running() func() {
	if o == nil {
		return func() {}
	}
	o.m.Status().SetRunning(true)
	return func() { o.m.Status().SetRunning(false) }
}

// close stops the listener and the notifications, and waits for them.
func (o *ops) close() {
	if o == nil || o.stop == nil {
		return
	}
	o.stop()
	o.wg.Wait()
	_ = o.sd.Close() // a datagram socket: nothing to flush
}

// parseLogFormat parses a -log-format: "text" (the default) or "json".
func parseLogFormat(name string) (string, error) {
	switch f := strings.ToLower(name); f {
	case "text", "":
		return "text", nil
	case "json":
		return f, nil
	}
	return "", fmt.Errorf("unknown log format %q (want text or json)", name)
}

// newHandler returns the log handler of a -log-format: "json", one object
// per line, or else text (logfmt-like key=value). Both carry the same
// fields with the same values: in JSON too, a duration reads "1.5s" and a
// value with a String method (such as a wait) its string, as in text.
func newHandler(format string, w io.Writer, lvl slog.Level) slog.Handler {
	if format == "json" {
		return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: textValues})
	}
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})
}

// textValues gives the JSON handler the values the text handler writes
// for durations and for values with a String method (errors excepted,
// which the JSON handler already writes as their message).
func textValues(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		return slog.String(a.Key, a.Value.Duration().String())
	case slog.KindAny:
		v := a.Value.Any()
		if _, isErr := v.(error); isErr {
			return a
		}
		if st, ok := v.(fmt.Stringer); ok {
			return slog.String(a.Key, st.String())
		}
	}
	return a
}
